package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupFile names a cgroup file as the container sees it through its
// cgroup namespace and `type: cgroup` mount: v1 per controller, v2 flat.
func cgroupFile(ctrl, v1, v2 string) string {
	if cgroupV2 {
		return "/sys/fs/cgroup/" + v2
	}
	return "/sys/fs/cgroup/" + ctrl + "/" + v1
}

// hostCgroupFile is the same file seen from the host.
func hostCgroupFile(t *testing.T, id, ctrl, v1, v2 string) string {
	t.Helper()
	for _, d := range containerCgroupDirs(id) {
		if cgroupV2 {
			return filepath.Join(d, v2)
		}
		if strings.Contains(","+v1Hierarchy(d)+",", ","+ctrl+",") {
			return filepath.Join(d, v1)
		}
	}
	t.Fatalf("no %s hierarchy for container %s in %v", ctrl, id, containerCgroupDirs(id))
	return ""
}

// v1Hierarchy names the hierarchy a v1 cgroup directory is in, e.g.
// "memory" or "cpu,cpuacct", from its mount under /sys/fs/cgroup.
func v1Hierarchy(dir string) string {
	rest, _ := strings.CutPrefix(dir, "/sys/fs/cgroup/")
	name, _, _ := strings.Cut(rest, "/")
	return name
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return strings.TrimSpace(string(b))
}

func i64p(v int64) *int64   { return &v }
func u64p(v uint64) *uint64 { return &v }
func u16p(v uint16) *uint16 { return &v }

// Limits from linux.resources are in force before the process runs, and
// the container reads them in its own cgroup through its cgroup namespace.
func TestCgroupLimitsVisibleInside(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64p(64 << 20)}
	b.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64p(20)}
	b.spec.Linux.Resources.CPU = &specs.LinuxCPU{Quota: i64p(50000), Period: u64p(100000), Shares: u64p(512)}
	files := []string{
		cgroupFile("memory", "memory.limit_in_bytes", "memory.max"),
		cgroupFile("pids", "pids.max", "pids.max"),
		cgroupFile("cpu", "cpu.cfs_quota_us", "cpu.max"),
		cgroupFile("cpu", "cpu.shares", "cpu.weight"),
	}
	b.setScript("for f in " + strings.Join(files, " ") + "; do cat $f; done")
	got := strings.Split(strings.TrimSpace(b.runOK()), "\n")
	want := []string{"67108864", "20", "50000", "512"}
	if cgroupV2 {
		want = []string{"67108864", "20", "50000 100000", "20"} // weight = 1 + (512-2)*9999/262142
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("cgroup files %v inside the container read %q, want %q", files, got, want)
	}
}

// With a cgroup namespace the container's cgroup is its root, and the
// cgroup mount is read-only.
func TestCgroupNamespaceView(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64p(100)}
	procs := cgroupFile("pids", "cgroup.procs", "cgroup.procs")
	b.setScript("cat /proc/self/cgroup; echo ---; cat " + procs + "; echo ---; /testinit write " + cgroupFile("pids", "pids.max", "pids.max"))
	out := b.runOK()
	parts := strings.Split(out, "---\n")
	if len(parts) != 3 {
		t.Fatalf("unexpected output:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(parts[0]), "\n") {
		if !strings.HasSuffix(line, ":/") {
			t.Errorf("/proc/self/cgroup line %q: the container must see its own cgroup as /", line)
		}
	}
	// What the container sees as its cgroup is its own: its init is there.
	if !strings.Contains(" "+strings.Join(strings.Fields(parts[1]), " ")+" ", " 1 ") {
		t.Errorf("%s = %q: the init (pid 1) is not in the container's own cgroup", procs, parts[1])
	}
	var w fileResult
	decodeJSON(t, strings.TrimSpace(parts[2]), &w)
	if w.OK {
		t.Errorf("writing %s from inside succeeded: the cgroup mount must be read-only", w.Path)
	}
}

// A memory limit that the process exceeds ends in an OOM kill, which
// `events` reports as an "oom" event and `events --stats` counts.
func TestOOMKillSeenInEvents(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64p(16 << 20)}
	if _, err := os.Stat(hostSwapFile()); err == nil && !cgroupV2 {
		b.spec.Linux.Resources.Memory.Swap = i64p(16 << 20)
	}
	// events reports kills from when it starts; the allocation waits a
	// little so that events is surely watching by then.
	b.setScript("sleep 2; exec /testinit alloc 256")
	c := b.create(newID(t))
	ev := b.start(execOpts{}, "events", "--interval", "1s", c.id)
	c.startIt()
	b.waitStatus(c.id, "stopped")
	r := ev.wait()
	if !strings.Contains(r.stdout, `"type":"oom"`) {
		t.Errorf("events printed no oom event:\n%s", r)
	}
	stats := hostCgroupFile(t, c.id, "memory", "memory.oom_control", "memory.events")
	if !strings.Contains(readTrim(t, stats), "oom_kill 1") {
		t.Errorf("%s does not count the kill:\n%s", stats, readTrim(t, stats))
	}
}

