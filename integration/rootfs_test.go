//go:build linux

package integration

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestReadonlyRootfs(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	if !b.spec.Root.Readonly {
		t.Fatalf("`warren spec` default should have a read-only root")
	}
	b.setScript("/testinit write /probe; /testinit write /tmp/probe; /testinit report")
	out := b.runOK()
	l := jsonLines(t, out, 3)
	for _, s := range l[:2] {
		var w fileResult
		decodeJSON(t, s, &w)
		if w.OK || syscall.Errno(w.Errno) != syscall.EROFS {
			t.Errorf("write %s on a read-only root: ok=%v errno=%d (%s), want EROFS", w.Path, w.OK, w.Errno, w.Error)
		}
	}
	var r report
	decodeJSON(t, l[2], &r)
	if m := r.mountAt("/"); m == nil || !hasOpt(m.Options, "ro") {
		t.Errorf("root mount inside: %+v, want per-mount option ro", m)
	}
	if _, err := os.Stat(filepath.Join(b.rootfs, "probe")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("host: %s/probe exists (err %v); the write should have failed", b.rootfs, err)
	}
}

// The control: the same write succeeds when the root is not read-only.
func TestWritableRootfs(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Root.Readonly = false
	b.setArgs("/testinit", "write", "/probe")
	var w fileResult
	decodeJSON(t, strings.TrimSpace(b.runOK()), &w)
	if !w.OK {
		t.Fatalf("write /probe on a writable root failed: %s", w.Error)
	}
	if got := readFile(t, filepath.Join(b.rootfs, "probe")); got != "x" {
		t.Errorf("host sees %q in %s/probe, want %q", got, b.rootfs, "x")
	}
}

