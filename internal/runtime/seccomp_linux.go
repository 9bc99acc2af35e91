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
	notify, err := recvFd(parent, msgSeccompFd, "seccomp notify fd")
	if err != nil {
		return fmt.Errorf("linux.seccomp: %w", err)
	}
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
