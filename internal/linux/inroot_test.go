package linux

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Lookups and mkdirs inside a root never leave it, whatever symlinks the
// tree holds: absolute ones and ".." resolve against the root.
func TestInRootStaysInside(t *testing.T) {
	base := t.TempDir()
	rootDir := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{rootDir, outside, filepath.Join(rootDir, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"abs":  outside,                        // absolute: <root><outside>, which does not exist
		"up":   "../../../../../../" + outside, // ".." clamps at the root: the same
		"etc2": "/etc",                         // <root>/etc
		"etc3": "../../../../etc",              // <root>/etc
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(rootDir, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootDir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenFile(rootDir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	// Through a dangling link nothing is made, neither outside nor inside.
	for _, p := range []string{"/abs/made", "up/made2"} {
		if f, err := MkdirInRoot(root, p, 0o755); err == nil {
			got, _ := os.Readlink("/proc/self/fd/" + itoa(f.Fd()))
			f.Close()
			t.Errorf("MkdirInRoot %s through a dangling symlink made %s", p, got)
		}
	}
	for _, p := range []string{"/etc2/made3", "etc3/made4/x", "new/deeper/still"} {
		f, err := MkdirInRoot(root, p, 0o755)
		if err != nil {
			t.Fatalf("MkdirInRoot %s: %v", p, err)
		}
		got, _ := os.Readlink("/proc/self/fd/" + itoa(f.Fd()))
		f.Close()
		if !under(got, rootDir) {
			t.Errorf("MkdirInRoot %s made %s, outside the root", p, got)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) > 0 {
		t.Errorf("something was created outside the root: %v", ents)
	}
	// Existing target: the same directory back.
	f, err := MkdirInRoot(root, "/etc", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink("/proc/self/fd/" + itoa(f.Fd())); got != filepath.Join(rootDir, "etc") {
		t.Errorf("MkdirInRoot /etc: %s", got)
	}
	f.Close()
	// ".." in the part still to create, and a file in the way.
	if _, err := MkdirInRoot(root, "missing/../x", 0o755); !errors.Is(err, unix.ENOENT) {
		t.Errorf("'..' after a missing component: %v", err)
	}
	if _, err := MkdirInRoot(root, "file/sub", 0o755); err == nil {
		t.Error("mkdir under a regular file succeeded")
	}
	// OpenInRoot follows the same rules.
	h, err := OpenInRoot(root, "/etc3/made4")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink("/proc/self/fd/" + itoa(h.Fd())); got != filepath.Join(rootDir, "etc/made4") {
		t.Errorf("OpenInRoot /etc3/made4 resolved to %s", got)
	}
	h.Close()
	if _, err := OpenInRoot(root, "/abs"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenInRoot through a link out of the root: %v", err)
	}
	if _, err := OpenInRoot(root, "/nothing/here"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenInRoot of a missing path: %v", err)
	}
}

func under(p, dir string) bool {
	return p == dir || len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/'
}

func itoa(fd uintptr) string { return ProcFdPath(fd)[len("/proc/self/fd/"):] }