// hostSwapFile is where v1 reports memory+swap accounting; without it a
// swap limit cannot be set.
func hostSwapFile() string {
	for _, d := range ownCgroupDirs {
		if strings.Contains(","+v1Hierarchy(d)+",", ",memory,") {
			return filepath.Join(d, "memory.memsw.limit_in_bytes")
		}
	}
	return "/nonexistent"
}

// pids.max stops a fork bomb: forks fail with EAGAIN once the limit is hit.
func TestPidsLimitStopsForkBomb(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64p(8)}
	b.setArgs("/testinit", "forks", "50")
	var res struct {
		Started int    `json:"started"`
		Error   string `json:"error"`
		Errno   int    `json:"errno"`
	}
	decodeJSON(t, strings.TrimSpace(b.runOK()), &res)
	if res.Started >= 8 || res.Errno != 11 {
		t.Errorf("with pids.max 8 the container started %d children (error %q, errno %d); want fewer than 8 and EAGAIN", res.Started, res.Error, res.Errno)
	}
}

// Device rules are enforced: a device not allowed can be neither created
// nor opened, one allowed can.
func TestDeviceRulesEnforced(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Root.Readonly = false
	caps := b.spec.Process.Capabilities
	for _, set := range []*[]string{&caps.Bounding, &caps.Effective, &caps.Permitted} {
		*set = append(*set, "CAP_MKNOD")
	}
	b.spec.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(3), Access: "rwm"},
	}
	b.setScript("/testinit mknoddev /tmp/mem 1 1; /testinit mknoddev /tmp/null2 1 3; /testinit open /tmp/null2; /testinit open /dev/null")
	l := jsonLines(t, b.runOK(), 4)
	var r [4]fileResult
	for i := range r {
		decodeJSON(t, l[i], &r[i])
	}
	if r[0].OK || r[0].Errno != 1 {
		t.Errorf("mknod of /dev/mem's device (1:1), not allowed: ok=%v errno=%d, want EPERM", r[0].OK, r[0].Errno)
	}
	if !r[1].OK || !r[2].OK || !r[3].OK {
		t.Errorf("the allowed device 1:3: mknod %v (%s), open new node %v (%s), open /dev/null %v (%s)", r[1].OK, r[1].Error, r[2].OK, r[2].Error, r[3].OK, r[3].Error)
	}
}

// pause freezes, resume thaws; state follows.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setArgs("/testinit", "sleep", "1000")
	c := b.runDetached(newID(t))
	freezer := hostCgroupFile(t, c.id, "freezer", "freezer.state", "cgroup.freeze")
	b.mustWarren("pause", c.id)
	if st := b.state(c.id); st.Status != "paused" {
		t.Errorf("after pause: status %q, want paused", st.Status)
	}
	if v := readTrim(t, freezer); v != "FROZEN" && v != "1" {
		t.Errorf("after pause %s = %q", freezer, v)
	}
	if r := b.warren("pause", c.id); r.code == 0 {
		t.Errorf("pause of a paused container succeeded")
	}
	b.mustWarren("resume", c.id)
	if st := b.state(c.id); st.Status != "running" {
		t.Errorf("after resume: status %q, want running", st.Status)
	}
	if v := readTrim(t, freezer); v != "THAWED" && v != "0" {
		t.Errorf("after resume %s = %q", freezer, v)
	}
	if r := b.warren("resume", c.id); r.code == 0 || !strings.Contains(r.stderr, c.id) {
		t.Errorf("resume of a running container: exit %d, stderr %q; want an error naming the id", r.code, r.stderr)
	}
	// A paused container can still be killed and deleted.
	b.mustWarren("pause", c.id)
	b.mustWarren("delete", "--force", c.id)
	assertGone(t, c.pid, "paused init after delete --force")
}

