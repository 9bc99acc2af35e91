package integration

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func cpusAllowed(t *testing.T, pid string) string {
	t.Helper()
	for _, l := range lines(readFile(t, "/proc/"+pid+"/status")) {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list for %s", pid)
	return ""
}

// warren commands other than run and exec start pinned to one CPU (so the
// Go runtime sizes itself for one; see nsexec.c) and restore every
// thread's mask first thing: the container, hooks and exec'd processes
// get the caller's CPUs, never the pin; a caller restricted to one CPU
// keeps its restriction.
func TestCPUAffinityIsTheCallers(t *testing.T) {
	t.Parallel()
	mine := cpusAllowed(t, "self")
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: a pin would not show")
	}
	b := newBundle(t)
	hookOut := filepath.Join(b.tempDir("hooks"), "cpus")
	hook := filepath.Join(filepath.Dir(hookOut), "hook.sh")
	writeFile(t, hook, "#!/bin/busybox sh\n/bin/busybox grep Cpus_allowed_list /proc/self/status >> "+hookOut+"\n")
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox on the host for the hooks")
	}
	b.spec.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: hook}}, Poststop: []specs.Hook{{Path: hook}}}
	b.setArgs("/testinit", "sleep", "1000")
	c := b.create(newID(t))
	if got := cpusAllowed(t, strconv.Itoa(c.pid)); got != mine {
		t.Errorf("container init after create: CPUs %s, the caller's %s", got, mine)
	}
	c.startIt()
	r := b.mustWarren("exec", c.id, "/bin/grep", "Cpus_allowed_list", "/proc/self/status")
	if !strings.Contains(r.stdout, mine) {
		t.Errorf("exec'd process: %q, want the caller's %s", r.stdout, mine)
	}
	b.mustWarren("delete", "--force", c.id)
	hooks := readFile(t, hookOut)
	if strings.Count(hooks, "Cpus_allowed_list:\t"+mine) != 2 {
		t.Errorf("poststart and poststop hooks ran with CPUs\n%s\nwant the caller's %s", hooks, mine)
	}

	// A caller restricted to one CPU passes its restriction on.
	// On a thread of its own that ends with the test (locked, never
	// unlocked), so no other test forks from a thread pinned to CPU 0.
	runtime.LockOSThread()
	var one unix.CPUSet
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	c2 := b.create(newID(t))
	if got := cpusAllowed(t, strconv.Itoa(c2.pid)); got != "0" {
		t.Errorf("container of a caller on CPU 0: CPUs %s", got)
	}
	b.mustWarren("delete", "--force", c2.id)
}
