package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

type entry struct {
	name, link, body string
	typ              byte
	mode             int64
	uid, gid         int
	xattrs           map[string]string
}

func layerTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1_600_000_000, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
			if e.typ == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerDir returns an empty layer directory inside a parent holding a
// sentinel, so a test can see that nothing was written beside the layer.
func layerDir(t *testing.T) (layer, outside string) {
	t.Helper()
	base := t.TempDir()
	layer = filepath.Join(base, "layer")
	outside = filepath.Join(base, "outside")
	for _, d := range []string{layer, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return layer, outside
}

func TestApplyLayerFiles(t *testing.T) {
	dir, _ := layerDir(t)
	data := layerTar(t,
		entry{name: "etc/", typ: tar.TypeDir, mode: 0o750},
		entry{name: "etc/passwd", typ: tar.TypeReg, body: "root:x:0:0::/root:/bin/sh\n"},
		entry{name: "bin/su", typ: tar.TypeReg, body: "elf", mode: 0o4755}, // implied parent bin/
		entry{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		entry{name: "bin/passwd-link", typ: tar.TypeLink, link: "etc/passwd"},
		entry{name: "./run/fifo", typ: tar.TypeFifo, mode: 0o600},
		entry{name: "etc/passwd", typ: tar.TypeReg, body: "replaced\n"}, // a later entry wins
	)
	if err := ApplyLayer(dir, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("etc/passwd"); got != "replaced\n" {
		t.Errorf("etc/passwd = %q", got)
	}
	if got := read("bin/passwd-link"); got != "root:x:0:0::/root:/bin/sh\n" {
		t.Errorf("the hard link made before the replacement = %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "/bin/busybox" {
		t.Errorf("bin/sh -> %q", l)
	}
	for p, want := range map[string]os.FileMode{"etc": os.ModeDir | 0o750, "bin": os.ModeDir | 0o755, "bin/su": os.ModeSetuid | 0o755, "run/fifo": os.ModeNamedPipe | 0o600} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "etc/passwd")); !fi.ModTime().Equal(time.Unix(1_600_000_000, 0)) {
		t.Errorf("etc/passwd mtime %v", fi.ModTime())
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "etc")); !fi.ModTime().Equal(time.Unix(1_600_000_000, 0)) {
		t.Errorf("etc mtime %v: directories get their time after their entries", fi.ModTime())
	}
}

// Whiteouts and opaque directories become overlayfs's: a 0/0 character
// device and trusted.overlay.opaque=y. Both need root (CAP_MKNOD,
// CAP_SYS_ADMIN for trusted.* xattrs); so do owners.
func TestApplyLayerWhiteoutsAndOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("whiteouts (mknod 0/0), trusted.* xattrs and chown need root")
	}
	dir, _ := layerDir(t)
	data := layerTar(t,
		entry{name: "etc/.wh.shadow", typ: tar.TypeReg},
		entry{name: "var/cache/.wh..wh..opq", typ: tar.TypeReg},
		entry{name: "var/cache/kept", typ: tar.TypeReg, body: "x", uid: 1000, gid: 100, mode: 0o2755},
		entry{name: "srv", typ: tar.TypeDir, uid: 33, gid: 33, xattrs: map[string]string{"user.comment": "hi"}},
		entry{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
	)
	if err := ApplyLayer(dir, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/shadow"), &st); err != nil {
		t.Fatalf("no whiteout for etc/shadow: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/shadow whiteout: mode %#o rdev %d, want a 0/0 character device", st.Mode, st.Rdev)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/.wh.shadow")); err == nil {
		t.Errorf("the OCI whiteout file itself was unpacked")
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dir, "var/cache"), opaqueXattr, buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("var/cache: %s = %q, %v; want y", opaqueXattr, buf[:n], err)
	}
	if err := unix.Lstat(filepath.Join(dir, "var/cache/kept"), &st); err != nil || st.Uid != 1000 || st.Gid != 100 || st.Mode&0o7777 != 0o2755 {
		t.Errorf("var/cache/kept: uid %d gid %d mode %#o (%v); want 1000 100 02755", st.Uid, st.Gid, st.Mode&0o7777, err)
	}
	n, err = unix.Lgetxattr(filepath.Join(dir, "srv"), "user.comment", buf)
	if err != nil || string(buf[:n]) != "hi" {
		t.Errorf("srv: user.comment = %q, %v", buf[:n], err)
	}
	if err := unix.Lstat(filepath.Join(dir, "dev/null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("dev/null: mode %#o, %v", st.Mode, err)
	}
}

