// Package images tests warrenctl's image store end to end, as root: OCI
// layouts built here from busybox, compared after import with what umoci
// unpacks from the same layout; malicious layers; concurrent imports;
// images deeper than overlayfs's mount option allows.
package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

var warrenctl string

const busybox = "/bin/busybox"

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: image store tests must run as root (owners, whiteouts, overlay mounts)")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "warrenctl-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if warrenctl = os.Getenv("WARRENCTL_BINARY"); warrenctl == "" {
		warrenctl = filepath.Join(dir, "warrenctl")
		out, err := exec.Command("go", "build", "-o", warrenctl, "github.com/warren-runtime/warren/cmd/warrenctl").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building warrenctl: %v\n%s", err, out)
			return 1
		}
	}
	if _, err := os.Stat(busybox); err != nil {
		fmt.Fprintf(os.Stderr, "%s is required (apt-get install busybox-static)\n", busybox)
		return 1
	}
	return m.Run()
}

type entry struct {
	name, link, body string
	typ              byte
	mode             int64
	uid, gid         int
	xattrs           map[string]string
	dev              [2]int64
}

func layer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(1_600_000_000, 0), Devmajor: e.dev[0], Devminor: e.dev[1], Format: tar.FormatPAX}
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
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writeLayout writes img to a new OCI layout tagged ref.
func writeLayout(t *testing.T, img v1.Image, ref string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	return dir
}

func image(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testImage has three layers exercising what unpacking must get right:
// owners, set-id bits, xattrs, symlinks, hard links, device nodes, FIFOs;
// then whiteouts of a file and a directory, an opaque directory, and a
// file replaced by a symlink.
func testImage(t *testing.T) v1.Image {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	base := []entry{
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/busybox", typ: tar.TypeReg, body: string(bb), mode: 0o755},
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/passwd", typ: tar.TypeReg, body: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"},
		{name: "etc/group", typ: tar.TypeReg, body: "root:x:0:\napp:x:1000:\n"},
		{name: "etc/shadow", typ: tar.TypeReg, body: "root:*:1::::::\n", mode: 0o600},
		{name: "usr/bin/su-like", typ: tar.TypeReg, body: "setuid", mode: 0o4755},
		{name: "usr/share/", typ: tar.TypeDir, mode: 0o2775, gid: 50},
		{name: "home/app/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		{name: "home/app/notes", typ: tar.TypeReg, body: "mine", uid: 1000, gid: 1000, xattrs: map[string]string{"user.origin": "test"}},
		{name: "home/app/notes-link", typ: tar.TypeLink, link: "home/app/notes"},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "var/cache/app/", typ: tar.TypeDir},
		{name: "var/cache/app/old", typ: tar.TypeReg, body: "stale"},
		{name: "var/lib/gone/", typ: tar.TypeDir},
		{name: "var/lib/gone/file", typ: tar.TypeReg, body: "x"},
		{name: "dev/", typ: tar.TypeDir},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, dev: [2]int64{1, 3}},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "opt/config", typ: tar.TypeReg, body: "v1"},
	}
	for _, a := range []string{"sh", "ls", "cat", "true", "id"} {
		base = append(base, entry{name: "bin/" + a, typ: tar.TypeSymlink, link: "busybox"})
	}
	second := []entry{
		{name: "etc/.wh.shadow", typ: tar.TypeReg},
		{name: "var/lib/.wh.gone", typ: tar.TypeReg},
		{name: "var/cache/app/.wh..wh..opq", typ: tar.TypeReg},
		{name: "var/cache/app/new", typ: tar.TypeReg, body: "fresh"},
		{name: "etc/passwd", typ: tar.TypeReg, body: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nweb:x:33:33::/srv:/bin/sh\n"},
		{name: "opt/config", typ: tar.TypeSymlink, link: "/etc/passwd"},
	}
	third := []entry{
		{name: "srv/", typ: tar.TypeDir, uid: 33, gid: 33},
		{name: "srv/index.html", typ: tar.TypeReg, body: "<p>hi</p>", uid: 33, gid: 33, mode: 0o640},
		{name: "usr/share/doc", typ: tar.TypeReg, body: "doc", gid: 50},
	}
	return image(t, layer(t, base...), layer(t, second...), layer(t, third...))
}