// update changes limits of a live container, from flags and from a file.
func TestUpdate(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64p(100)}
	b.setArgs("/testinit", "sleep", "1000")
	c := b.runDetached(newID(t))
	b.mustWarren("update", "--memory", "100m", "--pids-limit", "30", "--cpu-quota", "20000", "--cpu-period", "100000", c.id)
	mem := hostCgroupFile(t, c.id, "memory", "memory.limit_in_bytes", "memory.max")
	pids := hostCgroupFile(t, c.id, "pids", "pids.max", "pids.max")
	quota := hostCgroupFile(t, c.id, "cpu", "cpu.cfs_quota_us", "cpu.max")
	if v := readTrim(t, mem); v != strconv.Itoa(100<<20) {
		t.Errorf("%s = %s after update --memory 100m", mem, v)
	}
	if v := readTrim(t, pids); v != "30" {
		t.Errorf("%s = %s after update --pids-limit 30", pids, v)
	}
	if v := readTrim(t, quota); v != "20000" && v != "20000 100000" {
		t.Errorf("%s = %s after update --cpu-quota 20000", quota, v)
	}
	res := filepath.Join(b.base, "res.json")
	if err := os.WriteFile(res, []byte(`{"pids":{"limit":40}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b.mustWarren("update", "-r", res, c.id)
	if v := readTrim(t, pids); v != "40" {
		t.Errorf("%s = %s after update -r {pids.limit 40}", pids, v)
	}
	if v := readTrim(t, mem); v != strconv.Itoa(100<<20) {
		t.Errorf("update -r of pids changed %s to %s: other limits must stay", mem, v)
	}
	if r := b.warren("update", "--memory", "lots", c.id); r.code == 0 || !strings.Contains(r.stderr, "--memory") {
		t.Errorf("update --memory lots: exit %d, stderr %q; want an error naming the flag", r.code, r.stderr)
	}
	b.mustWarren("kill", c.id, "KILL")
	b.waitStatus(c.id, "stopped")
	if r := b.warren("update", "--pids-limit", "5", c.id); r.code == 0 {
		t.Errorf("update of a stopped container succeeded")
	}
}

// events --stats prints one stats event in runc's shape.
func TestEventsStats(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64p(50)}
	b.setArgs("/testinit", "sleep", "1000")
	c := b.runDetached(newID(t))
	r := b.mustWarren("events", "--stats", c.id)
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			CPU struct {
				Usage struct {
					Total uint64 `json:"total"`
				} `json:"usage"`
			} `json:"cpu"`
			Memory struct {
				Usage struct {
					Usage uint64 `json:"usage"`
				} `json:"usage"`
			} `json:"memory"`
			Pids struct {
				Current uint64 `json:"current"`
				Limit   uint64 `json:"limit"`
			} `json:"pids"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ev); err != nil {
		t.Fatalf("events --stats output is not one JSON event: %v\n%s", err, r.stdout)
	}
	if ev.Type != "stats" || ev.ID != c.id {
		t.Errorf("event type %q id %q, want stats %s", ev.Type, ev.ID, c.id)
	}
	if ev.Data.Pids.Current < 1 || ev.Data.Pids.Limit != 50 {
		t.Errorf("pids stats %+v, want current >= 1 and limit 50", ev.Data.Pids)
	}
	if ev.Data.CPU.Usage.Total == 0 || ev.Data.Memory.Usage.Usage == 0 {
		t.Errorf("cpu total %d, memory usage %d: both must be counted", ev.Data.CPU.Usage.Total, ev.Data.Memory.Usage.Usage)
	}
}

// A limit the kernel refuses fails create with the field named, and
// leaves no cgroup (or anything else) behind.
func TestBadLimitLeavesNothing(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "9999"}
	id := newID(t)
	_, r := b.tryCreate(id)
	if r.code == 0 || !strings.Contains(r.stderr, "linux.resources.cpu.cpus") {
		t.Errorf("create with cpus 9999: exit %d, stderr %q; want an error naming linux.resources.cpu.cpus", r.code, r.stderr)
	}
	b.assertNoLeftovers(id)
	for _, d := range containerCgroupDirs(id) {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left behind by a failed create", d)
		}
	}
}

// A memory limit too small for the runtime's own init to set the container
// up is reported as such (the init is OOM-killed without a word otherwise),
// and nothing is left behind. Only the Go init (WARREN_GO_INIT, or a
// config that needs it) is that big: see TestOneMebibyteContainer.
func TestMemoryLimitTooSmallForInit(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.env = []string{"WARREN_GO_INIT=1"}
	b.spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(256 << 10))}}
	id := newID(t)
	_, r := b.tryCreate(id)
	if r.code == 0 {
		t.Fatalf("create with a 256 KiB memory limit succeeded:\n%s", r)
	}
	for _, w := range []string{"OOM killer", "linux.resources.memory.limit"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("error lacks %q:\n%s", w, r)
		}
	}
	b.assertNoLeftovers(id)
}

// When the runtime prepares the rootfs (prepare_linux.go) the container's
// init is a small C process until it executes the program: a container
// runs within a 1 MiB memory limit, and the same config fails with the Go
// init, which needs about 2 MiB.
func TestOneMebibyteContainer(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 20))}}
	b.setArgs("/bin/true")
	if _, r := b.run(execOpts{}); r.code != 0 {
		t.Errorf("run /bin/true with a 1 MiB memory limit:\n%s", r)
	}
	b.env = []string{"WARREN_GO_INIT=1"}
	if _, r := b.run(execOpts{}); r.code == 0 {
		t.Logf("the Go init fits in 1 MiB too: this test no longer tells the paths apart")
	}
}
