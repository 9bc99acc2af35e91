//go:build linux

package engines

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tools the shared containerd needs (the CRI tests add theirs).
var containerdTools = []string{"busybox", "unshare", "containerd", "ctr", "containerd-shim-runc-v2"}

// ctrRunArgs are the `ctr run` options that make containerd's runc v2 shim
// call warren (through the recording wrapper) with a private --root.
func (e *engineEnv) ctrRunArgs() []string {
	return []string{"--fifo-dir", e.fifoDir, "--runc-binary", e.wrapper, "--runc-root", e.ctrRoot}
}

// nsCheckScript prints, for every namespace type and the cgroup, whether
// the shell running it shares it with the container's PID 1.
const nsCheckScript = `echo "my-pid=$$"
for n in cgroup ipc mnt net pid time user uts; do
	a=$(readlink /proc/self/ns/$n) || continue
	b=$(readlink /proc/1/ns/$n)
	if [ "$a" = "$b" ]; then echo "ns $n same"; else echo "ns $n DIFFERENT self=$a init=$b"; fi
done
if [ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ]; then echo "cgroup same"; else echo "cgroup DIFFERENT"; fi
grep CapInh /proc/self/status
echo "cwd=$(pwd)"
`

// checkJoined asserts the output of nsCheckScript: the process joined
// every namespace and the cgroup of the container's init.
func checkJoined(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "DIFFERENT") {
		t.Errorf("the exec'd process is not in all of the container's namespaces/cgroup:\n%s", out)
	}
	for _, n := range []string{"ipc", "mnt", "net", "pid", "uts"} {
		if !strings.Contains(out, "ns "+n+" same") {
			t.Errorf("no %q line in the exec output:\n%s", "ns "+n+" same", out)
		}
	}
	if !strings.Contains(out, "cgroup same") {
		t.Errorf("the exec'd process is not in the container's cgroup:\n%s", out)
	}
	if !regexp.MustCompile(`CapInh:\s+0+\n`).MatchString(out) {
		t.Errorf("the exec'd process has inheritable capabilities:\n%s", out)
	}
	if strings.Contains(out, "my-pid=1\n") {
		t.Errorf("the exec'd process is PID 1 of the container:\n%s", out)
	}
}

// TestContainerdRun: `ctr run --rm` of a busybox container; its stdout and
// stderr reach ctr and its exit status is ctr's.
func TestContainerdRun(t *testing.T) {
	need(t, containerdTools...)
	e := getEnv(t)
	e.traceCalls(t)
	id := "run-" + randHex(3)
	args := append(append([]string{"run", "--rm"}, e.ctrRunArgs()...), busyboxImage, id,
		"sh", "-c", `echo "hello from warren, pid $$, host $(hostname)"; echo "this goes to stderr" >&2; cat /proc/self/cgroup; exit 7`)
	r := e.ctr(t, args...)
	if r.code != 7 {
		t.Fatalf("ctr run: want the container's exit status 7, got %s", r)
	}
	if !strings.Contains(r.stdout, "hello from warren, pid 1,") {
		t.Errorf("stdout lacks the container's greeting (as PID 1):\n%s", r)
	}
	if !strings.Contains(r.stderr, "this goes to stderr") {
		t.Errorf("stderr lacks the container's stderr line:\n%s", r)
	}
	// ctr's default cgroupsPath is /<namespace>/<id>.
	if !strings.Contains(r.stdout, "/"+e.ctrNS+"/"+id) {
		t.Errorf("the container is not in the cgroup /%s/%s:\n%s", e.ctrNS, id, r.stdout)
	}
	// --rm: containerd deleted the task and the container, so warren did.
	if ids := warrenList(t, e.warrenRootCtr()); slices.Contains(ids, id) {
		t.Errorf("warren still lists %s after ctr run --rm: %v", id, ids)
	}
	if out := ok(t, e.ctr(t, "containers", "ls", "-q"), "ctr containers ls"); slices.Contains(strings.Fields(out), id) {
		t.Errorf("containerd still has container %s after ctr run --rm", id)
	}
	for _, mnt := range cgroupMounts() {
		if _, err := os.Stat(filepath.Join(mnt, e.ctrNS, id)); err == nil {
			t.Errorf("cgroup %s left behind", filepath.Join(mnt, e.ctrNS, id))
		}
	}
}

