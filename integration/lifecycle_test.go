//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunExitStatus(t *testing.T) {
	t.Parallel()
	t.Run("ExitCode3", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.setArgs("/testinit", "exit", "3")
		_, r := b.run(execOpts{})
		if r.code != 3 || r.err != nil {
			t.Errorf("run of a process exiting 3: warren exit status %d, want 3\n%s", r.code, r)
		}
	})
	t.Run("KilledBySIGKILL", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.setArgs("/testinit", "sleep", "1000")
		b.writeSpec()
		id := newID(t)
		b.track(id)
		p := b.start(execOpts{}, "run", "--bundle", b.dir, id)
		b.waitStatus(id, "running")
		b.mustWarren("kill", id, "KILL")
		r := p.wait()
		if r.code != 128+int(syscall.SIGKILL) {
			t.Errorf("run of a process killed by SIGKILL: warren exit status %d, want %d\n%s", r.code, 128+int(syscall.SIGKILL), r)
		}
		b.assertNoLeftovers(id)
	})
	// Signals sent to a foreground `warren run` are forwarded to the init;
	// testinit sleep exits 128+N on signal N. SIGTERM goes through
	// os/signal; SIGUSR1 and signal 40 are blocked from the start and read
	// from a signalfd (nsexec.c).
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1, syscall.Signal(40)} {
		t.Run("SignalForwardedToInit/"+strconv.Itoa(int(sig)), func(t *testing.T) {
			t.Parallel()
			testSignalForwarded(t, sig)
		})
	}
	// warren run blocks the signals it forwards; the container's process
	// and a hook start with the caller's mask (here none blocked).
	t.Run("SignalMaskRestored", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		hookOut := filepath.Join(b.tempDir("hook"), "sigblk")
		b.spec.Hooks = &specs.Hooks{Prestart: []specs.Hook{{
			Path: "/bin/sh",
			Args: []string{"sh", "-c", "grep SigBlk /proc/self/status > " + hookOut},
		}}}
		b.setScript("grep SigBlk /proc/self/status")
		out := b.runOK()
		want := "SigBlk:\t0000000000000000"
		if got := strings.TrimSpace(out); got != want {
			t.Errorf("container process: %q, want %q", got, want)
		}
		if got := strings.TrimSpace(readFile(t, hookOut)); got != want {
			t.Errorf("prestart hook: %q, want %q", got, want)
		}
	})
}

func testSignalForwarded(t *testing.T, sig syscall.Signal) {
	b := newBundle(t)
	b.setArgs("/testinit", "sleep", "1000")
	b.writeSpec()
	id := newID(t)
	b.track(id)
	errPath := filepath.Join(b.tempDir("io"), "run.err")
	p := b.start(execOpts{stderrPath: errPath}, "run", "--bundle", b.dir, id)
	b.waitStatus(id, "running")
	waitFor(t, "the sleeper to handle signals", func() bool {
		out, _ := os.ReadFile(errPath)
		return strings.Contains(string(out), "sleep: ready")
	}, func() string { out, _ := os.ReadFile(errPath); return "stderr: " + string(out) })
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	r := p.wait()
	if r.code != 128+int(sig) {
		t.Errorf("warren run after signal %d: exit status %d, want %d (init exits 128+N on a forwarded signal N)\n%s",
			sig, r.code, 128+int(sig), r)
	}
	b.assertNoLeftovers(id)
}