type result struct {
	code           int
	stdout, stderr string
}

func ctl(t *testing.T, root string, args ...string) result {
	t.Helper()
	cmd := exec.Command(warrenctl, append([]string{"--root", root}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustCtl(t *testing.T, root string, args ...string) string {
	t.Helper()
	r := ctl(t, root, args...)
	if r.code != 0 {
		t.Fatalf("warrenctl %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r.stdout
}

// describe lists every path under root with what must match: type and
// permission bits, owner, symlink target, device number, content digest,
// xattrs (overlayfs's own aside).
func describe(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			s += " -> " + l
		case unix.S_IFCHR, unix.S_IFBLK:
			s += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			s += " sha256=" + hex.EncodeToString(sum[:8])
		}
		if rel == "." {
			s = "(root)" // umoci's rootfs mode comes from the bundle, not the image
		}
		sz, _ := unix.Llistxattr(p, nil)
		if sz > 0 {
			buf := make([]byte, sz)
			n, _ := unix.Llistxattr(p, buf)
			var keys []string
			for _, k := range strings.Split(string(buf[:n]), "\x00") {
				if k == "" || strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "security.") {
					continue
				}
				v := make([]byte, 256)
				vn, _ := unix.Lgetxattr(p, k, v)
				keys = append(keys, k+"="+string(v[:max(vn, 0)]))
			}
			sort.Strings(keys)
			if len(keys) > 0 {
				s += " xattrs=" + strings.Join(keys, ",")
			}
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mountImage(t *testing.T, root, name string) string {
	t.Helper()
	dir := t.TempDir()
	rootfs := strings.TrimSpace(mustCtl(t, root, "image", "mount", name, dir))
	t.Cleanup(func() { unix.Unmount(rootfs, unix.MNT_DETACH) })
	return rootfs
}

// The merged view of an imported image is what umoci unpacks from the same
// layout: paths, modes, owners, symlinks, devices, contents, xattrs.
func TestImportMatchesUmoci(t *testing.T) {
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Skip("umoci not installed (apt-get install umoci)")
	}
	dir := writeLayout(t, testImage(t), "v1")
	root := t.TempDir()
	digest := strings.TrimSpace(mustCtl(t, root, "image", "import", "--name", "test:v1", "oci:"+dir+":v1"))
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("import printed %q, want the manifest digest", digest)
	}
	merged := mountImage(t, root, "test:v1")
	ours := describe(t, merged)

	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command(umoci, "unpack", "--image", dir+":v1", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	theirs := describe(t, filepath.Join(bundle, "rootfs"))
	var diffs []string
	for p, v := range theirs {
		if ours[p] != v {
			diffs = append(diffs, fmt.Sprintf("%s:\n  umoci  %s\n  warren %s", p, v, ours[p]))
		}
	}
	for p, v := range ours {
		if _, ok := theirs[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s:\n  umoci  (none)\n  warren %s", p, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("the imported image differs from umoci's unpack:\n%s", strings.Join(diffs, "\n"))
	}
	for _, gone := range []string{"etc/shadow", "var/lib/gone", "var/cache/app/old"} {
		if _, ok := ours[gone]; ok {
			t.Errorf("%s survived its whiteout", gone)
		}
	}
	if len(ours) < 30 {
		t.Errorf("only %d paths in the merged view", len(ours))
	}

	// ls, inspect, rm, prune.
	ls := mustCtl(t, root, "image", "ls", "--format", "json")
	if !strings.Contains(ls, `"name":"test:v1"`) || !strings.Contains(ls, digest) {
		t.Errorf("image ls --format json: %s", ls)
	}
	if tbl := mustCtl(t, root, "image", "ls"); !strings.Contains(tbl, "test:v1") || !strings.Contains(tbl, "NAME") {
		t.Errorf("image ls: %s", tbl)
	}
	if insp := mustCtl(t, root, "image", "inspect", "test:v1"); !strings.Contains(insp, `"/bin/sh"`) || !strings.Contains(insp, `"diffID"`) {
		t.Errorf("image inspect: %s", insp)
	}
	if r := ctl(t, root, "image", "inspect", "nope"); r.code == 0 || !strings.Contains(r.stderr, `"nope"`) || !strings.Contains(r.stderr, "not found") {
		t.Errorf("inspect of a missing image: exit %d, %q", r.code, r.stderr)
	}
	mustCtl(t, root, "image", "rm", "test:v1")
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, root, "image", "prune")
	for _, d := range []string{"blobs/sha256", "snapshots", "ingest"} {
		if ents, _ := os.ReadDir(filepath.Join(root, d)); len(ents) != 0 {
			t.Errorf("%s not empty after rm + prune: %d entries", d, len(ents))
		}
	}
}

// A layer that writes outside itself is refused with the entry named, and
// the import leaves no blob, snapshot or record.
func TestImportRefusesMaliciousLayers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dotdot", []entry{{name: "../../evil", typ: tar.TypeReg, body: "x"}}, `"../../evil"`},
		{"absolute", []entry{{name: "/etc/evil", typ: tar.TypeReg, body: "x"}}, "absolute path"},
		{"symlinked parent", []entry{{name: "etc", typ: tar.TypeSymlink, link: "/etc"}, {name: "etc/evil", typ: tar.TypeReg, body: "x"}}, "below the symlink etc"},
		{"hard link out", []entry{{name: "pw", typ: tar.TypeLink, link: "../../../../etc/passwd"}}, "outside the layer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := layer(t, entry{name: "ok", typ: tar.TypeReg, body: "fine"})
			dir := writeLayout(t, image(t, good, layer(t, tc.entries...)), "bad")
			root := t.TempDir()
			r := ctl(t, root, "image", "import", "oci:"+dir+":bad")
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "layer entry") {
				t.Fatalf("import of a malicious layer: exit %d, stderr %q; want an error naming %s", r.code, r.stderr, tc.want)
			}
			for _, d := range []string{"blobs/sha256", "snapshots", "ingest"} {
				if ents, _ := os.ReadDir(filepath.Join(root, d)); len(ents) != 0 {
					t.Errorf("%s not empty after a failed import: %v", d, ents)
				}
			}
			if ls := mustCtl(t, root, "image", "ls", "--format", "json"); strings.TrimSpace(ls) != "[]" {
				t.Errorf("image ls after a failed import: %s", ls)
			}
			if _, err := os.Stat("/evil"); err == nil {
				t.Errorf("ESCAPE: /evil exists")
			}
		})
	}
}

