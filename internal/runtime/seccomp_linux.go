package runtime

import (
	"fmt"
	"os"

	json "github.com/go-json-experiment/json/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// recvSeccompFd reads the seccomp notify fd the init sends (one byte with
// SCM_RIGHTS) and hands it to the listener at linux.seccomp.listenerPath
// with the container process state, in the shape runc sends (the seccomp
// agent protocol: JSON with "fds": ["seccompFd"] and the fd attached).
func recvSeccompFd(parent *os.File, sc *specs.LinuxSeccomp, state specs.State, pid int) error {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(parent.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n != 1 || buf[0] != msgSeccompFd {
		return fmt.Errorf("linux.seccomp: receive the notify fd from init: %v", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("linux.seccomp: no notify fd from init")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("linux.seccomp: no notify fd from init")
	}
	notify := os.NewFile(uintptr(fds[0]), "seccomp-notify")
	defer notify.Close()
	if sc.ListenerPath == "" {
		return fmt.Errorf("linux.seccomp.listenerPath: SCMP_ACT_NOTIFY needs a listener")
	}
	doc, _ := json.Marshal(map[string]any{
		"ociVersion": specs.Version, "fds": []string{"seccompFd"}, "pid": pid,
		"metadata": sc.ListenerMetadata, "state": state,
	})
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	if err := unix.Connect(sock, &unix.SockaddrUnix{Name: sc.ListenerPath}); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: connect: %w", sc.ListenerPath, err)
	}
	if err := unix.Sendmsg(sock, doc, unix.UnixRights(int(notify.Fd())), nil, 0); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: send: %w", sc.ListenerPath, err)
	}
	return writeMsg(parent, msgSeccompDone, nil)
}