// Layers are untrusted: nothing may land outside the layer directory, and
// the error names the entry.
func TestApplyLayerRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"absolute", []entry{{name: "/etc/evil", typ: tar.TypeReg, body: "x"}}, "absolute path"},
		{"dotdot", []entry{{name: "../outside/evil", typ: tar.TypeReg, body: "x"}}, `".."`},
		{"inner dotdot", []entry{{name: "a/../../outside/evil", typ: tar.TypeReg, body: "x"}}, `".."`},
		{"symlinked parent", []entry{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "link/evil", typ: tar.TypeReg, body: "x"},
		}, "below the symlink link"},
		{"absolute symlinked parent", []entry{
			{name: "etc", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "etc/evil", typ: tar.TypeReg, body: "x"},
		}, "below the symlink etc"},
		{"symlinked parent of a directory", []entry{
			{name: "d", typ: tar.TypeSymlink, link: "../outside"},
			{name: "d/sub/", typ: tar.TypeDir},
		}, "below the symlink d"},
		{"hard link out", []entry{{name: "evil", typ: tar.TypeLink, link: "../outside/target"}}, "outside the layer"},
		{"absolute hard link", []entry{{name: "evil", typ: tar.TypeLink, link: "/etc/passwd"}}, "outside the layer"},
		{"hard link through a symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "evil", typ: tar.TypeLink, link: "link/target"},
		}, "below the symlink link"},
		{"hard link to nothing", []entry{{name: "evil", typ: tar.TypeLink, link: "missing"}}, "not an earlier entry"},
		{"whiteout through a symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "link/.wh.target", typ: tar.TypeReg},
		}, "below the symlink link"},
		{"opaque through a symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "link/.wh..wh..opq", typ: tar.TypeReg},
		}, "below the symlink link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, outside := layerDir(t)
			if err := os.WriteFile(filepath.Join(outside, "target"), []byte("host"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := ApplyLayer(dir, bytes.NewReader(layerTar(t, tc.entries...)))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "layer entry") {
				t.Fatalf("got %v; want an error naming the entry and %q", err, tc.want)
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
			names, _ := os.ReadDir(outside)
			if len(names) != 1 {
				t.Errorf("the layer wrote beside itself: %v", names)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "target")); string(b) != "host" {
				t.Errorf("outside/target changed to %q", b)
			}
			var xs [64]byte
			if n, _ := unix.Lgetxattr(outside, opaqueXattr, xs[:]); n > 0 {
				t.Errorf("outside got %s", opaqueXattr)
			}
		})
	}
}

func TestDecompress(t *testing.T) {
	plain := layerTar(t, entry{name: "f", typ: tar.TypeReg, body: "hello"})
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(plain)
	zw.Close()
	for name, blob := range map[string][]byte{"plain": plain, "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		r, err := Decompress(bytes.NewReader(blob))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: %d bytes, %v; want the tar back", name, len(got), err)
		}
	}
}

// A directory a layer only implies (the parent of an entry) keeps the
// metadata the layers below give it: in the overlay, the upper layer's
// directory is the one seen.
func TestApplyLayerImpliedParentsInherit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("owners need root")
	}
	lower, _ := layerDir(t)
	if err := ApplyLayer(lower, bytes.NewReader(layerTar(t,
		entry{name: "usr/share/", typ: tar.TypeDir, mode: 0o2775, gid: 50, xattrs: map[string]string{"user.k": "v"}},
		entry{name: "etc", typ: tar.TypeSymlink, link: "/etc"},
	))); err != nil {
		t.Fatal(err)
	}
	upper, _ := layerDir(t)
	if err := ApplyLayer(upper, bytes.NewReader(layerTar(t,
		entry{name: "usr/share/doc", typ: tar.TypeReg, body: "x"},
		entry{name: "opt/new", typ: tar.TypeReg, body: "y"},
	)), lower); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "usr/share"), &st); err != nil || st.Mode&0o7777 != 0o2775 || st.Gid != 50 {
		t.Errorf("implied usr/share: mode %#o gid %d (%v); want the lower's 02775 gid 50", st.Mode&0o7777, st.Gid, err)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(upper, "usr/share"), "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("implied usr/share: user.k = %q, %v", buf[:n], err)
	}
	if err := unix.Lstat(filepath.Join(upper, "opt"), &st); err != nil || st.Mode&0o7777 != 0o755 || st.Uid != 0 {
		t.Errorf("opt (in no lower): mode %#o uid %d (%v); want 0755 root", st.Mode&0o7777, st.Uid, err)
	}
}
