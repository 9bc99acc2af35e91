//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultOps are the operations the fault-injection test kills
// warren in. prepare brings a fresh container id to the state the
// operation starts from (without faults); args are the killed call.
var faultOps = []struct {
	name    string
	prepare func(b *bundle, id string)
	args    func(b *bundle, id string) []string
}{
	{"create", nil, func(b *bundle, id string) []string { return []string{"create", "--bundle", b.dir, id} }},
	{"run -d", nil, func(b *bundle, id string) []string { return []string{"run", "-d", "--bundle", b.dir, id} }},
	{"start", func(b *bundle, id string) { b.mustWarren("create", "--bundle", b.dir, id) }, func(_ *bundle, id string) []string { return []string{"start", id} }},
	{"kill", func(b *bundle, id string) { b.mustWarren("run", "-d", "--bundle", b.dir, id) }, func(_ *bundle, id string) []string { return []string{"kill", id, "KILL"} }},
	{"delete", func(b *bundle, id string) {
		b.mustWarren("run", "-d", "--bundle", b.dir, id)
		b.mustWarren("kill", id, "KILL")
		b.waitStatus(id, "stopped")
	}, func(_ *bundle, id string) []string { return []string{"delete", id} }},
	{"delete --force", func(b *bundle, id string) { b.mustWarren("run", "-d", "--bundle", b.dir, id) }, func(_ *bundle, id string) []string { return []string{"delete", "--force", id} }},
	{"exec", func(b *bundle, id string) { b.mustWarren("run", "-d", "--bundle", b.dir, id) }, func(_ *bundle, id string) []string { return []string{"exec", id, "/bin/sleep", "0.3"} }},
	{"pause", func(b *bundle, id string) { b.mustWarren("run", "-d", "--bundle", b.dir, id) }, func(_ *bundle, id string) []string { return []string{"pause", id} }},
}

