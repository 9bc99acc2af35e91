package runtime

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strconv"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/linux"
)

// Preparing the rootfs in the runtime.
//
// The container's init used to be the Go init: a second Go runtime start
// (~7 ms here, and ~2 MiB charged to the container) only to make mounts
// and apply the process settings. In the usual case the runtime now makes
// the mounts itself, from a thread of its own that joined the container's
// mount, network, IPC, UTS and cgroup namespaces (each allowed to one
// thread of a multi-threaded process once it stops sharing its filesystem
// attributes), and stage 0's C tail applies the process settings:
//
//	warren create                                 container process (C)
//	  <── msgPid ──────────────────────────────── stage 0 made the namespaces
//	  ── msgProcCtx ('f') ───────────────────────>
//	  <── 'F' + fd ─────────────────────────────── fsopen("proc") in its pid ns
//	  thread: unshare(CLONE_FS), setns mnt/net/ipc/uts/cgroup,
//	    lo up, setupRootfs (proc from that context), [prestart and
//	    createRuntime hooks, from another goroutine], hostname, sysctls,
//	    oom_score_adj, pivot_root (which moves the init's root too)
//	  ── msgTail {plan} ─────────────────────────> setsid, keyring, user,
//	  <── msgReady ─────────────────────────────── caps, ...; wait exec.fifo
//
// setupRootfs and enterRootfs are the very code the Go init runs, with the
// same privileges: root of the host with no user namespace in between,
// which is one of the conditions (canPrepareInRuntime). Everything else
// takes the Go init.

// envGoInit, set to anything, makes create use the Go init whatever the
// config (for comparing the two paths, see TestPreparedMatchesGoInit).
const envGoInit = "WARREN_GO_INIT"

// msgProcCtx asks the container's process for a proc fs context; it
// answers with one byte 'F' carrying the fd (SCM_RIGHTS).
const (
	msgProcCtx      = 'f'
	msgProcCtxReply = 'F'
)

// bootProcCtx: stage 0's process sends a proc context before its tail.
const bootProcCtx = 1 << 3

// canPrepareInRuntime reports whether the runtime can prepare this
// container's rootfs itself; if not, why.
func canPrepareInRuntime(o CreateOpts, clone uintptr, joins []nsJoin, idmapped int) (bool, string) {
	s := o.Spec
	p := s.Process
	procMounts := 0
	for _, m := range s.Mounts {
		if m.Type == "proc" && !isBindMount(m) {
			procMounts++
			if !linux.CanMountFromContext(linux.ParseMountOptions(m.Options)) {
				return false, "proc mount flags fsmount cannot set"
			}
		}
	}
	joinsUser := false
	for _, j := range joins {
		joinsUser = joinsUser || j.flag == unix.CLONE_NEWUSER
	}
	switch {
	case os.Getenv(envGoInit) != "":
		return false, envGoInit + " is set"
	case o.Rootless || os.Geteuid() != 0:
		return false, "rootless"
	case clone&unix.CLONE_NEWUSER != 0 || joinsUser:
		return false, "user namespace"
	case o.NoPivot:
		return false, "--no-pivot"
	case p == nil:
		return false, "no process"
	case p.Terminal:
		return false, "terminal"
	case s.Hooks != nil && (len(s.Hooks.CreateContainer) > 0 || len(s.Hooks.StartContainer) > 0):
		return false, "createContainer or startContainer hooks"
	case s.Linux.Seccomp != nil && linux.HasNotify(s.Linux.Seccomp):
		return false, "seccomp notify"
	case idmapped > 0:
		return false, "id-mapped mounts"
	case procMounts > 1:
		return false, "several proc mounts"
	case procMounts == 1 && !fsopenWorks():
		return false, "no fsopen(2)"
	}
	return true, ""
}

var fsopenWorks = sync.OnceValue(func() bool {
	fd, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
})

// requestProcContext gets the proc fs context from the container's process.
func requestProcContext(parent *os.File) (*os.File, error) {
	if err := writeMsg(parent, msgProcCtx, nil); err != nil {
		return nil, fmt.Errorf("ask the container's process for a proc context: %w", err)
	}
	return recvFd(parent, msgProcCtxReply, "proc context")
}

