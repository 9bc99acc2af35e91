package linux

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Proc is a handle on a procfs mount that has been checked to be procfs.
// Files below it are opened with openat2 so that no symlink or other mount
// laid over a procfs file can redirect a write (CVE-2025-52881 class).
type Proc struct{ fd int }

// OpenProc opens dir (normally "/proc") and verifies it is a procfs root.
func OpenProc(dir string) (*Proc, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("statfs %s: %w", dir, err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a procfs mount (filesystem magic %#x)", dir, st.Type)
	}
	return &Proc{fd: fd}, nil
}

// Close releases the handle.
func (p *Proc) Close() error { return unix.Close(p.fd) }

// Open opens a file below the procfs root. The path must not cross a mount
// or follow a symlink ("self" and "thread-self" are resolved by the caller
// passing a numeric pid).
func (p *Proc) Open(path string, flags int) (*os.File, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(p.fd, strings.TrimPrefix(path, "/"), how)
	if err != nil {
		return nil, fmt.Errorf("open /proc/%s: %w", strings.TrimPrefix(path, "/"), err)
	}
	return os.NewFile(uintptr(fd), "/proc/"+path), nil
}

// Write writes data to a procfs file, e.g. "sys/net/ipv4/ip_forward" or
// "1234/uid_map".
func (p *Proc) Write(path, data string) error {
	f, err := p.Open(path, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		return err // an *os.PathError: it names the file
	}
	return nil
}