func TestMaskedPaths(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	// Bundle-local targets whose content we know, next to the default
	// /proc and /sys entries.
	if err := os.MkdirAll(filepath.Join(b.rootfs, "masked-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(b.rootfs, "masked-dir", "secret"), "dir-secret")
	writeFile(t, filepath.Join(b.rootfs, "masked-file"), "file-secret")
	b.spec.Linux.MaskedPaths = append(b.spec.Linux.MaskedPaths, "/masked-dir", "/masked-file")

	// Probe every masked path that exists (on this kernel / in the bundle):
	// files must read empty (or not at all), directories must list empty.
	var script strings.Builder
	var files, dirs []string
	for _, p := range b.spec.Linux.MaskedPaths {
		hostPath := p
		if !strings.HasPrefix(p, "/proc/") && !strings.HasPrefix(p, "/sys/") {
			hostPath = filepath.Join(b.rootfs, p)
		}
		fi, err := os.Stat(hostPath)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
			script.WriteString(`echo "ls ` + p + `:[$(ls -A ` + p + `)]"; `)
		} else {
			files = append(files, p)
			script.WriteString("/testinit read " + p + "; ")
		}
	}
	script.WriteString("/testinit report")
	b.setScript(script.String())
	out := b.runOK()
	l := jsonLines(t, out, len(files)+1)
	for i, p := range files {
		var f fileResult
		decodeJSON(t, l[i], &f)
		if f.OK && (f.Bytes != 0 || f.Content != "") {
			t.Errorf("masked file %s is readable inside: %d bytes, %.40q", p, f.Bytes, f.Content)
		}
	}
	for _, p := range dirs {
		if !strings.Contains(out, "ls "+p+":[]") {
			t.Errorf("masked directory %s is not empty inside:\n%s", p, out)
		}
	}
	var r report
	decodeJSON(t, l[len(files)], &r)
	for _, p := range append(files, dirs...) {
		if r.mountAt(p) == nil {
			t.Errorf("masked path %s is not covered by a mount inside the container", p)
		}
	}
	// The host files are untouched.
	if got := readFile(t, filepath.Join(b.rootfs, "masked-dir", "secret")); got != "dir-secret" {
		t.Errorf("host file under the masked dir changed: %q", got)
	}
}

func TestReadonlyPaths(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Root.Readonly = false
	if err := os.MkdirAll(filepath.Join(b.rootfs, "ro-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.spec.Linux.ReadonlyPaths = append(b.spec.Linux.ReadonlyPaths, "/ro-dir")
	b.setScript("/testinit write /proc/sys/kernel/hostname; /testinit write /ro-dir/probe; /testinit write /rw-probe; /testinit report")
	l := jsonLines(t, b.runOK(), 4)
	var w fileResult
	for _, s := range l[:2] {
		decodeJSON(t, s, &w)
		if w.OK || syscall.Errno(w.Errno) != syscall.EROFS {
			t.Errorf("write %s (readonlyPaths): ok=%v errno=%d (%s), want EROFS", w.Path, w.OK, w.Errno, w.Error)
		}
	}
	decodeJSON(t, l[2], &w)
	if !w.OK {
		t.Errorf("control write %s on the writable root failed: %s", w.Path, w.Error)
	}
	var r report
	decodeJSON(t, l[3], &r)
	for _, p := range []string{"/proc/sys", "/ro-dir"} {
		if m := r.mountAt(p); m == nil || !hasOpt(m.Options, "ro") {
			t.Errorf("readonly path %s: mount %+v, want a read-only mount", p, m)
		}
	}
}

func TestBindMounts(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	rw, ro := b.tempDir("host-rw"), b.tempDir("host-ro")
	writeFile(t, filepath.Join(ro, "hostfile"), "from-host")
	b.spec.Mounts = append(b.spec.Mounts,
		specs.Mount{Destination: "/mnt/rw", Type: "bind", Source: rw, Options: []string{"rbind", "rw"}},
		specs.Mount{Destination: "/mnt/ro", Type: "bind", Source: ro, Options: []string{"bind", "ro"}},
	)
	b.setScript("/testinit write /mnt/rw/from-container; /testinit write /mnt/ro/from-container; /testinit read /mnt/ro/hostfile; /testinit report")
	l := jsonLines(t, b.runOK(), 4)
	var w fileResult
	decodeJSON(t, l[0], &w)
	if !w.OK {
		t.Errorf("write through the rw bind mount failed: %s", w.Error)
	} else if got := readFile(t, filepath.Join(rw, "from-container")); got != "x" {
		t.Errorf("host sees %q in the rw bind source, want %q", got, "x")
	}
	decodeJSON(t, l[1], &w)
	if w.OK || syscall.Errno(w.Errno) != syscall.EROFS {
		t.Errorf("write through the ro bind mount: ok=%v errno=%d (%s), want EROFS", w.OK, w.Errno, w.Error)
	}
	if _, err := os.Stat(filepath.Join(ro, "from-container")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("host: the ro bind source got a file written from the container (err %v)", err)
	}
	decodeJSON(t, l[2], &w)
	if !w.OK || w.Content != "from-host" {
		t.Errorf("reading a host file through the ro bind mount: ok=%v content=%q err=%s", w.OK, w.Content, w.Error)
	}
	var r report
	decodeJSON(t, l[3], &r)
	if m := r.mountAt("/mnt/rw"); m == nil || !hasOpt(m.Options, "rw") || m.Root != rw {
		t.Errorf("mountinfo /mnt/rw: %+v, want a rw bind of %s", m, rw)
	}
	if m := r.mountAt("/mnt/ro"); m == nil || !hasOpt(m.Options, "ro") || m.Root != ro {
		t.Errorf("mountinfo /mnt/ro: %+v, want a ro bind of %s", m, ro)
	}
}

func TestTmpfsMountOptions(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{
		Destination: "/scratch", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"nosuid", "nodev", "size=1m", "mode=1770"},
	})
	b.setScript("/testinit stat /scratch; /testinit write /scratch/f; /testinit report")
	l := jsonLines(t, b.runOK(), 3)
	var st statResult
	decodeJSON(t, l[0], &st)
	if st.Type != "dir" || st.Perm != 0o1770 {
		t.Errorf("/scratch: type %s perm %o, want dir with mode 1770", st.Type, st.Perm)
	}
	var w fileResult
	decodeJSON(t, l[1], &w)
	if !w.OK {
		t.Errorf("write to the tmpfs: %s", w.Error)
	}
	var r report
	decodeJSON(t, l[2], &r)
	m := r.mountAt("/scratch")
	if m == nil {
		t.Fatalf("no mount at /scratch inside the container")
	}
	if m.FSType != "tmpfs" {
		t.Errorf("/scratch fstype %q, want tmpfs", m.FSType)
	}
	for _, o := range []string{"size=1024k", "mode=1770"} {
		if !hasOpt(m.SuperOptions, o) {
			t.Errorf("/scratch superblock options %q lack %s", m.SuperOptions, o)
		}
	}
	for _, o := range []string{"nosuid", "nodev"} {
		if !hasOpt(m.Options, o) {
			t.Errorf("/scratch mount options %q lack %s", m.Options, o)
		}
	}
}

func TestNoPivot(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.setScript("/testinit stat /etc/debian_version; /testinit stat " + b.rootfs + "; exec /testinit report")
	l := jsonLines(t, b.runOK("--no-pivot"), 3)
	// The host's files must not be reachable (the process is jailed).
	for _, s := range l[:2] {
		var st statResult
		decodeJSON(t, s, &st)
		if st.Exists {
			t.Errorf("host path %s is visible inside the container with --no-pivot", st.Path)
		}
	}
	var r report
	decodeJSON(t, l[2], &r)
	if r.PID != 1 {
		t.Errorf("pid with --no-pivot: %d, want 1", r.PID)
	}
	if m := r.mountAt("/"); m == nil || m.Root != b.rootfs {
		t.Errorf("root mount with --no-pivot: %+v, want the bundle rootfs %s", m, b.rootfs)
	}
	if r.Cwd != "/" {
		t.Errorf("cwd with --no-pivot: %q, want /", r.Cwd)
	}
}

type wantDev struct {
	path         string
	major, minor uint32
	perm         uint32
}

func assertDevice(t *testing.T, line string, w wantDev) {
	t.Helper()
	var st statResult
	decodeJSON(t, line, &st)
	if !st.Exists || st.Type != "char" || st.Major != w.major || st.Minor != w.minor {
		t.Errorf("%s inside: exists=%v type=%s %d:%d (%s), want char device %d:%d",
			w.path, st.Exists, st.Type, st.Major, st.Minor, st.Error, w.major, w.minor)
	}
	if st.Exists && st.Perm != w.perm {
		t.Errorf("%s inside: mode %o, want %o", w.path, st.Perm, w.perm)
	}
}

func TestLinuxDevices(t *testing.T) {
	t.Parallel()
	// A device also allowed by an explicit linux.resources.devices rule.
	t.Run("DummyNullWithCgroupRule", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.spec.Linux.Devices = append(b.spec.Linux.Devices,
			specs.LinuxDevice{Path: "/dev/mynull", Type: "c", Major: 1, Minor: 3, FileMode: ptr(os.FileMode(0o666)), UID: ptr(uint32(0)), GID: ptr(uint32(0))})
		b.spec.Linux.Resources.Devices = append(b.spec.Linux.Resources.Devices,
			specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"})
		b.setScript("/testinit stat /dev/mynull; /testinit stat /dev/null; /testinit write /dev/mynull")
		l := jsonLines(t, b.runOK(), 3)
		assertDevice(t, l[0], wantDev{"/dev/mynull", 1, 3, 0o666})
		assertDevice(t, l[1], wantDev{"/dev/null", 1, 3, 0o666})
		var wr fileResult
		decodeJSON(t, l[2], &wr)
		if !wr.OK {
			t.Errorf("writing to /dev/mynull (allowed 1:3 rwm) failed: %s", wr.Error)
		}
	})
	// Listed only in linux.devices, with the default deny-all device
	// cgroup: runc allows every linux.devices entry (rwm) implicitly, so
	// the node must be created and usable.
	t.Run("FuseListedOnlyInLinuxDevices", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.spec.Linux.Devices = append(b.spec.Linux.Devices,
			specs.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: ptr(os.FileMode(0o600)), UID: ptr(uint32(0)), GID: ptr(uint32(0))})
		b.setScript("/testinit stat /dev/fuse")
		l := jsonLines(t, b.runOK(), 1)
		assertDevice(t, l[0], wantDev{"/dev/fuse", 10, 229, 0o600})
	})
}

