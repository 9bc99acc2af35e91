package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// startSleeper runs a detached container (all eight namespaces new, a user
// namespace mapping root to 100000) whose init sleeps.
func startSleeper(t *testing.T) (*bundle, *ctr) {
	t.Helper()
	b := newBundle(t)
	setNamespaces(b.spec, allNSTypes...)
	withUserNS(b.spec)
	b.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64p(64)}
	b.setArgs("/testinit", "sleep", "1000")
	return b, b.runDetached(newID(t))
}

// exec joins all eight namespaces of the init and its cgroup, and the
// process gets the container's defaults with the requested overrides and no
// inheritable capabilities.
func TestExecJoinsEveryNamespace(t *testing.T) {
	t.Parallel()
	b, c := startSleeper(t)
	initNS, err := readNamespaces(strconv.Itoa(c.pid))
	if err != nil {
		t.Fatal(err)
	}
	r := b.mustWarren("exec", "-u", "1000:1000", "--cwd", "/tmp", c.id, "/bin/sh", "-c", "/testinit report; echo ---; cat /proc/1/cgroup")
	rep, init1, ok := strings.Cut(r.stdout, "---\n")
	if !ok {
		t.Fatalf("unexpected exec output:\n%s", r)
	}
	var got report
	decodeJSON(t, strings.TrimSpace(rep), &got)
	for _, typ := range allNSTypes {
		n := nsEntry[typ]
		if got.Namespaces[n] != initNS[n] || got.Namespaces[n] == 0 {
			t.Errorf("exec'd process %s namespace %d, the init's %d", n, got.Namespaces[n], initNS[n])
		}
	}
	if got.Cgroup != init1 {
		t.Errorf("exec'd process cgroup\n%s\ninit's\n%s", got.Cgroup, init1)
	}
	if got.UID != 1000 || got.GID != 1000 {
		t.Errorf("exec -u 1000:1000: uid %d gid %d", got.UID, got.GID)
	}
	if got.Cwd != "/tmp" {
		t.Errorf("exec --cwd /tmp: cwd %q", got.Cwd)
	}
	if got.Caps["CapInh"] != "0000000000000000" {
		t.Errorf("CapInh = %s, want 0", got.Caps["CapInh"])
	}
	if got.PID < 2 {
		t.Errorf("exec'd process has pid %d in the container's pid namespace", got.PID)
	}
	if !strings.Contains(got.UIDMap, "100000") {
		t.Errorf("uid_map %q: exec is not in the container's user namespace", got.UIDMap)
	}
}

