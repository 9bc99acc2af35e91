package linux

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenPty opens a new pseudo-terminal pair from the ptmx at ptmx (an fd
// opened by the caller inside the container's devpts). The peer is opened
// with TIOCGPTPEER, never by a /dev/pts/N path that could be swapped for a
// symlink (CVE-2025-52565 class), and both ends are checked to be what they
// claim: the master on a devpts, the peer a pty device.
func OpenPty(ptmx *os.File) (master, peer *os.File, err error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(ptmx.Fd()), &st); err != nil {
		return nil, nil, fmt.Errorf("statfs %s: %w", ptmx.Name(), err)
	}
	if st.Type != unix.DEVPTS_SUPER_MAGIC {
		return nil, nil, fmt.Errorf("%s is not on a devpts filesystem (magic %#x)", ptmx.Name(), st.Type)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	fd, err := ptyPeer(int(ptmx.Fd()))
	if err != nil {
		return nil, nil, fmt.Errorf("open pty peer: %w", err)
	}
	peer = os.NewFile(uintptr(fd), "pty-peer")
	var pst unix.Stat_t
	if err := unix.Fstat(fd, &pst); err != nil || pst.Mode&unix.S_IFMT != unix.S_IFCHR {
		peer.Close()
		return nil, nil, fmt.Errorf("pty peer is not a character device")
	}
	return ptmx, peer, nil
}

// ptyPeer opens the peer of master (TIOCGPTPEER takes the open flags).
func ptyPeer(master int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// SendFd sends f over the unix socket sock with SCM_RIGHTS; name travels as
// the message body (containerd and conmon read the fd, runc sends a name).
func SendFd(sock *os.File, name string, f *os.File) error {
	rights := unix.UnixRights(int(f.Fd()))
	if err := unix.Sendmsg(int(sock.Fd()), []byte(name), rights, nil, 0); err != nil {
		return fmt.Errorf("send pty master over the console socket: %w", err)
	}
	return nil
}

// RecvFd receives one fd sent with SendFd.
func RecvFd(sock *os.File) (*os.File, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive pty master: no fd in the message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive pty master: want one fd, got %d", len(fds))
	}
	return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
}

// SetControllingTerminal makes peer the process's stdio and controlling
// terminal. The process must be a session leader.
func SetControllingTerminal(peer *os.File) error {
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(peer.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup pty onto fd %d: %w", fd, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make the pty the controlling terminal: %w", err)
	}
	return nil
}

// Termios state saved by MakeRaw.
type Termios = unix.Termios

// MakeRaw puts the terminal on fd in raw mode and returns the old state.
func MakeRaw(fd int) (*Termios, error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return old, nil
}

// RestoreTerminal undoes MakeRaw.
func RestoreTerminal(fd int, t *Termios) error { return unix.IoctlSetTermios(fd, unix.TCSETS, t) }

// IsTerminal reports whether fd is a terminal.
func IsTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// CopyWinsize copies the window size of terminal from to pty to.
func CopyWinsize(from, to int) error {
	ws, err := unix.IoctlGetWinsize(from, unix.TIOCGWINSZ)
	if err != nil {
		return err
	}
	return unix.IoctlSetWinsize(to, unix.TIOCSWINSZ, ws)
}