func TestSysctl(t *testing.T) {
	t.Parallel()
	hostForward := readFile(t, "/proc/sys/net/ipv4/ip_forward")
	hostShmmax := readFile(t, "/proc/sys/kernel/shmmax")
	b := newBundle(t)
	b.spec.Linux.Sysctl = map[string]string{
		"net.ipv4.ip_forward": "1",
		"kernel.shmmax":       "123456789",
	}
	b.setScript("/testinit read /proc/sys/net/ipv4/ip_forward; /testinit read /proc/sys/kernel/shmmax")
	l := jsonLines(t, b.runOK(), 2)
	for i, want := range []string{"1", "123456789"} {
		var f fileResult
		decodeJSON(t, l[i], &f)
		if !f.OK || strings.TrimSpace(f.Content) != want {
			t.Errorf("%s inside: %q (err %s), want %q", f.Path, f.Content, f.Error, want)
		}
	}
	// The settings are per namespace: the host keeps its values.
	if got := readFile(t, "/proc/sys/net/ipv4/ip_forward"); got != hostForward {
		t.Errorf("host net.ipv4.ip_forward changed from %q to %q", hostForward, got)
	}
	if got := readFile(t, "/proc/sys/kernel/shmmax"); got != hostShmmax {
		t.Errorf("host kernel.shmmax changed from %q to %q", hostShmmax, got)
	}
}

