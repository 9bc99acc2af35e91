package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/api/client"
)

// eachRuntime runs f once per installed OCI runtime, each with its own
// daemon whose default runtime it is: the engine's behaviour must not
// depend on which runtime runs the containers.
func eachRuntime(t *testing.T, f func(t *testing.T, d *daemon)) {
	for _, rt := range []string{"warren", "runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			if _, ok := runtimes(t, t.TempDir())[rt]; !ok {
				if os.Getenv("WARREN_PEERS_REQUIRED") != "" {
					t.Fatalf("%s is not installed (WARREN_PEERS_REQUIRED is set)", rt)
				}
				t.Skipf("%s is not installed", rt)
			}
			f(t, newDaemon(t, rt))
		})
	}
}

func hostNs(t *testing.T, ns string) string {
	l, err := os.Readlink("/proc/self/ns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// noTraces checks the host after every container is gone: no mounts
// under the root, no runtime state, no container directories, no cgroup.
func noTraces(t *testing.T, d *daemon, ids ...string) {
	t.Helper()
	mountsUnder(t, d.root, true)
	ents, _ := os.ReadDir(filepath.Join(d.root, "containers"))
	if len(ents) > 0 {
		t.Errorf("container directories left: %v", ents)
	}
	rts, _ := os.ReadDir(filepath.Join(d.root, "run"))
	for _, rt := range rts {
		sub, _ := os.ReadDir(filepath.Join(d.root, "run", rt.Name()))
		for _, s := range sub {
			if s.IsDir() {
				t.Errorf("runtime %s still has state for %s", rt.Name(), s.Name())
			}
		}
	}
	for _, id := range ids {
		for _, c := range []string{"memory", "pids", "cpu"} {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, "warren", id)); err == nil {
				t.Errorf("cgroup %s/warren/%s left", c, id)
			}
		}
	}
	for _, p := range d.podIDs {
		if left, _ := filepath.Glob("/sys/fs/cgroup/*/warren/pod-" + p[:12]); len(left) > 0 {
			t.Errorf("pod cgroups left: %v", left)
		}
	}
	for _, pid := range monitors(t, d) {
		t.Errorf("monitor %d left", pid)
	}
}

func TestRunForeground(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		r := d.ctl("run", "--rm", "--name", "fg", "busybox", "sh", "-c", "echo out; echo err >&2; echo $$; exit 3")
		if r.code != 3 {
			t.Fatalf("exit %d, want 3\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
		}
		if r.stdout != "out\n1\n" || r.stderr != "err\n" {
			t.Errorf("stdout %q (want out, then pid 1), stderr %q", r.stdout, r.stderr)
		}
		if out := d.ctlOK("ps", "-a", "-q"); out != "" {
			t.Errorf("--rm left %q", out)
		}
		noTraces(t, d)
	})
}

func TestDetachedLifecycle(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		id := strings.TrimSpace(d.ctlOK("run", "-d", "--name", "web", "-e", "GREETING=hi", "-w", "/data", "busybox",
			"sh", "-c", `echo started $GREETING $IMAGE_VAR $(pwd); trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done`))
		if len(id) != 64 {
			t.Fatalf("run -d printed %q, want an id", id)
		}
		if d.ctl("run", "-d", "--name", "web", "busybox", "true").code == 0 {
			t.Error("a second container named web was created")
		}
		out := d.ctlOK("exec", "web", "sh", "-c", "echo $$; cat /data/seed; id -u")
		if f := strings.Fields(out); len(f) < 5 || f[0] == "1" || f[4] != "0" {
			t.Errorf("exec output %q", out)
		}
		if r := d.ctl("exec", "web", "sh", "-c", "exit 7"); r.code != 7 {
			t.Errorf("exec exit status %d, want 7", r.code)
		}
		if r := d.ctl("exec", "web", "/nonexistent"); r.code == 0 {
			t.Error("exec of a missing binary succeeded")
		}
		ps := d.ctlOK("ps")
		if !strings.Contains(ps, "web") || !strings.Contains(ps, "Up") {
			t.Errorf("ps:\n%s", ps)
		}
		waitFor(t, func() bool { return strings.Contains(d.ctlOK("logs", "web"), "started hi 1 /data") }, "log line")
		top := d.ctlOK("top", "web")
		if !strings.Contains(top, "while true") && !strings.Contains(top, "sh -c") {
			t.Errorf("top:\n%s", top)
		}
		d.ctlOK("pause", "web")
		if s := inspect(t, d, "web").State.Status; s != "paused" {
			t.Errorf("after pause: %s", s)
		}
		d.ctlOK("unpause", "web")
		d.ctlOK("stop", "web")
		c := inspect(t, d, "web")
		if c.State.Status != "exited" || c.State.ExitCode != 0 {
			t.Errorf("after stop: %+v", c.State)
		}
		if logs := d.ctlOK("logs", "web"); !strings.Contains(logs, "bye") {
			t.Errorf("the stop signal did not reach the trap: %q", logs)
		}
		if tail := d.ctlOK("logs", "--tail", "1", "web"); tail != "bye\n" {
			t.Errorf("logs --tail 1: %q", tail)
		}
		// Restarted, it runs again (and logs append).
		d.ctlOK("start", "web")
		waitFor(t, func() bool { return strings.Count(d.ctlOK("logs", "web"), "started") == 2 }, "second start")
		if d.ctl("rm", "web").code == 0 {
			t.Error("rm of a running container without -f succeeded")
		}
		d.ctlOK("rm", "-f", "web")
		if r := d.ctl("inspect", "web"); r.code == 0 || !strings.Contains(r.stderr, "no such container") {
			t.Errorf("inspect after rm: %d %s", r.code, r.stderr)
		}
		noTraces(t, d, id)
	})
}

