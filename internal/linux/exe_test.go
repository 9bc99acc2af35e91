package linux

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The rootless fallback: a copy of the binary no one can change.
func TestMemfdSelfExeIsSealed(t *testing.T) {
	f, err := memfdSelfExe()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if seals&want != want {
		t.Errorf("seals = %#x, want %#x set", seals, want)
	}
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != self.Size() {
		t.Errorf("memfd size %v (%v), want the binary's %d", st.Size(), err, self.Size())
	}
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Error("writing the sealed copy succeeded")
	}
	// Through /proc, as a container process would reach it.
	if w, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_WRONLY, 0); err == nil {
		_, err = w.Write([]byte("x"))
		w.Close()
		if err == nil {
			t.Error("writing the sealed copy through /proc/self/fd succeeded")
		}
	}
}