// The root's propagation inside the container follows
// linux.rootfsPropagation, and a shared root still pivots (its parent mount
// is made private first) without leaving mounts on the host.
func TestRootfsPropagation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prop               string
		shared, unbindable bool
	}{{"rshared", true, false}, {"rprivate", false, false}, {"", false, false}, {"unbindable", false, true}, {"runbindable", false, true}} {
		t.Run("prop="+tc.prop, func(t *testing.T) {
			b := newBundle(t)
			b.spec.Linux.RootfsPropagation = tc.prop
			r := b.report()
			m := r.mountAt("/")
			if m == nil {
				t.Fatal("no mount at / inside the container")
			}
			shared, unbindable := false, false
			for _, o := range m.Optional {
				if strings.HasPrefix(o, "shared:") {
					shared = true
				}
				if o == "unbindable" {
					unbindable = true
				}
			}
			if shared != tc.shared || unbindable != tc.unbindable {
				t.Errorf("rootfsPropagation %q: / optional fields %v, want shared=%v unbindable=%v", tc.prop, m.Optional, tc.shared, tc.unbindable)
			}
		})
	}
}

// tmpcopyup: the tmpfs starts with the contents of the image directory it
// covers (podman's --tmpfs uses it); writes stay in the tmpfs.
func TestTmpfsCopyUp(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	dir := filepath.Join(b.rootfs, "data", "sub")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("from-image"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/f", filepath.Join(b.rootfs, "data", "link")); err != nil {
		t.Fatal(err)
	}
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "nosuid"}})
	b.setScript("cat /data/link; echo; stat -c %a /data/sub/f; echo changed > /data/sub/f && cat /data/sub/f; grep ' /data ' /proc/self/mountinfo | grep -c tmpfs")
	out := b.runOK()
	if out != "from-image\n640\nchanged\n1\n" {
		t.Errorf("tmpcopyup: output %q", out)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != "from-image" {
		t.Errorf("the image file changed on the host: %q", got)
	}
}