func inspect(t *testing.T, d *daemon, ref string) api.Container {
	t.Helper()
	var cs []api.Container
	if err := json.Unmarshal([]byte(d.ctlOK("inspect", ref)), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	return cs[0]
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestNamespaceOptOuts(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		ns := func(args ...string) map[string]string {
			t.Helper()
			out := d.ctlOK(append(append([]string{"run", "--rm"}, args...), "busybox", "sh", "-c",
				"for n in pid net ipc uts mnt; do echo $n $(readlink /proc/self/ns/$n); done; echo if $(ls /sys/class/net); echo host $(hostname)")...)
			m := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				k, v, _ := strings.Cut(line, " ")
				m[k] = v
			}
			return m
		}
		host, _ := os.Hostname()
		def := ns()
		for _, n := range []string{"pid", "net", "ipc", "uts", "mnt"} {
			if def[n] == hostNs(t, n) || (n == "net" && def[n] == d.netnsLink()) {
				t.Errorf("default: %s namespace is the host's", n)
			}
		}
		if def["if"] != "eth0 lo" {
			t.Errorf("default network: interfaces %q, want eth0 and lo", def["if"])
		}
		if got := ns("--network", "none")["if"]; got != "lo" {
			t.Errorf("--network none: interfaces %q, want only lo", got)
		}
		hp := ns("--pid", "host", "--network", "host", "--ipc", "host", "--uts", "host")
		for _, n := range []string{"pid", "ipc", "uts"} {
			if hp[n] != hostNs(t, n) {
				t.Errorf("--%s host: %s, host's is %s", n, hp[n], hostNs(t, n))
			}
		}
		// The daemon's network namespace is its host's (the test runs
		// it in one of its own).
		if hp["net"] != d.netnsLink() {
			t.Errorf("--network host: %s, the daemon's is %s", hp["net"], d.netnsLink())
		}
		if hp["host"] != host {
			t.Errorf("--uts host: hostname %q, want %q", hp["host"], host)
		}
		if hp["mnt"] == hostNs(t, "mnt") {
			t.Error("the mount namespace is the host's")
		}
		// With the host's pid namespace, the host's processes are seen.
		if out := d.ctlOK("run", "--rm", "--pid", "host", "busybox", "cat", "/proc/1/comm"); strings.TrimSpace(out) == "sh" {
			t.Errorf("--pid host: pid 1 is %q", out)
		}
		// container:NAME joins another container's namespaces.
		d.ctlOK("run", "-d", "--name", "box", "busybox", "sleep", "60")
		pid := inspect(t, d, "box").State.Pid
		boxNet, _ := os.Readlink("/proc/" + itoa(pid) + "/ns/net")
		boxPid, _ := os.Readlink("/proc/" + itoa(pid) + "/ns/pid")
		j := ns("--network", "container:box", "--pid", "container:box")
		if j["net"] != boxNet || j["pid"] != boxPid {
			t.Errorf("container:box: net %s pid %s, box has %s %s", j["net"], j["pid"], boxNet, boxPid)
		}
		d.ctlOK("rm", "-f", "box")
		noTraces(t, d)
	})
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + jsonNum(n)) }

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestLimitsAndOptions(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		vol := t.TempDir()
		os.WriteFile(filepath.Join(vol, "in"), []byte("host file\n"), 0o644)
		out := d.ctlOK("run", "--rm", "-m", "64m", "--pids-limit", "33", "--cpus", "0.5", "-u", "app",
			"-v", vol+":/mnt/host:ro", "-v", "named:/mnt/named", "--cap-drop", "ALL", "--cap-add", "net_bind_service",
			"--hostname", "h1", "busybox", "sh", "-c",
			"cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; "+
				"id -u; id -g; cat /mnt/host/in; touch /mnt/host/x 2>&1 || echo ro; echo vol > /mnt/named/f 2>&1 || echo denied; hostname; grep CapEff /proc/self/status; echo home=$HOME; pwd")
		for _, want := range []string{"67108864", "33", "50000", "1000", "host file", "ro", "h1", "home=/home/app"} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in:\n%s", want, out)
			}
		}
		// cwd is the image's (none: /), as with docker, whatever the user.
		if !strings.HasSuffix(out, "\n/\n") {
			t.Errorf("cwd is not /:\n%s", out)
		}
		if !strings.Contains(out, "CapEff:\t0000000000000000") {
			t.Errorf("a non-root user kept effective capabilities:\n%s", out)
		}
		// The named volume persists across containers.
		d.ctlOK("run", "--rm", "-v", "named:/v", "busybox", "sh", "-c", "echo kept > /v/f")
		if got := d.ctlOK("run", "--rm", "-v", "named:/v", "busybox", "cat", "/v/f"); got != "kept\n" {
			t.Errorf("named volume: %q", got)
		}
		r := d.ctl("run", "--rm", "--read-only", "busybox", "touch", "/x")
		if r.code == 0 {
			t.Error("--read-only: writing / succeeded")
		}
		noTraces(t, d)
	})
}