// TestContainerdRunError: a container whose program does not exist fails
// `ctr run` with warren's own message (which the shim reads from the
// --log file, log.json) and leaves nothing behind.
func TestContainerdRunError(t *testing.T) {
	need(t, containerdTools...)
	e := getEnv(t)
	e.traceCalls(t)
	id := "err-" + randHex(3)
	args := append(append([]string{"run", "--rm"}, e.ctrRunArgs()...), busyboxImage, id, "/bin/no-such-program")
	r := e.ctr(t, args...)
	if r.code == 0 {
		t.Fatalf("ctr run of a missing program succeeded: %s", r)
	}
	if !strings.Contains(r.stderr, "no-such-program") {
		t.Errorf("ctr's error does not carry warren's message naming the program:\n%s", r)
	}
	if ids := warrenList(t, e.warrenRootCtr()); slices.Contains(ids, id) {
		t.Errorf("warren lists %s after a failed create: %v", id, ids)
	}
}

// TestContainerdRunTTY: `ctr run -t` gives the container a terminal
// (process.terminal with --console-socket) sized like ctr's own.
func TestContainerdRunTTY(t *testing.T) {
	need(t, containerdTools...)
	e := getEnv(t)
	e.traceCalls(t)
	id := "tty-" + randHex(3)
	args := append([]string{"--address", e.sock, "--namespace", e.ctrNS, "run", "--rm", "-t"}, e.ctrRunArgs()...)
	args = append(args, busyboxImage, id, "sh", "-c",
		// ctr sets the container's window size just after start: wait for it.
		`tty; test -t 0 && test -t 1 && echo "stdio-is-a-tty"
for i in 1 2 3 4 5 6 7 8 9 10; do [ "$(stty size)" = "33 101" ] && break; sleep 0.2; done
echo "size=$(stty size)"; exit 3`)
	p := startPTY(t, 33, 101, mustTool("ctr"), args...)
	code := p.wait(t, cmdTimeout)
	out := p.output()
	if code != 3 {
		t.Errorf("ctr run -t: want the container's exit status 3, got %d", code)
	}
	if !regexp.MustCompile(`/dev/pts/\d+`).MatchString(out) {
		t.Errorf("`tty` in the container did not name a pts:\n%q", out)
	}
	if !strings.Contains(out, "stdio-is-a-tty") {
		t.Errorf("the container's stdin/stdout are not a terminal:\n%q", out)
	}
	if !strings.Contains(out, "size=33 101") {
		t.Errorf("the container's terminal does not have ctr's size 33x101:\n%q", out)
	}
	if ids := warrenList(t, e.warrenRootCtr()); slices.Contains(ids, id) {
		t.Errorf("warren still lists %s after ctr run --rm -t: %v", id, ids)
	}
}