// Imports of one image racing each other all succeed and share one copy
// of each blob and layer.
func TestConcurrentImports(t *testing.T) {
	dir := writeLayout(t, testImage(t), "v1")
	root := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan string, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(warrenctl, "--root", root, "image", "import", "--name", "same", "oci:"+dir+":v1")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("%v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent import: %s", e)
	}
	snaps, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	if len(snaps) != 3 {
		t.Errorf("%d snapshots for a 3-layer image", len(snaps))
	}
	blobs, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	if len(blobs) != 5 { // manifest, config, 3 layers
		t.Errorf("%d blobs, want 5", len(blobs))
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "ingest")); len(ents) != 0 {
		t.Errorf("ingest not empty: %v", ents)
	}
	describe(t, mountImage(t, root, "same"))
}

// An image deeper than overlayfs's comma-separated lowerdir option can
// carry (one page) still mounts, and the top layer wins.
func TestDeepImageMounts(t *testing.T) {
	var layers []v1.Layer
	for i := 0; i < 90; i++ {
		layers = append(layers, layer(t, entry{name: "depth", typ: tar.TypeReg, body: fmt.Sprint(i)}, entry{name: fmt.Sprintf("l/%02d", i), typ: tar.TypeReg, body: "x"}))
	}
	dir := writeLayout(t, image(t, layers...), "deep")
	root := t.TempDir()
	mustCtl(t, root, "image", "import", "--name", "deep", "oci:"+dir+":deep")
	rootfs := mountImage(t, root, "deep")
	if b, err := os.ReadFile(filepath.Join(rootfs, "depth")); err != nil || string(b) != "89" {
		t.Errorf("depth = %q, %v; want the top layer's 89", b, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(rootfs, "l")); len(ents) != 90 {
		t.Errorf("%d entries in l/, want 90", len(ents))
	}
	// Writes go to the container's upper directory, never to a layer.
	if err := os.WriteFile(filepath.Join(rootfs, "depth"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(rootfs), "upper", "depth")); string(b) != "mine" {
		t.Errorf("the write did not land in upper/: %q", b)
	}
}

// startRegistry runs Debian's docker-registry on a free loopback port with
// its storage in a temp dir, and returns host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry not installed (apt-get install docker-registry)")
	}
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed (apt-get install skopeo)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func skopeoCopy(t *testing.T, args ...string) {
	t.Helper()
	full := append([]string{"copy", "--quiet", "--dest-tls-verify=false"}, args...)
	if out, err := exec.Command("skopeo", full...).CombinedOutput(); err != nil {
		t.Fatalf("skopeo %v: %v\n%s", full, err, out)
	}
}