// recvFd reads one byte want with an fd attached (SCM_RIGHTS). A framed
// msgError from the child in its place is returned as *childError.
func recvFd(parent *os.File, want byte, what string) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(parent.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive the %s from the container's process: %w", what, err)
	}
	if n != 1 {
		return nil, fmt.Errorf("container init exited before sending the %s (see its stderr)", what)
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if buf[0] == msgError {
		for _, fd := range fds {
			unix.Close(fd)
		}
		var hdr [4]byte
		if _, err := io.ReadFull(parent, hdr[:]); err != nil {
			return nil, fmt.Errorf("read from container init: %w", err)
		}
		msg := make([]byte, min(binary.LittleEndian.Uint32(hdr[:]), maxMsg))
		if _, err := io.ReadFull(parent, msg); err != nil {
			return nil, fmt.Errorf("read from container init: %w", err)
		}
		return nil, &childError{msg: string(msg)}
	}
	if buf[0] != want || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("sync protocol: expected %q with the %s, got %q with %d fds", want, what, buf[0], len(fds))
	}
	return os.NewFile(uintptr(fds[0]), what), nil
}

// prepareNS are the namespaces of the init the preparing thread joins,
// mount last: once there, /proc/PID is the container's view.
var prepareNS = []struct {
	file string
	flag int
}{
	{"net", unix.CLONE_NEWNET}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"cgroup", unix.CLONE_NEWCGROUP}, {"mnt", unix.CLONE_NEWNS},
}

// prepareRootfs does, for the init pid, what the Go init does before its
// process settings, from a thread of this process in the init's
// namespaces. hooks, if set, runs on another goroutine (in the runtime's
// own namespaces) once the mounts are made, before pivot_root, as the
// prestart and createRuntime hooks must.
func prepareRootfs(pid int, cfg *initConfig, hooks func() error) error {
	mounted := make(chan error, 1)
	resume := make(chan bool, 1)
	done := make(chan error, 1)
	onFreshThread(func() {
		proc, err := joinAndMount(pid, cfg)
		if hooks != nil || err != nil {
			mounted <- err
			if err != nil || !<-resume {
				if proc != nil {
					proc.Close()
				}
				return
			}
		}
		err = setNames(cfg.Spec, proc, strconv.Itoa(pid))
		proc.Close()
		if err == nil {
			err = enterRootfs(cfg)
		}
		done <- err
	})
	if hooks != nil {
		if err := <-mounted; err != nil {
			return err
		}
		if err := hooks(); err != nil {
			resume <- false
			return err
		}
		resume <- true
	}
	select {
	case err := <-mounted:
		return err
	case err := <-done:
		return err
	}
}

// joinAndMount is the first half of prepareRootfs, on the locked thread.
func joinAndMount(pid int, cfg *initConfig) (*linux.Proc, error) {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return nil, fmt.Errorf("prepare the rootfs: unshare(CLONE_FS): %w", err)
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/ns/"
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, ns := range prepareNS {
		fd, err := unix.Open(dir+ns.file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("prepare the rootfs: open %s%s: %w", dir, ns.file, err)
		}
		fds = append(fds, fd)
	}
	for i, ns := range prepareNS {
		if err := unix.Setns(fds[i], ns.flag); err != nil {
			return nil, fmt.Errorf("prepare the rootfs: join the container's %s namespace: %w", ns.file, err)
		}
	}
	if cfg.NewNetNS {
		if err := linux.LoopbackUp(); err != nil {
			return nil, err
		}
	}
	proc, err := linux.OpenProc("/proc")
	if err != nil {
		return nil, err
	}
	if err := setupRootfs(cfg); err != nil {
		proc.Close()
		return nil, err
	}
	return proc, nil
}

// onFreshThread runs fn on a goroutine locked to a thread that ends with
// it, so whatever fn changes in its thread (namespaces, root, cwd) dies
// with the thread. The main thread cannot end (Go parks it instead, and
// /proc/self describes it): there fn moves to another thread.
func onFreshThread(fn func()) {
	go func() {
		goruntime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// While this goroutine holds the main thread, the new one
			// cannot be scheduled on it.
			finished := make(chan struct{})
			onFreshThread(func() {
				defer close(finished)
				fn()
			})
			<-finished
			goruntime.UnlockOSThread()
			return
		}
		fn()
	}()
}

// initPlan is the C tail's plan for a container's init prepared by the
// runtime: the process settings plus its own session, keyring and the
// wait on the exec fifo.
func initPlan(s *specs.Spec, cfg *initConfig) ([]byte, error) {
	ti := tailInit{Setsid: true, FifoFd: cfg.FifoFd}
	if !cfg.NoNewKeyring {
		ti.Keyring = "_ses." + cfg.ID
	}
	return tailPlan(s.Process, s.Linux.Seccomp, 3+cfg.PreserveFDs, linux.LastCap(), ti)
}