// TestContainerdTaskLifecycle: a detached task (ctr run -d, output to a log
// file), ps, pause/resume, exec into it without and with a terminal, as
// another user and detached, kill --all with SIGTERM (the init catches it:
// exit status 42 in containerd's exit event), task and container removal.
func TestContainerdTaskLifecycle(t *testing.T) {
	need(t, containerdTools...)
	e := getEnv(t)
	e.traceCalls(t)
	id := "task-" + randHex(3)
	logFile := filepath.Join(e.dir, id+".log")
	args := append(append([]string{"run", "-d", "--log-uri", "file://" + logFile}, e.ctrRunArgs()...), busyboxImage, id,
		"sh", "-c", `trap 'echo "init got TERM"; exit 42' TERM; echo "init ready"; while :; do sleep 1 & wait $!; done`)
	ok(t, e.ctr(t, args...), "ctr run -d")
	t.Cleanup(func() {
		if t.Failed() { // stopped half-way: remove what is left
			e.ctr(t, "tasks", "delete", "--force", id)
			e.ctr(t, "containers", "rm", id)
		}
	})

	taskStatus := func() (pid, status string) {
		out := e.ctr(t, "tasks", "ls").stdout
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == id {
				return f[1], f[2]
			}
		}
		return "", ""
	}
	waitFor(t, "the init's first output", func() (bool, string) {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "init ready"), string(b)
	})
	pid, status := taskStatus()
	if status != "RUNNING" {
		t.Fatalf("ctr tasks ls: task %s is %q, want RUNNING", id, status)
	}
	if ids := warrenList(t, e.warrenRootCtr()); !slices.Contains(ids, id) {
		t.Errorf("warren --root %s list does not show %s: %v", e.warrenRootCtr(), id, ids)
	}

	// ctr task ps: the shim runs `ps --format json`.
	if out := ok(t, e.ctr(t, "tasks", "ps", id), "ctr tasks ps"); !strings.Contains(out, pid) {
		t.Errorf("ctr tasks ps does not list the init (pid %s):\n%s", pid, out)
	}

	// Pause and resume: the freezer, seen through containerd.
	ok(t, e.ctr(t, "tasks", "pause", id), "ctr tasks pause")
	if _, st := taskStatus(); st != "PAUSED" {
		t.Errorf("after pause the task is %q, want PAUSED", st)
	}
	ok(t, e.ctr(t, "tasks", "resume", id), "ctr tasks resume")
	if _, st := taskStatus(); st != "RUNNING" {
		t.Errorf("after resume the task is %q, want RUNNING", st)
	}

	t.Run("exec", func(t *testing.T) {
		r := e.ctr(t, "tasks", "exec", "--fifo-dir", e.fifoDir, "--exec-id", "probe", "--cwd", "/tmp", id,
			"sh", "-c", "echo exec-output; echo exec-stderr >&2; "+nsCheckScript+"exit 3")
		if r.code != 3 {
			t.Fatalf("ctr tasks exec: want the process's exit status 3, got %s", r)
		}
		if !strings.Contains(r.stdout, "exec-output") || !strings.Contains(r.stderr, "exec-stderr") {
			t.Errorf("the exec'd process's stdout/stderr did not reach ctr:\n%s", r)
		}
		t.Logf("exec output:\n%s", r.stdout)
		checkJoined(t, r.stdout)
		if !strings.Contains(r.stdout, "cwd=/tmp") {
			t.Errorf("the exec'd process does not run in --cwd /tmp:\n%s", r.stdout)
		}
	})

	t.Run("exec-user", func(t *testing.T) {
		r := e.ctr(t, "tasks", "exec", "--fifo-dir", e.fifoDir, "--exec-id", "user", "--user", "65534", id, "id")
		if r.code != 0 {
			t.Fatalf("ctr tasks exec --user 65534: %s", r)
		}
		if !strings.Contains(r.stdout, "uid=65534") {
			t.Errorf("ctr tasks exec --user 65534: the process is not uid 65534: %s", r.stdout)
		}
	})

	t.Run("exec-tty", func(t *testing.T) {
		p := startPTY(t, 40, 120, mustTool("ctr"), "--address", e.sock, "--namespace", e.ctrNS,
			"tasks", "exec", "-t", "--fifo-dir", e.fifoDir, "--exec-id", "shell", id, "sh")
		p.waitOutput(t, "# ", 30*time.Second) // the interactive shell's prompt
		p.write(t, "tty; echo typed-$((6*7)); exit 5\n")
		code := p.wait(t, cmdTimeout)
		out := p.output()
		if code != 5 {
			t.Errorf("ctr tasks exec -t: want the shell's exit status 5, got %d", code)
		}
		if !strings.Contains(out, "typed-42") {
			t.Errorf("the shell did not run what was typed on the terminal:\n%q", out)
		}
		if !regexp.MustCompile(`/dev/pts/\d+`).MatchString(out) {
			t.Errorf("`tty` in the exec'd shell did not name a pts:\n%q", out)
		}
	})

	// A detached exec'd process, then SIGTERM to every process of the
	// container (kill --all): the init traps it and exits 42, the exec'd
	// sleep dies of it (128+15).
	ok(t, e.ctr(t, "tasks", "exec", "--detach", "--fifo-dir", e.fifoDir, "--exec-id", "sleeper", id, "sleep", "1000"), "ctr tasks exec --detach")
	events := e.watchEvents(t)
	ok(t, e.ctr(t, "tasks", "kill", "--all", "--signal", "SIGTERM", id), "ctr tasks kill --all")
	if st := events.waitExit(t, id, "sleeper"); st != 143 {
		t.Errorf("containerd's exit event: want the exec'd sleep killed by SIGTERM (143), got %d", st)
	}
	if st := events.waitExit(t, id, id); st != 42 {
		t.Errorf("containerd's exit event: want the init's exit status 42, got %d", st)
	}
	waitFor(t, "the task to stop after SIGTERM", func() (bool, string) {
		_, st := taskStatus()
		return st == "STOPPED", st
	})
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "init got TERM") {
		t.Errorf("the init did not report SIGTERM; its log:\n%s", b)
	}
	ok(t, e.ctr(t, "tasks", "delete", id), "ctr tasks delete")
	ok(t, e.ctr(t, "containers", "rm", id), "ctr containers rm")
	if ids := warrenList(t, e.warrenRootCtr()); slices.Contains(ids, id) {
		t.Errorf("warren still lists %s after ctr tasks delete: %v", id, ids)
	}
	for _, mnt := range cgroupMounts() {
		if _, err := os.Stat(filepath.Join(mnt, e.ctrNS, id)); err == nil {
			t.Errorf("cgroup %s left behind", filepath.Join(mnt, e.ctrNS, id))
		}
	}
}
