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

// hookScript writes a hook that appends "<name> <state json> <ns inodes>"
// to log: the state on its stdin and the namespaces it ran in.
func hookScript(t *testing.T, dir, name, log string) specs.Hook {
	t.Helper()
	p := filepath.Join(dir, name+".sh")
	script := "#!/bin/busybox sh\n" +
		"state=$(/bin/busybox cat)\n" +
		"ns=$(/bin/busybox readlink /proc/self/ns/mnt)\n" +
		"echo \"" + name + " $ns $state\" >> " + log + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return specs.Hook{Path: p, Args: []string{name}, Env: []string{"HOOK=" + name}}
}

// Every hook kind runs once, in the spec's order, with the state on stdin:
// prestart/createRuntime/poststart/poststop in the runtime's mount
// namespace, createContainer/startContainer in the container's.
func TestHooksOrderNamespacesAndState(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	dir := b.tempDir("hooks")
	log := filepath.Join(dir, "hooks.log")
	// The hooks run busybox from the host; startContainer resolves its
	// path in the container, where the rootfs has busybox too.
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox on the host")
	}
	h := &specs.Hooks{}
	h.Prestart = []specs.Hook{hookScript(t, dir, "prestart", log)}
	h.CreateRuntime = []specs.Hook{hookScript(t, dir, "createRuntime", log)}
	h.CreateContainer = []specs.Hook{hookScript(t, dir, "createContainer", log)}
	h.Poststart = []specs.Hook{hookScript(t, dir, "poststart", log)}
	h.Poststop = []specs.Hook{hookScript(t, dir, "poststop", log)}
	// startContainer runs inside the container, after pivot_root: the
	// script is in the rootfs and logs through a bind mount of dir.
	inside := filepath.Join(b.rootfs, "starthook.sh")
	os.WriteFile(inside, []byte("#!/bin/sh\nstate=$(cat)\necho \"startContainer $(/bin/busybox readlink /proc/self/ns/mnt) $state\" >> /hooklog/hooks.log\n"), 0o755)
	h.StartContainer = []specs.Hook{{Path: "/starthook.sh"}}
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/hooklog", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}})
	b.spec.Hooks = h
	b.spec.Annotations = map[string]string{"org.example/k": "v"}
	b.setArgs("/testinit", "exit", "0")
	c := b.create(newID(t))
	c.startIt()
	b.waitStatus(c.id, "stopped")
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	want := []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart"}
	if len(lines) != len(want) {
		t.Fatalf("hook log has %d lines, want %d (%v):\n%s", len(lines), len(want), want, data)
	}
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	for i, l := range lines {
		f := strings.SplitN(l, " ", 3)
		if f[0] != want[i] {
			t.Errorf("hook %d is %s, want %s", i, f[0], want[i])
		}
		if !strings.HasPrefix(f[1], "mnt:[") {
			t.Errorf("%s hook could not read its mount namespace: %q", f[0], l)
		}
		inRuntime := f[1] == hostMnt
		if wantRuntime := want[i] != "createContainer" && want[i] != "startContainer"; inRuntime != wantRuntime {
			t.Errorf("%s hook ran in mount namespace %s (runtime's %s)", f[0], f[1], hostMnt)
		}
		var st specs.State
		if err := json.Unmarshal([]byte(f[2]), &st); err != nil {
			t.Errorf("%s hook's stdin is not the state JSON: %v: %q", f[0], err, f[2])
			continue
		}
		if st.Pid <= 0 || st.Bundle != b.dir || st.Annotations["org.example/k"] != "v" || st.ID == "" {
			t.Errorf("%s hook state %+v", f[0], st)
		}
		wantStatus := "creating"
		if want[i] == "poststart" || want[i] == "startContainer" {
			wantStatus = "running"
		}
		if string(st.Status) != wantStatus {
			t.Errorf("%s hook saw status %q, want %q", f[0], st.Status, wantStatus)
		}
	}
	b.mustWarren("delete", c.id)
	data, _ = os.ReadFile(log)
	if !strings.HasSuffix(strings.TrimSpace(string(data)), "}") || !strings.Contains(string(data), "\npoststop ") {
		t.Errorf("poststop hook did not run on delete:\n%s", data)
	}
}

// A failing createRuntime hook fails create and leaves nothing; a failing
// poststart hook only warns.
func TestHookFailures(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo hook-says-no >&2; exit 3"}}}}
	id := newID(t)
	_, r := b.tryCreate(id)
	if r.code == 0 || !strings.Contains(r.stderr, "hooks.createRuntime[0]") || !strings.Contains(r.stderr, "hook-says-no") {
		t.Errorf("create with a failing createRuntime hook: exit %d, stderr %q", r.code, r.stderr)
	}
	b.assertNoLeftovers(id)

	b2 := newBundle(t)
	b2.spec.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/false"}}}
	b2.setArgs("/testinit", "exit", "0")
	if out := b2.runOK(); out != "" {
		t.Errorf("unexpected output %q", out)
	}

	b3 := newBundle(t)
	timeout := 1
	b3.spec.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}, Timeout: &timeout}}}
	id3 := newID(t)
	_, r = b3.tryCreate(id3)
	if r.code == 0 || !strings.Contains(r.stderr, "timed out") {
		t.Errorf("create with a hanging prestart hook (timeout 1s): exit %d, stderr %q", r.code, r.stderr)
	}
	b3.assertNoLeftovers(id3)
}

// kill of a stopped container: "container not running" (containerd's shim
// matches the text), but kill --all has nothing to do and succeeds.
func TestKillStopped(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setArgs("/testinit", "exit", "0")
	c := b.create(newID(t))
	c.startIt()
	b.waitStatus(c.id, "stopped")
	if r := b.warren("kill", c.id, "9"); r.code == 0 || !strings.Contains(r.stderr, "container not running") {
		t.Errorf("kill of a stopped container: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := b.warren("kill", "--all", c.id, "9"); r.code != 0 {
		t.Errorf("kill --all of a stopped container: %s", r)
	}
	_ = strconv.Itoa
}