// A pull from a real registry (plain HTTP) gives the same
// image as an import of the layout it was pushed from; from a
// multi-platform index, this machine's image is chosen.
func TestPullFromRegistry(t *testing.T) {
	addr := startRegistry(t)
	dir := writeLayout(t, testImage(t), "v1")
	skopeoCopy(t, "oci:"+dir+":v1", "docker://"+addr+"/test:v1")

	// (A loopback registry may be plain HTTP even without --insecure, as
	// with docker; the test passes it anyway.)
	root := t.TempDir()
	pulled := strings.TrimSpace(mustCtl(t, root, "image", "pull", "--insecure", addr+"/test:v1"))
	imported := strings.TrimSpace(mustCtl(t, root, "image", "import", "--name", "local", "oci:"+dir+":v1"))
	if pulled != imported {
		t.Errorf("pulled manifest %s, imported %s", pulled, imported)
	}
	ls := mustCtl(t, root, "image", "ls", "--format", "json")
	if !strings.Contains(ls, `"name":"`+addr+`/test:v1"`) {
		t.Errorf("image ls after pull: %s", ls)
	}
	a := describe(t, mountImage(t, root, addr+"/test:v1"))
	b := describe(t, mountImage(t, root, "local"))
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the pulled image's root differs from the imported one's")
	}
	if snaps, _ := os.ReadDir(filepath.Join(root, "snapshots")); len(snaps) != 3 {
		t.Errorf("%d snapshots for one 3-layer image pulled and imported: layers are not shared", len(snaps))
	}

	// A multi-platform index: linux/amd64 and linux/arm64.
	arm := image(t, layer(t, entry{name: "arch", typ: tar.TypeReg, body: "arm64"}))
	armCfg, _ := arm.ConfigFile()
	armCfg = armCfg.DeepCopy()
	armCfg.Architecture = "arm64"
	arm, _ = mutate.ConfigFile(arm, armCfg)
	amd := image(t, layer(t, entry{name: "arch", typ: tar.TypeReg, body: "amd64"}))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	mdir := filepath.Join(t.TempDir(), "multi")
	p, err := layout.Write(mdir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "multi"})); err != nil {
		t.Fatal(err)
	}
	skopeoCopy(t, "--all", "oci:"+mdir+":multi", "docker://"+addr+"/multi:v1")
	mustCtl(t, root, "image", "pull", "--insecure", addr+"/multi:v1")
	if got, err := os.ReadFile(filepath.Join(mountImage(t, root, addr+"/multi:v1"), "arch")); err != nil || string(got) != "amd64" {
		t.Errorf("from a multi-platform index: arch = %q, %v; want amd64", got, err)
	}
	// The same index imported from the layout picks the same image.
	mustCtl(t, root, "image", "import", "--name", "multi-local", "oci:"+mdir+":multi")
	if got, _ := os.ReadFile(filepath.Join(mountImage(t, root, "multi-local"), "arch")); string(got) != "amd64" {
		t.Errorf("layout import of a multi-platform index: arch = %q", got)
	}
	if r := ctl(t, root, "image", "pull", "--insecure", addr+"/nosuch:v1"); r.code == 0 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("pull of a missing image: exit %d, %q", r.code, r.stderr)
	}
}