// TestFaultInjection runs random lifecycle operations and SIGKILLs warren
// (only warren: not what it started) at a random instant in each, as an
// engine's timeout, the OOM killer or Ctrl-C would. After each kill `state`
// and `list` must answer; then the container is recovered with warren's own
// commands as a user would (`list`, `delete --force`), and the host must
// hold nothing of it: no state entry, cgroup, process, mount, lock or fd.
//
// WARREN_FAULT_ROUNDS sets the number of rounds (default 200),
// WARREN_FAULT_SEED the random seed (logged, to replay a failure).
func TestFaultInjection(t *testing.T) {
	rounds := 200
	if v, err := strconv.Atoi(os.Getenv("WARREN_FAULT_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("WARREN_FAULT_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("%d rounds, WARREN_FAULT_SEED=%d", rounds, seed)
	rng := rand.New(rand.NewSource(seed))

	b := newBundle(t)
	b.setArgs("/bin/sleep", "1000")
	b.writeSpec()
	var used []string
	t.Cleanup(func() {
		for _, id := range used {
			b.warren("delete", "--force", id)
		}
	})
	fdsBefore := openFds(t)

	// Calibrate: how long each operation takes unhurt, so the kill
	// instants spread over the whole of it.
	span := map[string]time.Duration{}
	for _, op := range faultOps {
		var d []time.Duration
		for i := 0; i < 3; i++ {
			id := newID(t)
			used = append(used, id)
			if op.prepare != nil {
				op.prepare(b, id)
			}
			t0 := time.Now()
			if r := b.warren(op.args(b, id)...); r.code != 0 {
				t.Fatalf("calibration of %s:\n%s", op.name, r)
			}
			d = append(d, time.Since(t0))
			b.mustWarren("delete", "--force", id)
		}
		slices.Sort(d)
		span[op.name] = d[1] * 5 / 4
	}
	t.Logf("operation times (median x 1.25): %v", span)

	counts := map[string]int{}
	spent := map[string]time.Duration{}
	var killed, finished int
	for round := 0; round < rounds; round++ {
		roundStart := time.Now()
		op := faultOps[rng.Intn(len(faultOps))]
		id := newID(t)
		used = append(used, id)
		if op.prepare != nil {
			op.prepare(b, id)
		}
		delay := time.Duration(rng.Int63n(int64(span[op.name]) + 1))
		p := b.start(execOpts{}, op.args(b, id)...)
		time.Sleep(delay)
		p.cmd.Process.Kill() // SIGKILL; a no-op if it already finished
		r := p.wait()
		if r.err != nil && strings.Contains(r.err.Error(), "killed by signal") {
			killed++
		} else {
			finished++
		}
		counts[op.name]++
		what := fmt.Sprintf("round %d: %s killed after %v (seed %d)", round, op.name, delay, seed)

		// state and list answer whatever instant warren died at.
		listed := listIDs(t, b, what)
		if sr := b.warren("state", id); sr.code != 0 {
			if slices.Contains(listed, id) || !strings.Contains(sr.stderr, "does not exist") {
				t.Fatalf("%s: state failed:\n%s", what, sr)
			}
		} else {
			var st publicState
			if err := json.Unmarshal([]byte(sr.stdout), &st); err != nil || st.ID != id {
				t.Fatalf("%s: state output: %v\n%s", what, err, sr)
			}
		}

		// Recover as a user would: delete --force every listed container.
		for _, l := range listed {
			if dr := b.warren("delete", "--force", l); dr.code != 0 {
				t.Fatalf("%s: recovery: delete --force %s failed:\n%s", what, l, dr)
			}
		}
		assertHostClean(t, b, id, what)
		spent[op.name] += time.Since(roundStart)
	}
	t.Logf("time per operation's rounds: %v", spent)
	t.Logf("%d rounds: %d killed mid-operation, %d finished first; per operation %v", rounds, killed, finished, counts)
	if fds := openFds(t); fds != fdsBefore {
		t.Errorf("the test process has %d open fds, %d before", fds, fdsBefore)
	}
}

// listIDs runs `warren list --format json`, which must succeed, and
// returns the ids.
func listIDs(t *testing.T, b *bundle, what string) []string {
	t.Helper()
	r := b.warren("list", "--format", "json")
	if r.code != 0 {
		t.Fatalf("%s: list failed:\n%s", what, r)
	}
	var states []publicState
	if err := json.Unmarshal([]byte(r.stdout), &states); err != nil {
		t.Fatalf("%s: list output: %v\n%s", what, err, r)
	}
	var ids []string
	for _, s := range states {
		ids = append(ids, s.ID)
	}
	return ids
}

// assertHostClean checks, after recovery, that the root holds nothing
// (no state entry, staging or trash directory), and that container id left
// no cgroup, process, mount, or lock held by a warren process.
func assertHostClean(t *testing.T, b *bundle, id, what string) {
	t.Helper()
	if ents, err := os.ReadDir(b.root); err != nil || len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%s: after recovery the state root holds %v (err %v)", what, names, err)
	}
	for _, d := range containerCgroupDirs(id) {
		if _, err := os.Lstat(d); err == nil {
			t.Fatalf("%s: leftover cgroup %s", what, d)
		}
	}
	var procs []string
	for deadline := time.Now().Add(pollDeadline); ; time.Sleep(20 * time.Millisecond) {
		procs = append(b.procsOf(id), warrenProcs(b.root)...)
		if len(procs) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(procs) > 0 {
		t.Fatalf("%s: leftover processes: %v", what, procs)
	}
	after, err := hostMountsUnder(b.base)
	if err != nil {
		t.Fatal(err)
	}
	for m := range after {
		if !b.mountsBefore[m] {
			t.Fatalf("%s: leftover mount %s", what, m)
		}
	}
	for _, pid := range flockHolders() {
		if isWarren(pid) && usesRoot(pid, b.root) {
			t.Fatalf("%s: a warren process (pid %d) still holds a lock", what, pid)
		}
	}
}

// warrenProcs lists live processes running warren (its init included,
// before it executes the container's program) that work on this root.
func warrenProcs(root string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !isWarren(pid) || !procAlive(pid) {
			continue
		}
		if usesRoot(pid, root) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			out = append(out, fmt.Sprintf("%d (%s)", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return out
}

// usesRoot reports whether warren process pid works on state root: named
// in its arguments, or, for a container's init (which has none), with its
// exec FIFO under root among its fds.
func usesRoot(pid int, root string) bool {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if slices.Contains(strings.Split(string(cmdline), "\x00"), root) {
		return true
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, root+"/") {
			return true
		}
	}
	return false
}

// isWarren reports whether pid runs a warren binary (the test's build or
// its sealed copy the init runs from).
func isWarren(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	return exe == warrenBin || strings.HasPrefix(filepath.Base(exe), "warren")
}

// flockHolders lists the pids holding a flock(2) lock.
func flockHolders() []int {
	data, _ := os.ReadFile("/proc/locks")
	var out []int
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == "FLOCK" {
			if pid, err := strconv.Atoi(f[4]); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestConcurrentLifecycles runs 50 create/start/delete sequences on
// distinct ids in parallel (WARREN_CONCURRENT_IDS), and 10 clients racing
// random operations on one id. Every call either succeeds or fails with a
// clear error of the state machine; no state is ever unreadable; nothing
// is left.
func TestConcurrentLifecycles(t *testing.T) {
	b := newBundle(t)
	b.setArgs("/bin/sleep", "1000")
	b.writeSpec()

	n := 50
	if v, err := strconv.Atoi(os.Getenv("WARREN_CONCURRENT_IDS")); err == nil && v > 0 {
		n = v
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID(t)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 3*len(ids))
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, args := range [][]string{{"create", "--bundle", b.dir, id}, {"start", id}, {"delete", "--force", id}} {
				if r := b.warren(args...); r.code != 0 {
					errs <- r.String()
					b.warren("delete", "--force", id)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("parallel lifecycle on distinct ids:\n%s", e)
	}
	for _, id := range ids {
		assertHostClean(t, b, id, "distinct ids")
	}

	// 10 clients, one id.
	id := newID(t)
	t.Cleanup(func() { b.warren("delete", "--force", id) })
	ops := [][]string{
		{"create", "--bundle", b.dir, id}, {"run", "-d", "--bundle", b.dir, id}, {"start", id},
		{"kill", id, "KILL"}, {"delete", id}, {"delete", "--force", id}, {"state", id},
	}
	// Failures a race may legitimately give: the id taken, the
	// container missing or in the wrong state for the call.
	expected := []string{"container with id exists", "does not exist", "cannot start", "not running",
		"cannot delete", "no longer waiting", "cannot kill", "container not running"}
	var mu sync.Mutex
	outcomes := map[string]int{}
	for c := 0; c < 10; c++ {
		seed := int64(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for i := 0; i < 8; i++ {
				args := ops[rng.Intn(len(ops))]
				r := b.warren(args...)
				key := args[0] + " ok"
				if r.code != 0 {
					key = args[0] + " refused"
					if r.err != nil || !slices.ContainsFunc(expected, func(s string) bool { return strings.Contains(r.stderr, s) }) {
						mu.Lock()
						t.Errorf("racing on one id, unexpected outcome:\n%s", r)
						mu.Unlock()
					}
				}
				if args[0] == "state" && r.code == 0 {
					var st publicState
					if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.ID != id {
						mu.Lock()
						t.Errorf("state while racing: %v\n%s", err, r)
						mu.Unlock()
					}
				}
				mu.Lock()
				outcomes[key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var summary []string
	for _, k := range keys {
		summary = append(summary, fmt.Sprintf("%s %d", k, outcomes[k]))
	}
	t.Logf("racing on one id: %s", strings.Join(summary, ", "))
	listIDs(t, b, "after the race")
	if r := b.warren("delete", "--force", id); r.code != 0 {
		t.Errorf("delete --force after the race:\n%s", r)
	}
	assertHostClean(t, b, id, "one id")
}

// TestCorruptStateOfRunningContainer truncates a running container's
// state file: state fails naming the file, list shows it stopped, delete
// points at --force, and delete --force removes the container, its
// processes and cgroups included (recovered from the part before the cut).
func TestCorruptStateOfRunningContainer(t *testing.T) {
	b := newBundle(t)
	b.setArgs("/bin/sleep", "1000")
	c := b.runDetached(newID(t))
	p := filepath.Join(b.root, c.id, "state.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data[:len(data)*3/4], 0o600); err != nil {
		t.Fatal(err)
	}
	if r := b.warren("state", c.id); r.code == 0 || !strings.Contains(r.stderr, "corrupt") || !strings.Contains(r.stderr, p) {
		t.Errorf("state of a truncated file:\n%s", r)
	}
	listed := false
	for _, id := range listIDs(t, b, "corrupt state") {
		listed = listed || id == c.id
	}
	if !listed {
		t.Errorf("list does not show the container with a corrupt state")
	}
	if r := b.warren("delete", c.id); r.code == 0 || !strings.Contains(r.stderr, "delete --force") {
		t.Errorf("delete of a corrupt state:\n%s", r)
	}
	b.mustWarren("delete", "--force", c.id)
	assertGone(t, c.pid, "the container's init")
	b.assertNoLeftovers(c.id)
}
