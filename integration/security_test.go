package integration

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// While a container is created (its init is warren, waiting to exec), the
// init's /proc/PID/exe is the warren binary on a read-only mount, so nothing
// holding that magic link can write the runtime binary (CVE-2019-5736).
func TestRuntimeBinaryIsSealed(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setArgs("/testinit", "exit", "0")
	c := b.create(newID(t))
	exe := "/proc/" + strconv.Itoa(c.pid) + "/exe"
	f, err := os.OpenFile(exe, unix.O_PATH, 0)
	if err != nil {
		t.Fatalf("open %s: %v", exe, err)
	}
	defer f.Close()
	var st, want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(warrenBin, &want); err != nil {
		t.Fatal(err)
	}
	if st.Ino != want.Ino || st.Dev != want.Dev {
		t.Fatalf("%s is not the warren binary (ino %d dev %d, want %d %d)", exe, st.Ino, st.Dev, want.Ino, want.Dev)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the init's executable is on a writable mount (statfs flags %#x): the runtime binary could be overwritten through %s", fs.Flags, exe)
	}
	// Reopening the magic link for writing must fail (EROFS, or ETXTBSY
	// while it runs), never succeed.
	if w, err := os.OpenFile(exe, os.O_WRONLY, 0); err == nil {
		w.Close()
		t.Errorf("opened %s for writing", exe)
	}
	c.startIt()
}

// process.cwd naming one of the init's own fds (CVE-2024-21626: a leaked
// host directory fd as cwd) must never leave the process outside the rootfs.
func TestCwdThroughProcSelfFd(t *testing.T) {
	t.Parallel()
	for fd := 3; fd <= 10; fd++ {
		b := newBundle(t)
		b.spec.Process.Cwd = "/proc/self/fd/" + strconv.Itoa(fd)
		b.setArgs("/testinit", "report")
		_, r := b.run(execOpts{})
		if r.code != 0 {
			continue // refused: fine
		}
		var rep report
		decodeJSON(t, r.stdout, &rep)
		if len(rep.Cwd) == 0 || rep.Cwd[0] != '/' {
			t.Errorf("cwd /proc/self/fd/%d: process runs with cwd %q outside the container's root", fd, rep.Cwd)
		}
	}
}
