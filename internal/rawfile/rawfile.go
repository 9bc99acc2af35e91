// Package rawfile reads and writes small kernel files (cgroupfs, procfs,
// sysfs) with plain system calls. os.File registers every file it opens
// that the kernel can poll (kernfs and some procfs files can) with the Go
// runtime's poller: four more system calls a file, and on the path of every
// create, run and exec there are dozens of such files (measured: ~1.2 ms of
// a 27 ms run). Errors are *os.PathError, as os.ReadFile's and os.WriteFile's.
//
// No cgo: the engine's cgo-free binaries may import it.
package rawfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// Write writes data to the existing file at path (truncating it). It never
// creates one: a missing cgroup file means a controller that is absent or
// not enabled, and must say so.
func Write(path string, data []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "write", Path: path, Err: err}
		}
		data = data[n:]
	}
	return nil
}

// Read returns the whole content of the file at path.
func Read(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}