// TestLifecycle walks create → start → kill → delete, checking state,
// --pid-file, ps, the cgroup placement and the host afterwards.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setArgs("/testinit", "sleep", "1000")
	id := newID(t)
	pidFile := filepath.Join(b.tempDir("pidfile"), "pid")
	c := b.create(id, "--pid-file", pidFile)

	st := b.state(id)
	if st.Status != "created" {
		t.Errorf("status after create: %q, want created", st.Status)
	}
	if st.Bundle != b.dir {
		t.Errorf("state bundle: %q, want %q", st.Bundle, b.dir)
	}
	if st.OCIVersion == "" {
		t.Errorf("state has no ociVersion")
	}
	if got := strings.TrimSpace(readFile(t, pidFile)); got != strconv.Itoa(st.Pid) {
		t.Errorf("--pid-file contains %q, state pid is %d", got, st.Pid)
	}
	if !procAlive(st.Pid) {
		t.Fatalf("init pid %d of the created container is not alive", st.Pid)
	}
	if _, err := os.Stat(filepath.Join(b.root, id)); err != nil {
		t.Errorf("state directory of the created container: %v", err)
	}
	// The init is in <own cgroup>/<id> in every hierarchy.
	cg := readFile(t, fmt.Sprintf("/proc/%d/cgroup", st.Pid))
	for _, line := range lines(cg) {
		if !strings.HasSuffix(line, "/"+id) {
			t.Errorf("init's cgroup line %q does not end in /%s", line, id)
		}
	}
	for _, d := range containerCgroupDirs(id) {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("cgroup directory of the running container: %v", err)
		}
	}

	c.startIt()
	if st := b.state(id); st.Status != "running" || st.Pid != c.pid {
		t.Errorf("after start: status %q pid %d, want running with pid %d", st.Status, st.Pid, c.pid)
	}

	var pids []int
	decodeJSON(t, b.mustWarren("ps", "--format", "json", id).stdout, &pids)
	if !slices.Contains(pids, c.pid) {
		t.Errorf("ps --format json: %v, want it to list the init pid %d", pids, c.pid)
	}

	b.mustWarren("kill", id, "KILL")
	b.waitStatus(id, "stopped")
	assertGone(t, c.pid, "init after kill KILL")
	b.mustWarren("delete", id)
	b.assertNoLeftovers(id)
	if r := b.warren("state", id); r.code == 0 {
		t.Errorf("state after delete succeeded:\n%s", r)
	}
}

func TestKillDefaultSignalIsSIGTERM(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	// As PID 1 sh only gets signals it handles: the trap makes SIGTERM
	// visible, any other signal would be dropped (or kill it silently).
	b.setScript(`trap 'echo got-TERM; exit 0' TERM; echo ready; sleep 1000 & wait`)
	c := b.create(newID(t))
	c.startIt()
	c.waitOutput("ready")
	b.mustWarren("kill", c.id)
	c.waitOutput("got-TERM")
	b.waitStatus(c.id, "stopped")
}

func TestKillAll(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	// PID 1 (sh without a TERM handler) ignores SIGTERM; only --all reaches
	// the two sleeps, whose death lets sh's wait return and sh exit.
	b.setScript(`sleep 1000 & sleep 1000 & echo ready; wait; echo children-gone`)
	c := b.create(newID(t))
	c.startIt()
	c.waitOutput("ready")
	var pids []int
	waitFor(t, "ps to list the init and its two children", func() bool {
		pids = nil
		r := b.warren("ps", "--format", "json", c.id)
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &pids) == nil && len(pids) == 3
	}, func() string { return fmt.Sprintf("last ps: %v", pids) })
	b.mustWarren("kill", "--all", c.id, "TERM")
	c.waitOutput("children-gone")
	b.waitStatus(c.id, "stopped")
	for _, p := range pids {
		assertGone(t, p, "container process after kill --all")
	}
}

func TestKillSIGKILL(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setArgs("/testinit", "sleep", "1000")
	c := b.create(newID(t))
	c.startIt()
	b.mustWarren("kill", c.id, "KILL")
	b.waitStatus(c.id, "stopped")
	assertGone(t, c.pid, "init after kill KILL")
}

func TestList(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setArgs("/testinit", "sleep", "1000")
	a := b.create(newID(t))
	a.startIt()
	c := b.create(newID(t)) // left in "created"

	var list []publicState
	decodeJSON(t, b.mustWarren("list", "--format", "json").stdout, &list)
	if len(list) != 2 {
		t.Fatalf("list --format json: %d entries, want 2: %+v", len(list), list)
	}
	want := map[string]publicState{
		a.id: {ID: a.id, Pid: a.pid, Status: "running", Bundle: b.dir},
		c.id: {ID: c.id, Pid: c.pid, Status: "created", Bundle: b.dir},
	}
	for _, got := range list {
		w, ok := want[got.ID]
		if !ok {
			t.Errorf("list: unexpected entry %+v", got)
			continue
		}
		if got.Pid != w.Pid || got.Status != w.Status || got.Bundle != w.Bundle {
			t.Errorf("list entry %s: %+v, want pid %d status %s bundle %s", got.ID, got, w.Pid, w.Status, w.Bundle)
		}
	}
	q := lines(b.mustWarren("list", "-q").stdout)
	slices.Sort(q)
	ids := []string{a.id, c.id}
	slices.Sort(ids)
	if !slices.Equal(q, ids) {
		t.Errorf("list -q: %q, want %q", q, ids)
	}
}