func TestBadInput(t *testing.T) {
	d := newDaemon(t, "warren")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--rm", "nosuchimage"}, "no such image"},
		{[]string{"run", "--rm", "-m", "12x", "busybox"}, "--memory"},
		{[]string{"run", "--rm", "-v", "/does/not/exist:/x", "busybox"}, "/does/not/exist does not exist"},
		{[]string{"run", "--rm", "--restart", "sometimes", "busybox"}, "--restart"},
		{[]string{"run", "--rm", "--network", "bridge0", "busybox"}, "--network"},
		{[]string{"run", "--rm", "--pid", "container:ghost", "busybox"}, "ghost"},
		{[]string{"run", "--rm", "--cap-add", "CAP_FLY", "busybox"}, "CAP_FLY"},
		{[]string{"run", "--rm", "--runtime", "nope", "busybox"}, "runtime \"nope\""},
		{[]string{"run", "--rm", "--name", "bad/name", "busybox"}, "name"},
		{[]string{"run", "--rm", "busybox", "/no/such/binary"}, "/no/such/binary"},
		{[]string{"exec", "ghost", "true"}, "no such container"},
		{[]string{"stop", "ghost"}, "no such container"},
	} {
		r := d.ctl(c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("warrenctl %v: exit %d, stderr %q; want failure naming %q", c.args, r.code, r.stderr, c.want)
		}
	}
	d.ctlOK("run", "-d", "--name", "taken", "busybox", "sleep", "30")
	if r := d.ctl("run", "-d", "--name", "taken", "busybox", "true"); r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("duplicate name: %d %q", r.code, r.stderr)
	}
	d.ctlOK("rm", "-f", "taken")
	// The failed runs left nothing (the one whose command is missing is
	// recorded as exited by its --rm: gone too).
	waitFor(t, func() bool { return d.ctlOK("ps", "-a", "-q") == "" }, "no containers")
	noTraces(t, d)
}

