package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// statInside is testinit's stat output.
type statInside struct {
	Exists bool   `json:"exists"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Error  string `json:"error"`
}

// idmapDir makes a host directory holding a file owned by uid:gid.
func idmapDir(t *testing.T, b *bundle, name string, uid, gid int) string {
	t.Helper()
	d := b.tempDir(name)
	if err := os.Chown(d, uid, gid); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(d, "file")
	writeFile(t, f, "x")
	if err := os.Chown(f, uid, gid); err != nil {
		t.Fatal(err)
	}
	return d
}

// requireIDMapSupport skips the test when the filesystem of dir cannot be
// id-mapped on this kernel (tmpfs before Linux 6.3, as in the cgroup v2 VM),
// probing with the same calls warren makes.
func requireIDMapSupport(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(testinitBin, "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 1}},
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		var st unix.Statfs_t
		_ = unix.Statfs(dir, &st)
		var uts unix.Utsname
		_ = unix.Uname(&uts)
		t.Skipf("SKIP: the filesystem of %s (magic %#x) cannot be id-mapped on Linux %s: %v", dir, st.Type, unix.ByteSliceToString(uts.Release[:]), err)
	}
}

// TestIDMappedMounts: a host directory owned by uid 1000 shows as owned by
// the container's root through an id-mapped bind mount with its own maps,
// and what the container's root creates there lands on disk as uid 1000; the
// idmap option without maps uses the container's user namespace maps; the
// same directory without id-mapping shows as unmapped (nobody).
func TestIDMappedMounts(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	withUserNS(b.spec) // container 0 = host 100000
	b.spec.Root.Readonly = false
	own := idmapDir(t, b, "owned-by-1000", 1000, 1000)
	requireIDMapSupport(t, own)
	rootOwned := idmapDir(t, b, "owned-by-root", 0, 0)
	plain := idmapDir(t, b, "plain", 1000, 1000)
	for _, d := range []string{"own", "rootowned", "plain"} {
		// The container's root may not create them in a root-owned rootfs.
		if err := os.Mkdir(filepath.Join(b.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	to100000 := []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 100000, Size: 1}}
	b.spec.Mounts = append(b.spec.Mounts,
		specs.Mount{Destination: "/own", Type: "bind", Source: own, Options: []string{"bind", "idmap"},
			UIDMappings: to100000, GIDMappings: to100000},
		specs.Mount{Destination: "/rootowned", Type: "bind", Source: rootOwned, Options: []string{"rbind", "ridmap"}},
		specs.Mount{Destination: "/plain", Type: "bind", Source: plain, Options: []string{"bind"}},
	)
	b.setScript("/testinit stat /own/file; /testinit stat /rootowned/file; /testinit stat /plain/file; /testinit write /own/new")
	lines := jsonLines(t, b.runOK(), 4)
	want := []struct {
		what     string
		uid, gid int
	}{
		{"/own/file (host 1000, mount maps 1000->100000)", 0, 0},
		{"/rootowned/file (host 0, ridmap with the container's maps)", 0, 0},
		{"/plain/file (host 1000, not id-mapped)", 65534, 65534},
	}
	for i, w := range want {
		var st statInside
		decodeJSON(t, lines[i], &st)
		if !st.Exists || st.UID != w.uid || st.GID != w.gid {
			t.Errorf("%s inside: %+v, want %d:%d", w.what, st, w.uid, w.gid)
		}
	}
	if !strings.Contains(lines[3], `"ok":true`) {
		t.Fatalf("container root writing to the id-mapped /own: %s", lines[3])
	}
	if uid, gid := hostOwner(t, filepath.Join(own, "new")); uid != 1000 || gid != 1000 {
		t.Errorf("file the container's root created on the id-mapped mount: host owner %d:%d, want 1000:1000", uid, gid)
	}
	// The host directories are untouched: no chown happened.
	if uid, _ := hostOwner(t, filepath.Join(own, "file")); uid != 1000 {
		t.Errorf("host file under the id-mapped source now owned by %d, want 1000 (unchanged)", uid)
	}
}

// TestIDMappedMountWithoutUserNamespace: with explicit maps, id-mapping works
// for a container without a user namespace too: host uid 1000 shows as the
// container's (= host's) root.
func TestIDMappedMountWithoutUserNamespace(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	own := idmapDir(t, b, "owned-by-1000", 1000, 1000)
	requireIDMapSupport(t, own)
	toRoot := []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 0, Size: 1}}
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/own", Type: "bind", Source: own,
		Options: []string{"bind", "idmap", "ro"}, UIDMappings: toRoot, GIDMappings: toRoot})
	b.setArgs("/testinit", "stat", "/own/file")
	var st statInside
	decodeJSON(t, strings.TrimSpace(b.runOK()), &st)
	if st.UID != 0 || st.GID != 0 {
		t.Errorf("/own/file inside: %+v, want 0:0", st)
	}
}

// TestIDMappedMountErrors: an id-mapped mount warren cannot make fails with
// the mount named, and nothing left behind.
func TestIDMappedMountErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		mount specs.Mount
		want  []string
	}{
		{"idmap without a user namespace or maps", specs.Mount{Destination: "/x", Type: "bind", Options: []string{"bind", "idmap"}}, []string{"mounts[", "idmap", "user namespace"}},
		{"maps on a tmpfs", specs.Mount{Destination: "/x", Type: "tmpfs", Source: "tmpfs",
			UIDMappings: []specs.LinuxIDMapping{{Size: 1}}, GIDMappings: []specs.LinuxIDMapping{{Size: 1}}}, []string{"mounts[", "bind mounts only"}},
		{"uid maps without gid maps", specs.Mount{Destination: "/x", Type: "bind", Options: []string{"bind"},
			UIDMappings: []specs.LinuxIDMapping{{Size: 1}}}, []string{"gidMappings", "must be given with uidMappings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBundle(t)
			m := tc.mount
			if m.Type == "bind" {
				m.Source = b.tempDir("src")
			}
			b.spec.Mounts = append(b.spec.Mounts, m)
			id := newID(t)
			_, r := b.tryCreate(id)
			if r.code == 0 {
				t.Fatalf("create succeeded:\n%s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("error lacks %q:\n%s", w, r)
				}
			}
			b.assertNoLeftovers(id)
		})
	}
}