func TestDeleteRunning(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setArgs("/testinit", "sleep", "1000")
	c := b.create(newID(t))
	c.startIt()

	r := b.warren("delete", c.id)
	if r.code == 0 {
		t.Errorf("delete of a running container without --force succeeded:\n%s", r)
	}
	if !strings.Contains(r.stderr, c.id) {
		t.Errorf("delete error does not name the container id %s:\n%s", c.id, r)
	}
	if st := b.state(c.id); st.Status != "running" || !procAlive(c.pid) {
		t.Errorf("after the refused delete: status %q, init alive %v; want it still running", st.Status, procAlive(c.pid))
	}

	b.mustWarren("delete", "--force", c.id)
	assertGone(t, c.pid, "init after delete --force")
	b.assertNoLeftovers(c.id)
	if r := b.warren("state", c.id); r.code == 0 {
		t.Errorf("state after delete --force succeeded:\n%s", r)
	}
}

func TestDeleteCreated(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	c := b.create(newID(t))
	b.mustWarren("delete", "--force", c.id)
	assertGone(t, c.pid, "init of a created container after delete --force")
	b.assertNoLeftovers(c.id)
}

func TestRunDetached(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setScript("echo detached-hello; exec /testinit sleep 1000")
	c := b.runDetached(newID(t))
	if st := b.state(c.id); st.Status != "running" {
		t.Errorf("status after run -d: %q, want running", st.Status)
	}
	c.waitOutput("detached-hello")
	if !procAlive(c.pid) {
		t.Errorf("init %d not alive after run -d", c.pid)
	}
	b.mustWarren("delete", "--force", c.id)
	assertGone(t, c.pid, "init after delete --force")
	b.assertNoLeftovers(c.id)
}

// TestNothingLeftAfterDelete runs a container with bind, tmpfs and masked
// mounts plus a user namespace through the whole cycle and checks the host.
func TestNothingLeftAfterDelete(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	src := b.tempDir("bind-src")
	b.spec.Mounts = append(b.spec.Mounts,
		specs.Mount{Destination: "/mnt/bind", Type: "bind", Source: src, Options: []string{"rbind", "rw"}},
		specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
	)
	b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	withUserNS(b.spec)
	// The mapped root (host uid 100000) cannot create directories in a
	// rootfs owned by the host's root: provide the mountpoints.
	for _, d := range []string{"mnt/bind", "scratch"} {
		if err := os.MkdirAll(filepath.Join(b.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b.setArgs("/testinit", "sleep", "1000")
	c := b.create(newID(t))
	c.startIt()
	st := b.state(c.id)
	b.mustWarren("kill", c.id, "KILL")
	b.waitStatus(c.id, "stopped")
	b.mustWarren("delete", c.id)
	assertGone(t, st.Pid, "init")
	b.assertNoLeftovers(c.id)
}

// The spec makes process OPTIONAL at create and REQUIRED at start: a config
// without one creates, start refuses it (the container stays created), and
// delete cleans up.
func TestCreateWithoutProcess(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Process = nil
	id := newID(t)
	b.create(id)
	if st := b.state(id); st.Status != "created" {
		t.Fatalf("status after create = %q, want created", st.Status)
	}
	r := b.warren("start", id)
	if r.code == 0 || !strings.Contains(r.stderr, "no process") {
		t.Errorf("start of a container without process: want an error about the missing process:\n%s", r)
	}
	if st := b.state(id); st.Status != "created" {
		t.Errorf("status after the refused start = %q, want created", st.Status)
	}
	b.mustWarren("delete", id)
	b.assertNoLeftovers(id)
}
