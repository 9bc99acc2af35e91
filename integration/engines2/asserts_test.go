//go:build linux

package engines2

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// assertVerbs checks that the engine called warren with each verb (in
// this order, other calls in between allowed) since mark.
func assertVerbs(t *testing.T, w *runtimeWrapper, mark int64, want ...string) {
	t.Helper()
	got := w.verbs(mark)
	i := 0
	for _, v := range got {
		if i < len(want) && v == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("want warren called with %v in this order, got verbs %v", want, got)
	}
}

// assertNoWarrenContainer checks that no warren state is left for id
// under any --root the engine passed.
func assertNoWarrenContainer(t *testing.T, w *runtimeWrapper, id string) {
	t.Helper()
	roots := map[string]bool{}
	for _, c := range w.callsSince(0) {
		if _, rest, ok := strings.Cut(c.argv, "'--root' '"); ok {
			root, _, _ := strings.Cut(rest, "'")
			roots[root] = true
		}
	}
	if len(roots) == 0 {
		roots["/run/warren"] = true
	}
	for root := range roots {
		if _, err := os.Stat(filepath.Join(root, id)); err == nil {
			t.Errorf("warren state for %s left in %s", id, root)
		}
	}
}

// printNamespaces is shell that prints "ns <type> <readlink of the ns
// file>" for each of the eight namespace types, as the process sees itself.
const printNamespaces = `for n in cgroup ipc mnt net pid user uts time; do echo "ns $n $(readlink /proc/self/ns/$n)"; done`

// assertSameNamespaces checks printNamespaces output against the
// namespaces of the container's init, read from the host: an exec'd
// process must join every one of them.
func assertSameNamespaces(t *testing.T, out, initPID string) {
	t.Helper()
	seen := 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "ns" {
			continue
		}
		seen++
		want, err := os.Readlink(filepath.Join("/proc", initPID, "ns", f[1]))
		if err != nil {
			t.Errorf("reading the init's %s namespace: %v", f[1], err)
			continue
		}
		if f[2] != want {
			t.Errorf("exec'd process is in %s namespace %s, the container's init (pid %s) in %s", f[1], f[2], initPID, want)
		}
	}
	if seen != 8 {
		t.Errorf("want the exec'd process to report 8 namespaces, got %d in:\n%s", seen, out)
	}
}

// assertInCgroup checks, from the host, that the process is in cgroup
// rel in every hierarchy it is listed in.
func assertInCgroup(t *testing.T, pid, rel string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", pid, "cgroup"))
	if err != nil {
		t.Errorf("reading the cgroups of pid %s: %v", pid, err)
		return
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[2] != rel && !strings.HasPrefix(parts[2], rel+"/") {
			t.Errorf("pid %s is in cgroup %q of hierarchy %q, want %s (the engine's cgroup parent and the container)", pid, parts[2], parts[1], rel)
		}
	}
}

// assertProcessGone checks that the host process pid exits (it may take
// the engine a moment to reap it).
func assertProcessGone(t *testing.T, pid string) {
	t.Helper()
	if !pollUntil(10*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if err != nil {
			return true
		}
		// A zombie is gone for our purposes: it runs nothing.
		_, after, _ := strings.Cut(string(b), ") ")
		return strings.HasPrefix(after, "Z")
	}) {
		t.Errorf("process %s still runs", pid)
	}
}

// printCaps is shell that prints the process's capability sets.
const printCaps = `grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status`

// assertExecCaps checks printCaps output of an exec'd process against the
// container's init: no inheritable or ambient capabilities, the same
// bounding set, and — for a root exec — the same effective set; for a
// non-root user none effective.
func assertExecCaps(t *testing.T, out, initPID string, root bool) {
	t.Helper()
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.HasPrefix(k, "Cap") {
			got[k] = strings.TrimSpace(v)
		}
	}
	init := procStatus(t, initPID)
	const none = "0000000000000000"
	if got["CapInh"] != none || got["CapAmb"] != none {
		t.Errorf("want no inheritable/ambient capabilities in the exec'd process: %v", got)
	}
	if got["CapBnd"] != init["CapBnd"] {
		t.Errorf("exec'd process has bounding set %s, the container's init %s", got["CapBnd"], init["CapBnd"])
	}
	if root && got["CapEff"] != init["CapEff"] {
		t.Errorf("root exec'd process has effective set %s, the container's init %s", got["CapEff"], init["CapEff"])
	}
	if !root && got["CapEff"] != none {
		t.Errorf("non-root exec'd process has effective capabilities %s", got["CapEff"])
	}
}

func procStatus(t *testing.T, pid string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatalf("reading the status of pid %s: %v", pid, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