func TestExecOptions(t *testing.T) {
	t.Parallel()
	b, c := startSleeper(t)
	t.Run("ExitStatusAndEnv", func(t *testing.T) {
		r := b.warren("exec", "-e", "FOO=bar", c.id, "/bin/sh", "-c", "echo $FOO; exit 5")
		if r.code != 5 || strings.TrimSpace(r.stdout) != "bar" {
			t.Errorf("exec -e FOO=bar 'echo $FOO; exit 5': exit %d, output %q", r.code, r.stdout)
		}
	})
	t.Run("CapIsNotInheritable", func(t *testing.T) {
		r := b.mustWarren("exec", "--cap", "CAP_SYS_ADMIN", c.id, "/testinit", "report")
		var got report
		decodeJSON(t, strings.TrimSpace(r.stdout), &got)
		bnd, _ := strconv.ParseUint(got.Caps["CapBnd"], 16, 64)
		if bnd&(1<<21) == 0 {
			t.Errorf("--cap CAP_SYS_ADMIN not in the bounding set %s", got.Caps["CapBnd"])
		}
		if got.Caps["CapInh"] != "0000000000000000" || got.Caps["CapAmb"] != "0000000000000000" {
			t.Errorf("--cap leaked into inheritable/ambient: %v", got.Caps)
		}
	})
	t.Run("ProcessJSON", func(t *testing.T) {
		p := specs.Process{Args: []string{"/bin/sh", "-c", "echo from-json $X; pwd"}, Env: []string{"PATH=/bin", "X=1"}, Cwd: "/etc"}
		data, _ := json.Marshal(p)
		path := filepath.Join(b.base, "process.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r := b.mustWarren("exec", "--process", path, c.id)
		if r.stdout != "from-json 1\n/etc\n" {
			t.Errorf("exec --process: output %q", r.stdout)
		}
	})
	t.Run("DetachPidFile", func(t *testing.T) {
		pidFile := filepath.Join(b.tempDir("pid"), "exec.pid")
		b.mustWarren("exec", "-d", "--pid-file", pidFile, c.id, "/testinit", "sleep", "1000")
		data, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(string(data))
		if !procAlive(pid) {
			t.Fatalf("pid file names %d, which is not running", pid)
		}
		cg, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		initCg, _ := os.ReadFile("/proc/" + strconv.Itoa(c.pid) + "/cgroup")
		if string(cg) != string(initCg) {
			t.Errorf("detached exec's cgroup\n%s\ninit's\n%s", cg, initCg)
		}
		var r result
		waitFor(t, "ps to list the detached exec", func() bool {
			r = b.warren("ps", "--format", "json", c.id)
			return strings.Contains(r.stdout, strconv.Itoa(pid))
		}, func() string { return r.String() })
	})
	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"exec", c.id, "/no/such/binary"}, "/no/such/binary"},
			{[]string{"exec", "--apparmor", "x", c.id, "true"}, "--apparmor"},
			{[]string{"exec", "-u", "bob", c.id, "true"}, "--user"},
			{[]string{"exec", "--cap", "CAP_NOPE", c.id, "true"}, "CAP_NOPE"},
			{[]string{"exec", "-d", "-t", c.id, "true"}, "console"},
			{[]string{"exec", "no-such-container", "true"}, "no-such-container"},
		} {
			r := b.warren(tc.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("warren %v: exit %d, stderr %q; want failure naming %q", tc.args, r.code, r.stderr, tc.want)
			}
		}
	})
	t.Run("Paused", func(t *testing.T) {
		b.mustWarren("pause", c.id)
		defer b.mustWarren("resume", c.id)
		if r := b.warren("exec", c.id, "true"); r.code == 0 || !strings.Contains(r.stderr, "paused") {
			t.Errorf("exec into a paused container: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func TestExecStoppedContainerFails(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setArgs("/testinit", "exit", "0")
	c := b.create(newID(t))
	c.startIt()
	b.waitStatus(c.id, "stopped")
	if r := b.warren("exec", c.id, "true"); r.code == 0 || !strings.Contains(r.stderr, "stopped") {
		t.Errorf("exec into a stopped container: exit %d, stderr %q", r.code, r.stderr)
	}
}

// openPty returns a new pseudo-terminal pair for driving warren as a user
// at a terminal would.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 111})
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// runOnPty runs warren with a pty as its stdio, feeds input, and returns
// everything it printed and its exit status.
func runOnPty(t *testing.T, b *bundle, input string, args ...string) (string, int) {
	t.Helper()
	master, slave := openPty(t)
	cmd := exec.Command(warrenBin, append([]string{"--root", b.root}, args...)...)
	cmd.Dir = b.dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	if input != "" {
		master.Write([]byte(input))
	}
	out := make(chan string)
	go func() {
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		out <- string(all)
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("warren %v on a pty did not finish", args)
	}
	master.SetReadDeadline(time.Now().Add(5 * time.Second))
	return <-out, cmd.ProcessState.ExitCode()
}

// A terminal through a real pseudo-terminal: the process sees a tty of its
// own devpts as stdio, the window size of the user's terminal, and warren
// restores the terminal and exits with the process's status.
func TestTerminalRunAndExec(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Process.Terminal = true
	b.setScript(`tty; stty size; test -t 0 && echo stdin-is-a-tty; read line; echo got:$line; exit 4`)
	b.writeSpec()
	id := newID(t)
	b.track(id)
	out, code := runOnPty(t, b, "hello\n", "run", "--bundle", b.dir, id)
	for _, want := range []string{"/dev/pts/0", "33 111", "stdin-is-a-tty", "got:hello"} {
		if !strings.Contains(out, want) {
			t.Errorf("run -t output lacks %q:\n%q", want, out)
		}
	}
	if code != 4 {
		t.Errorf("run with a terminal: exit %d, want 4", code)
	}

	b2, c := startSleeper(t)
	out, code = runOnPty(t, b2, "", "exec", "-t", c.id, "/bin/sh", "-c", "tty; stty size; exit 6")
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "33 111") || code != 6 {
		t.Errorf("exec -t: exit %d, output %q", code, out)
	}
}

// --console-socket: the pty master arrives over the socket (SCM_RIGHTS) as
// containerd and conmon expect, and carries the container's output.
func TestConsoleSocket(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Process.Terminal = true
	b.setScript(`tty; echo console-ok`)
	sock := filepath.Join(b.tempDir("console"), "c.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan *os.File, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			got <- nil
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		if len(fds) != 1 {
			got <- nil
			return
		}
		got <- os.NewFile(uintptr(fds[0]), "master")
	}()
	c := b.create(newID(t), "--console-socket", sock)
	master := <-got
	if master == nil {
		t.Fatal("no pty master received on the console socket")
	}
	defer master.Close()
	c.startIt()
	master.SetReadDeadline(time.Now().Add(20 * time.Second))
	var all []byte
	buf := make([]byte, 1024)
	for !strings.Contains(string(all), "console-ok") {
		n, err := master.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !strings.Contains(string(all), "/dev/pts/0") || !strings.Contains(string(all), "console-ok") {
		t.Errorf("output through the received master: %q", all)
	}
	if r := b.warren("create", "--bundle", b.dir, newID(t)); r.code == 0 || !strings.Contains(r.stderr, "console") {
		t.Errorf("create with a terminal and no --console-socket: exit %d, stderr %q", r.code, r.stderr)
	}
}

// enter joins chosen namespaces of a warren container, or of any process,
// here one of a container run by runc.
func TestEnter(t *testing.T) {
	t.Parallel()
	b, c := startSleeper(t)
	r := b.mustWarren("enter", "--target", c.id, "-u", "-n", "--", "/bin/hostname")
	if strings.TrimSpace(r.stdout) != b.spec.Hostname {
		t.Errorf("enter -u into %s: hostname %q, want %q", c.id, r.stdout, b.spec.Hostname)
	}
	r = b.mustWarren("enter", "--target", strconv.Itoa(c.pid), "--", "/testinit", "report")
	var got report
	decodeJSON(t, strings.TrimSpace(r.stdout), &got)
	initNS, _ := readNamespaces(strconv.Itoa(c.pid))
	for _, n := range []string{"mnt", "net", "uts", "ipc", "pid", "user", "cgroup"} {
		if got.Namespaces[n] != initNS[n] {
			t.Errorf("enter --target PID (all namespaces): %s %d, target's %d", n, got.Namespaces[n], initNS[n])
		}
	}
	if r := b.warren("enter", "--target", "999999999"); r.code == 0 {
		t.Errorf("enter into a missing pid succeeded")
	}

	runc, err := exec.LookPath("runc")
	if err != nil {
		if os.Getenv("WARREN_PEERS_REQUIRED") != "" {
			t.Fatal("runc is required (WARREN_PEERS_REQUIRED is set) but not installed")
		}
		t.Skip("runc not installed: skipping enter into a runc container")
	}
	rb := newBundle(t)
	rb.spec.Version = "1.0.2"
	rb.spec.Hostname = "made-by-runc"
	rb.setArgs("/testinit", "sleep", "1000")
	rb.writeSpec()
	rroot := filepath.Join(rb.base, "runc-root")
	id := newID(t)
	// Files, not pipes: the detached container keeps runc's stdio open.
	logf, err := os.Create(filepath.Join(rb.base, "runc.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	rc := exec.Command(runc, "--root", rroot, "run", "-d", "--bundle", rb.dir, id)
	rc.Stdout, rc.Stderr = logf, logf
	if err := rc.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("runc run -d: %v\n%s", err, out)
	}
	defer exec.Command(runc, "--root", rroot, "delete", "-f", id).Run()
	st, err := exec.Command(runc, "--root", rroot, "state", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	var rs struct{ Pid int }
	json.Unmarshal(st, &rs)
	r = rb.mustWarren("enter", "--target", strconv.Itoa(rs.Pid), "-m", "-u", "--", "/bin/hostname")
	if strings.TrimSpace(r.stdout) != "made-by-runc" {
		t.Errorf("enter into runc's container: hostname %q", r.stdout)
	}
}

// exec applies process settings through stage 0's C tail (no Go runtime in
// the container process), create through the Go init. The same process
// settings must give the same process either way: ids, groups, umask, cwd,
// env (HOME from the container's /etc/passwd), the five capability sets,
// rlimits, no_new_privs, open fds, and a seccomp filter loaded without
// no_new_privs; and the same errors, worded alike.
func TestExecMatchesInit(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Root.Readonly = false
	writeFile(t, filepath.Join(b.rootfs, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n")
	if err := os.Chmod(filepath.Join(b.rootfs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	p := b.spec.Process
	p.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 7}, Umask: ptr(uint32(0o027))}
	p.Env = []string{"PATH=/bin", "A=1"}
	p.Cwd = "/tmp"
	some := []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}
	p.Capabilities = &specs.LinuxCapabilities{
		Bounding: append([]string{"CAP_KILL"}, some...), Effective: some, Permitted: some,
		Inheritable: some, Ambient: []string{"CAP_NET_BIND_SERVICE"},
	}
	p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 200, Hard: 300}, {Type: "RLIMIT_CORE", Soft: 0, Hard: 0}}
	p.NoNewPrivileges = false // the filter is then loaded before the capabilities drop
	b.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(95))}},
	}
	const probe = "/testinit report; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/d 2>&1"
	b.setScript(probe + "; exec /testinit sleep 1000")
	c := b.runDetached(newID(t))
	c.waitOutput("NoNewPrivs:")

	pj := *p
	pj.Args = []string{"/bin/sh", "-c", probe}
	data, _ := json.Marshal(pj)
	path := filepath.Join(b.tempDir("process"), "process.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := b.warren("exec", "--process", path, c.id)
	if r.err != nil || !strings.Contains(r.stdout, "NoNewPrivs:") {
		t.Fatalf("exec --process:\n%s", r)
	}
	split := func(out string) (report, string) {
		rep, rest, _ := strings.Cut(out, "\n")
		var got report
		decodeJSON(t, rep, &got)
		return got, rest
	}
	fromInit, initRest := split(c.output())
	fromExec, execRest := split(r.stdout)
	if fromExec.UID != 1000 || fromExec.GID != 1000 || fromExec.Cwd != "/tmp" || fromExec.Umask != 0o027 {
		t.Errorf("exec'd process: uid %d gid %d cwd %q umask %#o", fromExec.UID, fromExec.GID, fromExec.Cwd, fromExec.Umask)
	}
	if !slices.Contains(fromExec.Env, "HOME=/home/u") || !slices.Contains(fromExec.Env, "A=1") {
		t.Errorf("exec'd process env %q: want A=1 and HOME=/home/u from /etc/passwd", fromExec.Env)
	}
	if fromExec.Caps["CapAmb"] != capMask(t, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("exec'd process CapAmb %s", fromExec.Caps["CapAmb"])
	}
	if l := fromExec.Rlimits["RLIMIT_NOFILE"]; l.Soft != 200 || l.Hard != 300 {
		t.Errorf("exec'd process RLIMIT_NOFILE %d/%d", l.Soft, l.Hard)
	}
	type view struct {
		UID, EUID, GID, EGID int
		Groups               []int
		Cwd                  string
		Env                  []string
		Umask                int
		Caps                 map[string]string
		NoNewPrivs           int
		Rlimits              any
		FDs                  []int
	}
	v := func(r report) view {
		return view{r.UID, r.EUID, r.GID, r.EGID, r.Groups, r.Cwd, r.Env, r.Umask, r.Caps, r.NoNewPrivs, r.Rlimits, r.FDs}
	}
	gi, ge := fmt.Sprintf("%+v", v(fromInit)), fmt.Sprintf("%+v", v(fromExec))
	if gi != ge {
		t.Errorf("the init (Go) and the exec'd process (C tail) differ:\ninit %s\nexec %s", gi, ge)
	}
	for _, want := range []string{"Seccomp:\t2", "NoNewPrivs:\t0", "not supported"} {
		if !strings.Contains(initRest, want) || !strings.Contains(execRest, want) {
			t.Errorf("want %q from both:\ninit:\n%s\nexec:\n%s", want, initRest, execRest)
		}
	}

	// Errors: the same words as the Go init's.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", c.id, "no-such-binary"}, `process.args[0]: exec: "no-such-binary": executable file not found in $PATH`},
		{[]string{"exec", c.id, "/no/such"}, `process.args[0]: exec "/no/such": no such file or directory`},
		{[]string{"exec", c.id, "/etc"}, `process.args[0]: exec "/etc": is a directory`},
		{[]string{"exec", c.id, "/etc/passwd"}, `process.args[0]: exec "/etc/passwd": permission denied`},
		{[]string{"exec", "--cwd", "/nope", c.id, "true"}, "process.cwd: chdir to /nope: no such file or directory"},
	} {
		r := b.warren(tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("warren %v: exit %d, stderr %q; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