// The same operations through the API directly, with the Go client.
func TestAPI(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		c := d.client()
		ctx := context.Background()
		v, err := c.Version(ctx)
		if err != nil || v.APIVersion != "v1" {
			t.Fatalf("version: %+v %v", v, err)
		}
		evctx, cancel := context.WithCancel(ctx)
		defer cancel()
		evs := make(chan api.Event, 100)
		go c.Events(evctx, "", func(ev api.Event) error { evs <- ev; return nil })
		time.Sleep(100 * time.Millisecond)
		resp, err := c.Create(ctx, api.ContainerConfig{Image: "busybox", Name: "apic", Cmd: []string{"sh", "-c", "echo via api; read line; echo got $line; exit 4"}, OpenStdin: true})
		if err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		w, err := c.StartAttached(ctx, resp.ID, client.Stream{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errb})
		if err != nil {
			t.Fatal(err)
		}
		if w.ExitCode != 4 || out.String() != "via api\ngot hello\n" {
			t.Errorf("attached run: exit %d, out %q, err %q", w.ExitCode, out.String(), errb.String())
		}
		var lines []string
		c.Logs(ctx, "apic", -1, false, func(l api.LogLine) error { lines = append(lines, l.Stream+":"+l.Log); return nil })
		if strings.Join(lines, "") != "stdout:via api\nstdout:got hello\n" {
			t.Errorf("logs: %q", lines)
		}
		// A terminal: size and input through exec.
		if _, err := c.Create(ctx, api.ContainerConfig{Image: "busybox", Name: "tty", Cmd: []string{"sleep", "60"}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx, "tty"); err != nil {
			t.Fatal(err)
		}
		resize := make(chan [2]uint16, 1)
		resize <- [2]uint16{33, 101}
		out.Reset()
		pr, pw := io_Pipe()
		go func() {
			time.Sleep(300 * time.Millisecond)
			pw.Write([]byte("stty size; tty; exit 5\n"))
		}()
		w, err = c.Exec(ctx, "tty", api.ExecConfig{Cmd: []string{"sh"}, Tty: true, OpenStdin: true}, client.Stream{Stdin: pr, Stdout: &out, Resize: resize})
		pw.Close()
		if err != nil {
			t.Fatal(err)
		}
		if w.ExitCode != 5 || !strings.Contains(out.String(), "33 101") || !strings.Contains(out.String(), "/dev/pts/") {
			t.Errorf("exec -t: exit %d (%s), output %q", w.ExitCode, w.Error, out.String())
		}
		if err := c.Remove(ctx, "tty", false); err == nil {
			t.Error("removing a running container without force succeeded")
		} else if e, ok := err.(*client.Error); !ok || e.Status != 409 {
			t.Errorf("remove running: %v, want a 409", err)
		}
		if _, err := c.Inspect(ctx, "ghost"); !client.IsNotFound(err) {
			t.Errorf("inspect ghost: %v, want a 404", err)
		}
		c.Remove(ctx, "tty", true)
		c.Remove(ctx, "apic", false)
		time.Sleep(200 * time.Millisecond)
		cancel()
		var actions []string
		for len(evs) > 0 {
			ev := <-evs
			if ev.Name == "apic" {
				actions = append(actions, ev.Action)
			}
		}
		if strings.Join(actions, ",") != "create,start,die,destroy" {
			t.Errorf("events of apic: %v", actions)
		}
		noTraces(t, d)
	})
}

var _ = sort.Strings

func io_Pipe() (*os.File, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	return r, w
}

// monitors lists the warren-monitor processes of d's containers (their
// open files are under d.root).
func monitors(t *testing.T, d *daemon) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != "warren-monitor" {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); strings.HasPrefix(l, d.root+"/") {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// A container may name its runtime: the engine keeps it (and its state
// directory) with the container.
func TestRuntimePerContainer(t *testing.T) {
	d := newDaemon(t, "warren")
	if _, ok := runtimes(t, t.TempDir())["runc"]; !ok {
		t.Skip("runc is not installed")
	}
	d.ctlOK("run", "-d", "--name", "r", "--runtime", "runc", "busybox", "sleep", "60")
	d.ctlOK("run", "-d", "--name", "w", "busybox", "sleep", "60")
	if rt := inspect(t, d, "r").Runtime; rt != "runc" {
		t.Errorf("runtime %q", rt)
	}
	for name, rt := range map[string]string{"r": "runc", "w": "warren"} {
		id := inspect(t, d, name).ID
		if _, err := os.Stat(filepath.Join(d.root, "run", rt, id)); err != nil {
			t.Errorf("%s: no state under the %s root: %v", name, rt, err)
		}
	}
	d.ctlOK("rm", "-f", "r", "w")
	noTraces(t, d)
}