// An imported image runs: `warrenctl image bundle` mounts it and writes a
// config from the image config (user by name from the image's
// /etc/passwd, working directory, env, command), and warren runs it; the
// container's writes stay in the bundle's upper directory.
func TestImageRuns(t *testing.T) {
	warren := os.Getenv("WARREN_BINARY")
	if warren == "" {
		warren = filepath.Join(t.TempDir(), "warren")
		if out, err := exec.Command("go", "build", "-o", warren, "github.com/warren-runtime/warren/cmd/warren").CombinedOutput(); err != nil {
			t.Fatalf("building warren: %v\n%s", err, out)
		}
	}
	img := testImage(t)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.User = "app"
	cf.Config.WorkingDir = "/home/app"
	cf.Config.Env = []string{"GREETING=hello"}
	cf.Config.Cmd = []string{"/bin/sh", "-c", "id; pwd; echo $GREETING; cat notes; echo written > /home/app/out"}
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeLayout(t, img, "run")
	root := t.TempDir()
	mustCtl(t, root, "image", "import", "--name", "runnable", "oci:"+dir+":run")
	bundle := filepath.Join(t.TempDir(), "bundle")
	mustCtl(t, root, "image", "bundle", "runnable", bundle)
	t.Cleanup(func() { unix.Unmount(filepath.Join(bundle, "rootfs"), unix.MNT_DETACH) })
	cmd := exec.Command(warren, "--root", filepath.Join(t.TempDir(), "state"), "run", "--bundle", bundle, "img-run")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("warren run: %v\n%s", err, out)
	}
	for _, want := range []string{"uid=1000(app) gid=1000(app)", "/home/app\n", "hello\n", "mine"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("container output lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(bundle, "upper", "home", "app", "out")); err != nil || string(b) != "written\n" {
		t.Errorf("the container's write is not in upper/: %q, %v", b, err)
	}
	snaps, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	for _, s := range snaps {
		if _, err := os.Stat(filepath.Join(root, "snapshots", s.Name(), "home", "app", "out")); err == nil {
			t.Errorf("the container wrote into the shared layer %s", s.Name())
		}
	}
}

