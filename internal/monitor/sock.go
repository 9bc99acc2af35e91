package monitor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// The sockets here are raw AF_UNIX sockets wrapped in *os.File (which
// puts a non-blocking fd on the runtime's poller, so reads park a
// goroutine, not a thread, and Close or a deadline interrupts them).
// Package net would do the same, but its weight (resolver, init) would be
// paid by every one of the hundreds of idle monitors.

// maxSunPath is the room for a path in sockaddr_un.sun_path, less its NUL.
const maxSunPath = len(unix.RawSockaddrUnix{}.Path) - 1

// sockPath returns an address for the socket name in dir. sun_path holds
// 107 bytes; for a longer path the address goes through an O_PATH fd of
// dir, /proc/<proc>/fd/<fd>/name, which the kernel resolves at bind or
// connect time. proc is "self" for our own use, our pid for a path given
// to another process (the runtime's --console-socket). release closes the
// fd once the bind or connect is done.
func sockPath(dir, name, proc string) (addr string, release func(), err error) {
	p := filepath.Join(dir, name)
	if len(p) <= maxSunPath {
		return p, func() {}, nil
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return "/proc/" + proc + "/fd/" + strconv.Itoa(fd) + "/" + name, func() { unix.Close(fd) }, nil
}

// listenUnix listens on dir/name, mode 0600, replacing a stale socket.
func listenUnix(dir, name string) (*os.File, error) {
	p := filepath.Join(dir, name)
	addr, release, err := sockPath(dir, name, "self")
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", p, err)
	}
	defer release()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: remove stale socket: %w", p, err)
	}
	// The socket file is created 0777 less the umask: 0177 makes it
	// 0600 from the start, with no window in which others may connect.
	// Only monitor goroutines run now and none of them creates files.
	old := unix.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: addr})
	unix.Umask(old)
	if err == nil {
		err = unix.Listen(fd, 64)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", p, err)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// acceptUnix accepts one connection, parking the goroutine on the poller.
func acceptUnix(l *os.File) (*os.File, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		return aerr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, aerr
	}
	return os.NewFile(uintptr(nfd), l.Name()), nil
}

// dialUnix connects to dir/name. errdefs.ErrNotFound when nothing
// listens there (no socket, or a stale one left by a dead monitor).
func dialUnix(dir, name string) (*os.File, error) {
	p := filepath.Join(dir, name)
	addr, release, err := sockPath(dir, name, "self")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("connect to monitor %s: %w", p, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("connect to monitor %s: %w", p, err)
	}
	defer release()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("connect to monitor %s: %w", p, err)
	}
	// A blocking connect: a non-blocking one fails with EAGAIN when the
	// listen backlog is full instead of waiting its turn.
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: addr})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		if err == unix.ENOENT || err == unix.ECONNREFUSED || err == unix.ENOTDIR {
			return nil, fmt.Errorf("connect to monitor %s: no monitor listens (%v): %w", p, err, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("connect to monitor %s: %w", p, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to monitor %s: %w", p, err)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// RecvConsole receives the pty master a runtime sends on a console
// socket (one fd with SCM_RIGHTS, close-on-exec from the start; the body
// is a name we ignore) and checks it is a terminal before anyone relays
// through it. The engine's terminal exec uses it too. internal/linux has
// the same few lines, but importing it would link its seccomp (cgo) and
// mount code into every monitor and into warrend.
func RecvConsole(conn *os.File) (*os.File, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var n, oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	var fds []int
	for i := range msgs {
		if got, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive pty master: want one fd, got %d", len(fds))
	}
	// The console target must be what it claims before we relay through
	// it: a character device that answers terminal ioctls.
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive pty master: the fd received is not a character device")
	}
	if _, err := unix.IoctlGetTermios(fds[0], unix.TCGETS); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive pty master: the fd received is not a terminal: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master:"+string(buf[:n])), nil
}
