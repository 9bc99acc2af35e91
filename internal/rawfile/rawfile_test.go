package rawfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := Write(p, []byte("x")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Write to a missing file: %v, want ErrNotExist (Write does not create)", err)
	}
	if err := os.WriteFile(p, []byte("old content, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Larger than Read's first buffer, to exercise its growth.
	want := strings.Repeat("0123456789", 300)
	if err := Write(p, []byte(want)); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil || string(got) != want {
		t.Fatalf("Read after Write: %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	// A procfs file, whose size stat does not tell: read to the end.
	b, err := Read("/proc/self/status")
	if err != nil || !strings.Contains(string(b), "\nPid:") {
		t.Fatalf("Read /proc/self/status: %v\n%s", err, b)
	}
	var pe *os.PathError
	if _, err := Read(filepath.Join(p, "nope")); !errors.As(err, &pe) || pe.Op != "open" {
		t.Fatalf("Read of a bad path: %v, want an *os.PathError from open", err)
	}
}