// The same image through a docker archive (`docker save` format) and an
// OCI archive (a tar of the layout) gives the same root as from the
// layout.
func TestImportArchives(t *testing.T) {
	img := testImage(t)
	dir := writeLayout(t, img, "v1")
	work := t.TempDir()
	docker := filepath.Join(work, "image.tar")
	tag, err := name.NewTag("example.org/test:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(docker, tag, img); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(work, "oci.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", ociTar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	root := t.TempDir()
	r := ctl(t, root, "image", "import", "--progress", "json", "--name", "layout", "oci:"+dir+":v1")
	if r.code != 0 || strings.Count(r.stderr, `"phase":"fetch"`) < 3 || strings.Count(r.stderr, `"phase":"unpack"`) != 3 || !strings.Contains(r.stderr, `"layers":3`) {
		t.Errorf("import --progress json: exit %d, want fetch lines and an unpack line per layer:\n%s", r.code, r.stderr)
	}
	if r := ctl(t, root, "image", "import", "--name", "quiet", "oci:"+dir+":v1"); r.stderr != "" || !strings.HasPrefix(r.stdout, "sha256:") {
		t.Errorf("import without a terminal: stderr %q (want nothing), stdout %q", r.stderr, r.stdout)
	}
	mustCtl(t, root, "image", "import", "--name", "docker", "docker-archive:"+docker)
	mustCtl(t, root, "image", "import", "--name", "docker-tagged", "docker-archive:"+docker+":example.org/test:v1")
	if r := ctl(t, root, "image", "import", "docker-archive:"+docker+":example.org/other:v1"); r.code == 0 || !strings.Contains(r.stderr, "other") {
		t.Errorf("import of a tag the archive lacks: exit %d, %q", r.code, r.stderr)
	}
	mustCtl(t, root, "image", "import", "--name", "ociarchive", "oci-archive:"+ociTar+":v1")
	want := fmt.Sprint(describe(t, mountImage(t, root, "layout")))
	for _, n := range []string{"docker", "docker-tagged", "ociarchive"} {
		if got := fmt.Sprint(describe(t, mountImage(t, root, n))); got != want {
			t.Errorf("%s import: the root differs from the layout import's", n)
		}
	}
	// A docker archive is re-compressed differently, but its layers have
	// the same diff IDs: the snapshots are shared.
	if snaps, _ := os.ReadDir(filepath.Join(root, "snapshots")); len(snaps) != 3 {
		t.Errorf("%d snapshots for one image imported three ways", len(snaps))
	}
	if r := ctl(t, root, "image", "import", "docker-archive:"+filepath.Join(work, "missing.tar")); r.code == 0 || !strings.Contains(r.stderr, "missing.tar") {
		t.Errorf("import of a missing archive: exit %d, %q", r.code, r.stderr)
	}
	if r := ctl(t, root, "image", "import", "oci:"+dir+":nosuchref"); r.code == 0 || !strings.Contains(r.stderr, `"nosuchref"`) {
		t.Errorf("import of a missing ref: exit %d, %q", r.code, r.stderr)
	}
}

// warrenctl killed at any moment of a pull leaves a store that lists
// only complete images; pulling again completes it (blobs already stored
// are not fetched again), and prune leaves only what images use.
func TestInterruptedPulls(t *testing.T) {
	addr := startRegistry(t)
	big := make([]byte, 8<<20)
	rand.New(rand.NewSource(1)).Read(big)
	img := image(t, layer(t, entry{name: "big1", typ: tar.TypeReg, body: string(big[:4<<20])}),
		layer(t, entry{name: "big2", typ: tar.TypeReg, body: string(big[4<<20:])}),
		layer(t, entry{name: "small", typ: tar.TypeReg, body: "x"}))
	dir := writeLayout(t, img, "big")
	skopeoCopy(t, "oci:"+dir+":big", "docker://"+addr+"/big:v1")
	ref := addr + "/big:v1"
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < 5; round++ {
		root := t.TempDir()
		cmd := exec.Command(warrenctl, "--root", root, "image", "pull", "--insecure", ref)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		ls := mustCtl(t, root, "image", "ls", "--format", "json")
		if strings.Contains(ls, ref) {
			describe(t, mountImage(t, root, ref)) // recorded: complete
		}
		mustCtl(t, root, "image", "pull", "--insecure", ref)
		mustCtl(t, root, "image", "prune")
		for _, d := range []string{"ingest"} {
			if ents, _ := os.ReadDir(filepath.Join(root, d)); len(ents) != 0 {
				t.Errorf("round %d: %s not empty after prune", round, d)
			}
		}
		snaps, _ := os.ReadDir(filepath.Join(root, "snapshots"))
		blobs, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
		if len(snaps) != 3 || len(blobs) != 5 {
			t.Errorf("round %d: %d snapshots, %d blobs after pull + prune; want 3 and 5", round, len(snaps), len(blobs))
		}
		if b, err := os.ReadFile(filepath.Join(mountImage(t, root, ref), "big2")); err != nil || len(b) != 4<<20 {
			t.Errorf("round %d: big2 has %d bytes, %v", round, len(b), err)
		}
	}
}
