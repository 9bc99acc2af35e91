package linux

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// CopyTree copies the contents of directory src into directory dst (both
// open directory fds), keeping modes, owners and symlinks; device nodes
// and sockets are skipped. Used for the tmpcopyup mount option: a tmpfs
// mounted over an image directory starts with that directory's contents.
// Every lookup is relative to an fd and never follows a symlink.
func CopyTree(src, dst *os.File) error {
	names, err := src.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list %s: %w", src.Name(), err)
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(int(src.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s/%s: %w", src.Name(), name, err)
		}
		if err := copyEntry(src, dst, name, &st); err != nil {
			return err
		}
	}
	return nil
}

func copyEntry(src, dst *os.File, name string, st *unix.Stat_t) error {
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	mode := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dfd, name, mode); err != nil && err != unix.EEXIST {
			return fmt.Errorf("tmpcopyup: mkdir %s: %w", name, err)
		}
		s, err := openDirAt(sfd, name)
		if err != nil {
			return err
		}
		defer s.Close()
		d, err := openDirAt(dfd, name)
		if err != nil {
			return err
		}
		defer d.Close()
		if err := CopyTree(s, d); err != nil {
			return err
		}
	case unix.S_IFREG:
		in, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("tmpcopyup: open %s: %w", name, err)
		}
		inF := os.NewFile(uintptr(in), name)
		defer inF.Close()
		out, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return fmt.Errorf("tmpcopyup: create %s: %w", name, err)
		}
		outF := os.NewFile(uintptr(out), name)
		defer outF.Close()
		if _, err := io.Copy(outF, inF); err != nil {
			return fmt.Errorf("tmpcopyup: copy %s: %w", name, err)
		}
	case unix.S_IFLNK:
		buf := make([]byte, 4096)
		n, err := unix.Readlinkat(sfd, name, buf)
		if err != nil {
			return fmt.Errorf("tmpcopyup: readlink %s: %w", name, err)
		}
		if err := unix.Symlinkat(string(buf[:n]), dfd, name); err != nil {
			return fmt.Errorf("tmpcopyup: symlink %s: %w", name, err)
		}
	default:
		return nil
	}
	if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil && err != unix.EINVAL {
		return fmt.Errorf("tmpcopyup: chown %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(dfd, name, mode, 0); err != nil {
			return fmt.Errorf("tmpcopyup: chmod %s: %w", name, err)
		}
	}
	return nil
}

func openDirAt(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tmpcopyup: open %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
