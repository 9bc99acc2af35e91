package integration

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func u(v uint) *uint { return &v }

// A denied syscall returns the configured errno, an argument condition
// selects which calls are denied, a kill action kills, and exec'd
// processes get the same filter; the filter is loaded after no_new_privs.
func TestSeccompActions(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Root.Readonly = false
	b.spec.Process.NoNewPrivileges = true
	b.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: u(95)},
			// fchmodat only when the mode is 0777: chmod 700 still works.
			{Names: []string{"chmod"}, Action: specs.ActErrno, ErrnoRet: u(18),
				Args: []specs.LinuxSeccompArg{{Index: 1, Value: 0o777, Op: specs.OpEqualTo}}},
			{Names: []string{"fchmodat", "fchmodat2"}, Action: specs.ActErrno, ErrnoRet: u(18),
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0o777, Op: specs.OpEqualTo}}},
			{Names: []string{"sethostname"}, Action: specs.ActKillProcess},
			{Names: []string{"no_such_syscall_anywhere"}, Action: specs.ActErrno},
		},
	}
	b.setScript(`mkdir /tmp/d; echo mkdir=$?; touch /tmp/f; chmod 700 /tmp/f; echo chmod700=$?; chmod 777 /tmp/f; echo chmod777=$?; grep Seccomp: /proc/self/status; sleep 1000`)
	c := b.runDetached(newID(t))
	c.waitOutput("Seccomp:")
	out := c.output() + c.stderr()
	for _, want := range []string{"mkdir=1", "Operation not supported", "chmod700=0", "chmod777=1", "Invalid cross-device link", "Seccomp:\t2"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q:\n%s", want, out)
		}
	}
	// exec'd processes run under the container's filter too.
	r := b.warren("exec", c.id, "/bin/sh", "-c", "mkdir /tmp/e; echo exec-mkdir=$?")
	if !strings.Contains(r.stdout, "exec-mkdir=1") {
		t.Errorf("exec'd process not filtered: %s", r)
	}
	r = b.warren("exec", c.id, "/bin/hostname", "nope")
	if r.code != 128+int(unix.SIGSYS) {
		t.Errorf("SCMP_ACT_KILL_PROCESS on sethostname: exit %d, want %d (SIGSYS)\n%s", r.code, 128+int(unix.SIGSYS), r)
	}
}

// A bad profile fails create with the field named and leaves nothing.
func TestSeccompBadProfile(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: "SCMP_ACT_BOGUS"}}}
	id := newID(t)
	_, r := b.tryCreate(id)
	if r.code == 0 || !strings.Contains(r.stderr, "linux.seccomp.syscalls[0].action") {
		t.Errorf("bad seccomp action: exit %d, stderr %q", r.code, r.stderr)
	}
	b.assertNoLeftovers(id)
}

// SCMP_ACT_NOTIFY: the listener at listenerPath receives the notify fd with
// the state and metadata, and answers the container's syscall.
func TestSeccompNotify(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Root.Readonly = false
	b.spec.Process.NoNewPrivileges = true
	sock := filepath.Join(b.tempDir("agent"), "agent.sock")
	b.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "meta-42",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	b.setScript(`mkdir /tmp/n; echo mkdir=$?`)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		doc    map[string]any
		served int
		err    error
	}
	done := make(chan got, 1)
	var stop atomic.Bool
	go func() {
		var g got
		defer func() { done <- g }()
		conn, err := l.AcceptUnix()
		if err != nil {
			g.err = err
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 64<<10), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			g.err = err
			return
		}
		json.Unmarshal(buf[:n], &g.doc)
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		if len(fds) != 1 {
			return
		}
		fd := fds[0]
		defer unix.Close(fd)
		// Answer every notification until the container is done: mkdir
		// fails with EXDEV, chosen by the listener. The kernel ABI
		// directly (struct seccomp_notif, seccomp_notif_resp), so this
		// test builds without cgo. Poll, so that the loop ends when the
		// test says so even on kernels where RECV blocks after the last
		// filtered process is gone.
		for {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(pfd, 100)
			if stop.Load() {
				return
			}
			if n <= 0 {
				continue
			}
			if pfd[0].Revents&unix.POLLIN == 0 {
				return // POLLHUP: no filtered process left
			}
			var req struct {
				ID    uint64
				Pid   uint32
				Flags uint32
				Nr    int32
				Arch  uint32
				IP    uint64
				Args  [6]uint64
			}
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); e != 0 {
				return
			}
			resp := struct {
				ID    uint64
				Val   int64
				Error int32
				Flags uint32
			}{ID: req.ID, Error: -int32(unix.EXDEV)}
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); e == 0 {
				g.served++
			}
		}
	}()
	out := b.runOK()
	stop.Store(true)
	if !strings.Contains(out, "mkdir=1") {
		t.Errorf("container output %q: mkdir should have failed as the listener answered", out)
	}
	var g got
	select {
	case g = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("listener did not finish")
	}
	if g.err != nil {
		t.Fatal(g.err)
	}
	if g.served < 1 {
		t.Errorf("listener answered %d notifications, want at least 1", g.served)
	}
	if g.doc["metadata"] != "meta-42" || g.doc["ociVersion"] == nil {
		t.Errorf("listener message %v: want metadata meta-42 and the state", g.doc)
	}
	if fds, _ := g.doc["fds"].([]any); len(fds) != 1 || fds[0] != "seccompFd" {
		t.Errorf("listener message fds %v, want [seccompFd]", g.doc["fds"])
	}
	_ = os.Getpid
}

// A tight RLIMIT_AS with a seccomp profile: the filter is compiled before
// the limits apply and loaded with one system call, so the runtime (whose
// Go heap reserves far more address space) is not starved (a conformance
// suite case: process_rlimits).
func TestSeccompWithTightAddressSpaceLimit(t *testing.T) {
	t.Parallel()
	for _, nnp := range []bool{true, false} {
		b := newBundle(t)
		b.spec.Process.NoNewPrivileges = nnp
		b.spec.Process.Rlimits = append(b.spec.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_AS", Soft: 1 << 30, Hard: 1 << 30})
		b.spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}}}
		b.setScript("ulimit -v; grep Seccomp: /proc/self/status")
		out := b.runOK()
		if !strings.Contains(out, "1048576") || !strings.Contains(out, "Seccomp:\t2") {
			t.Errorf("noNewPrivileges=%v: output %q, want RLIMIT_AS 1 GiB and a filter", nnp, out)
		}
	}
}
