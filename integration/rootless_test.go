package integration

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Rootless tests run warren as an unprivileged host user the suite creates
// (useradd) with 65536 subordinate uids and gids, and remove it afterwards.
// Without useradd or newuidmap (the cgroup v2 VM) the tests that need them
// skip, unless WARREN_ROOTLESS_REQUIRED=1 (CI on the host) makes that a
// failure.

const (
	rootlessUserName = "warren-rootless"
	rootlessSubStart = 3000000 // its subordinate ids: [3000000, 3065536)
)

// testUser is an unprivileged host user.
type testUser struct {
	name     string
	uid, gid uint32
	subIDs   bool // /etc/subuid and /etc/subgid grant it rootlessSubStart+65536, and newuidmap exists
}

var (
	rootlessOnce sync.Once
	rootlessUsr  *testUser
	rootlessWhy  string // why there is no user, or no subordinate ids
)

func rootlessSkip(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("WARREN_ROOTLESS_REQUIRED") == "1" {
		t.Fatalf("rootless test cannot run (WARREN_ROOTLESS_REQUIRED=1): %s", why)
	}
	t.Skipf("SKIP: %s", why)
}

// requireRootlessUser returns the test user, creating it once; needSubIDs
// also requires its subordinate ids and the newuidmap/newgidmap helpers.
func requireRootlessUser(t *testing.T, needSubIDs bool) *testUser {
	t.Helper()
	rootlessOnce.Do(setupRootlessUser)
	if rootlessUsr == nil {
		rootlessSkip(t, rootlessWhy)
	}
	if needSubIDs && !rootlessUsr.subIDs {
		rootlessSkip(t, rootlessWhy)
	}
	return rootlessUsr
}

func setupRootlessUser() {
	u, err := user.Lookup(rootlessUserName)
	if err != nil {
		if _, lerr := exec.LookPath("useradd"); lerr != nil {
			rootlessWhy = fmt.Sprintf("no user %s and no useradd to create it (package passwd)", rootlessUserName)
			return
		}
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", rootlessUserName).CombinedOutput()
		if err != nil {
			rootlessWhy = fmt.Sprintf("useradd %s: %v: %s", rootlessUserName, err, out)
			return
		}
		packageCleanups = append(packageCleanups, func() {
			if out, err := exec.Command("userdel", rootlessUserName).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "integration: userdel %s: %v: %s\n", rootlessUserName, err, out)
			}
		})
		if u, err = user.Lookup(rootlessUserName); err != nil {
			rootlessWhy = fmt.Sprintf("user %s after useradd: %v", rootlessUserName, err)
			return
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	rootlessUsr = &testUser{name: u.Username, uid: uint32(uid), gid: uint32(gid)}

	for _, h := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(h); err != nil {
			rootlessWhy = h + " is not installed (Debian package uidmap)"
			return
		}
	}
	line := fmt.Sprintf("%s:%d:65536", rootlessUserName, rootlessSubStart)
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			rootlessWhy = err.Error()
			return
		}
		if slices.Contains(strings.Split(string(data), "\n"), line) {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, rootlessUserName+":") {
				rootlessWhy = fmt.Sprintf("%s already has another range for %s (%q)", f, rootlessUserName, l)
				return
			}
		}
		if err := appendLine(f, line); err != nil {
			rootlessWhy = err.Error()
			return
		}
		packageCleanups = append(packageCleanups, func() { removeLine(f, line) })
	}
	rootlessUsr.subIDs = true
}

func appendLine(file, line string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func removeLine(file, line string) {
	data, err := os.ReadFile(file)
	if err != nil {
		return
	}
	lines := slices.DeleteFunc(strings.SplitAfter(string(data), "\n"), func(l string) bool { return l == line+"\n" })
	_ = os.WriteFile(file, []byte(strings.Join(lines, "")), 0o644)
}

// rootlessBundle is a bundle whose warren commands run as u: the rootfs
// belongs to u (so it is root's in the container), the state root is
// $XDG_RUNTIME_DIR/warren in a runtime dir u owns, and the config is what
// `warren spec --rootless` writes for u, running /testinit report.
func rootlessBundle(t *testing.T, u *testUser) *bundle {
	t.Helper()
	b := newBundle(t)
	xdg := filepath.Join(b.base, "xdg")
	if err := os.Mkdir(xdg, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(xdg, int(u.uid), int(u.gid)); err != nil {
		t.Fatal(err)
	}
	b.root = filepath.Join(xdg, "warren")
	b.asUser = u
	b.bin = sharedWarrenBin
	if err := filepath.WalkDir(b.dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(u.uid), int(u.gid))
	}); err != nil {
		t.Fatal(err)
	}
	specDir := filepath.Join(b.base, "spec-rootless")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(specDir, int(u.uid), int(u.gid)); err != nil {
		t.Fatal(err)
	}
	b.mustWarren("spec", "--rootless", "--bundle", specDir)
	var s specs.Spec
	decodeJSON(t, readFile(t, filepath.Join(specDir, "config.json")), &s)
	s.Process.Terminal = false
	s.Process.Args = []string{"/testinit", "report"}
	b.spec = &s
	return b
}

func wantMaps(t *testing.T, what, content string, want [][3]uint64) {
	t.Helper()
	if got := parseIDMap(t, content); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s inside: got %v (raw %q), want %v", what, got, content, want)
	}
}

// TestRootlessSpecAndRun: `warren spec --rootless` then `warren run` as an
// unprivileged user with subordinate ids: root inside, the multi-id map
// written by newuidmap/newgidmap, only lo, state in $XDG_RUNTIME_DIR/warren,
// files owned on the host by the user and its subordinate ids.
func TestRootlessSpecAndRun(t *testing.T) {
	t.Parallel()
	u := requireRootlessUser(t, true)
	b := rootlessBundle(t, u)
	l := b.spec.Linux
	wantUID := []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.uid, Size: 1}, {ContainerID: 1, HostID: rootlessSubStart, Size: 65536}}
	wantGID := []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.gid, Size: 1}, {ContainerID: 1, HostID: rootlessSubStart, Size: 65536}}
	if fmt.Sprint(l.UIDMappings) != fmt.Sprint(wantUID) || fmt.Sprint(l.GIDMappings) != fmt.Sprint(wantGID) {
		t.Fatalf("spec --rootless maps: uid %v gid %v, want %v and %v", l.UIDMappings, l.GIDMappings, wantUID, wantGID)
	}
	var types []specs.LinuxNamespaceType
	for _, ns := range l.Namespaces {
		types = append(types, ns.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.NetworkNamespace, specs.MountNamespace, specs.PIDNamespace} {
		if !slices.Contains(types, want) {
			t.Errorf("spec --rootless namespaces %v lack %s", types, want)
		}
	}

	b.setArgs("/testinit", "report")
	_, res := b.run(execOpts{})
	if res.code != 0 || res.err != nil {
		t.Fatalf("rootless run failed:\n%s", res)
	}
	var r report
	decodeJSON(t, strings.TrimSpace(res.stdout), &r)
	if r.UID != 0 || r.EUID != 0 || r.GID != 0 {
		t.Errorf("ids inside: uid %d euid %d gid %d, want root", r.UID, r.EUID, r.GID)
	}
	wantMaps(t, "uid_map", r.UIDMap, [][3]uint64{{0, uint64(u.uid), 1}, {1, rootlessSubStart, 65536}})
	wantMaps(t, "gid_map", r.GIDMap, [][3]uint64{{0, uint64(u.gid), 1}, {1, rootlessSubStart, 65536}})
	if r.Setgroups != "allow" {
		t.Errorf("setgroups inside = %q, want allow (newgidmap wrote the map)", r.Setgroups)
	}
	for _, ns := range []string{"user", "net", "mnt", "pid", "uts", "ipc"} {
		if r.Namespaces[ns] == 0 || r.Namespaces[ns] == hostNS[ns] {
			t.Errorf("%s namespace inside = %d, want a new one (host %d)", ns, r.Namespaces[ns], hostNS[ns])
		}
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "lo" || !r.Interfaces[0].Up {
		t.Errorf("interfaces: got %+v, want only lo, up", r.Interfaces)
	}
	if !strings.Contains(res.stderr, "not delegated") && !strings.Contains(res.stderr, "no cgroup") {
		t.Errorf("warren did not note that the cgroups are not delegated; stderr:\n%s", res.stderr)
	}
	st, err := os.Stat(b.root)
	if err != nil {
		t.Fatalf("state root $XDG_RUNTIME_DIR/warren: %v", err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != u.uid || st.Mode().Perm() != 0o700 {
		t.Errorf("state root %s: owner %d mode %v, want %d and 0700", b.root, sys.Uid, st.Mode().Perm(), u.uid)
	}
	if ents, _ := os.ReadDir(b.root); len(ents) != 0 {
		t.Errorf("state root %s not empty after run: %v", b.root, ents)
	}

	// Files the container's root and its uid 1 create land on the host as
	// the user and its first subordinate id.
	b.spec.Root.Readonly = false
	c := b.spec.Process.Capabilities
	c.Bounding = append(c.Bounding, "CAP_CHOWN")
	c.Effective = append(c.Effective, "CAP_CHOWN")
	c.Permitted = append(c.Permitted, "CAP_CHOWN")
	b.setScript("touch /tmp/by-root && touch /tmp/by-1 && busybox chown 1:1 /tmp/by-1")
	b.runOK()
	for _, f := range []struct {
		name     string
		uid, gid uint32
	}{{"by-root", u.uid, u.gid}, {"by-1", rootlessSubStart, rootlessSubStart}} {
		st, err := os.Stat(filepath.Join(b.rootfs, "tmp", f.name))
		if err != nil {
			t.Fatal(err)
		}
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != f.uid || sys.Gid != f.gid {
			t.Errorf("host owner of /tmp/%s = %d:%d, want %d:%d", f.name, sys.Uid, sys.Gid, f.uid, f.gid)
		}
	}
}

// TestRootlessSingleIDMap: without subordinate ids the only map is the
// user's own id, written by warren itself after denying setgroups.
func TestRootlessSingleIDMap(t *testing.T) {
	t.Parallel()
	u := requireRootlessUser(t, false)
	b := rootlessBundle(t, u)
	b.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.uid, Size: 1}}
	b.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.gid, Size: 1}}
	r := b.report()
	if r.UID != 0 || r.GID != 0 {
		t.Errorf("ids inside: uid %d gid %d, want 0/0", r.UID, r.GID)
	}
	wantMaps(t, "uid_map", r.UIDMap, [][3]uint64{{0, uint64(u.uid), 1}})
	wantMaps(t, "gid_map", r.GIDMap, [][3]uint64{{0, uint64(u.gid), 1}})
	if r.Setgroups != "deny" {
		t.Errorf("setgroups inside = %q, want deny", r.Setgroups)
	}

	// Supplementary groups cannot be set then: a clear error, nothing left.
	b.spec.Process.User.AdditionalGids = []uint32{0}
	b.setArgs("/testinit", "report")
	_, res := b.run(execOpts{})
	if res.code == 0 || !strings.Contains(res.stderr, "process.user.additionalGids") || !strings.Contains(res.stderr, "setgroups") {
		t.Errorf("additionalGids with setgroups denied: want an error naming process.user.additionalGids:\n%s", res)
	}
}

// TestRootlessLifecycle: create, start, exec, ps, list, kill and delete, all
// as the unprivileged user; exec joins the container's user namespace.
func TestRootlessLifecycle(t *testing.T) {
	t.Parallel()
	u := requireRootlessUser(t, false)
	b := rootlessBundle(t, u)
	b.setArgs("/testinit", "sleep", "600")
	id := newID(t)
	c := b.create(id)
	if st := b.state(id); st.Status != "created" {
		t.Fatalf("status after create = %q", st.Status)
	}
	c.startIt()
	b.waitStatus(id, "running")
	list := b.mustWarren("list").stdout
	if !strings.Contains(list, id) || !strings.Contains(list, u.name) {
		t.Errorf("list as %s does not show %s owned by %s:\n%s", u.name, id, u.name, list)
	}
	initNS, err := readNamespaces(strconv.Itoa(c.pid))
	if err != nil {
		t.Fatal(err)
	}
	out := b.mustWarren("exec", id, "/testinit", "report").stdout
	var r report
	decodeJSON(t, strings.TrimSpace(out), &r)
	for _, ns := range []string{"user", "mnt", "pid", "net", "uts", "ipc"} {
		if r.Namespaces[ns] != initNS[ns] {
			t.Errorf("exec'd process %s namespace %d, init's %d", ns, r.Namespaces[ns], initNS[ns])
		}
	}
	if r.UID != 0 {
		t.Errorf("exec'd process uid %d, want 0", r.UID)
	}
	if ps := b.mustWarren("ps", "--format", "json", id).stdout; !strings.Contains(ps, strconv.Itoa(c.pid)) {
		t.Errorf("ps %s does not list the init %d: %s", id, c.pid, ps)
	}
	b.mustWarren("kill", id, "TERM")
	b.waitStatus(id, "stopped")
	b.mustWarren("delete", id)
	b.assertNoLeftovers(id)
}

// TestRootlessErrors: what an unprivileged user cannot do fails up front
// with an error naming the field, and leaves nothing behind.
func TestRootlessErrors(t *testing.T) {
	t.Parallel()
	u := requireRootlessUser(t, false)
	cases := []struct {
		name    string
		subIDs  bool
		mutate  func(s *specs.Spec)
		args    []string
		wantErr []string
	}{
		{
			name:   "map outside the subordinate ids",
			subIDs: true,
			mutate: func(s *specs.Spec) {
				s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.uid, Size: 1}, {ContainerID: 1, HostID: rootlessSubStart + 65536, Size: 100}}
			},
			wantErr: []string{"linux.uidMappings[1]", "/etc/subuid", rootlessUserName},
		},
		{
			name: "gid map of someone else's gid",
			mutate: func(s *specs.Spec) {
				s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}}
			},
			wantErr: []string{"linux.gidMappings[0]"},
		},
		{
			name: "no user namespace",
			mutate: func(s *specs.Spec) {
				s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace })
				s.Linux.UIDMappings, s.Linux.GIDMappings = nil, nil
			},
			wantErr: []string{"linux.namespaces", "unprivileged", "--rootless"},
		},
		{
			name: "process user not mapped",
			mutate: func(s *specs.Spec) {
				s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.uid, Size: 1}}
				s.Process.User.UID = 1000
			},
			wantErr: []string{"process.user.uid", "1000", "linux.uidMappings"},
		},
		{
			name: "id-mapped mount",
			mutate: func(s *specs.Spec) {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "bind", Source: "/tmp", Options: []string{"rbind", "idmap"}})
			},
			wantErr: []string{"mounts[", "id-mapped mounts need root on the host"},
		},
		{
			name:    "--rootless false without a delegated cgroup",
			args:    []string{"--rootless", "false"},
			wantErr: []string{"cgroup", "permission denied"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.subIDs {
				requireRootlessUser(t, true)
			}
			b := rootlessBundle(t, u)
			if tc.mutate != nil {
				tc.mutate(b.spec)
			}
			b.writeSpec()
			id := newID(t)
			b.track(id)
			r := b.warren(append(tc.args, "create", "--bundle", b.dir, id)...)
			if r.code == 0 {
				t.Fatalf("create succeeded, want an error mentioning %q:\n%s", tc.wantErr, r)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("error lacks %q:\n%s", w, r)
				}
			}
			b.assertNoLeftovers(id)
		})
	}
}

// TestRootlessDelegatedCgroup: a cgroup subtree delegated to the user (the
// directory and its cgroup.procs chowned to it) is used, with limits; what
// is not delegated is skipped, and a limit that needs it is an error.
func TestRootlessDelegatedCgroup(t *testing.T) {
	t.Parallel()
	u := requireRootlessUser(t, false)
	b := rootlessBundle(t, u)
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	name := "warren-deleg-" + hex.EncodeToString(rb[:])
	id := newID(t)
	var deleg, memFile, want string
	if cgroupV2 {
		// v2: the user must also own the common ancestor of where warren
		// starts and where the container goes, so warren is started in
		// a leaf of the delegated subtree.
		deleg = filepath.Join("/sys/fs/cgroup", name)
		enableV2(t, "/sys/fs/cgroup", "memory", "pids")
		mkCgroup(t, deleg, u, "cgroup.procs", "cgroup.subtree_control", "cgroup.threads")
		launcher := filepath.Join(deleg, "launcher")
		mkCgroup(t, launcher, u, "cgroup.procs", "cgroup.threads")
		b.launchCgroup = launcher
		memFile, want = filepath.Join(deleg, id, "memory.max"), "67108864"
	} else {
		mnt := v1Mountpoint(t, "memory")
		if mnt == "" {
			t.Skip("SKIP: no cgroup v1 memory hierarchy")
		}
		deleg = filepath.Join(mnt, name)
		mkCgroup(t, deleg, u, "cgroup.procs", "tasks")
		b.spec.Linux.CgroupsPath = "/" + name + "/" + id
		memFile, want = filepath.Join(deleg, id, "memory.limit_in_bytes"), "67108864"
	}
	b.spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))}}
	b.setArgs("/testinit", "sleep", "600")
	c := b.runDetached(id)
	if got := strings.TrimSpace(readFile(t, memFile)); got != want {
		t.Errorf("%s = %q, want %s", memFile, got, want)
	}
	procs := readFile(t, filepath.Join(filepath.Dir(memFile), "cgroup.procs"))
	if !slices.Contains(strings.Fields(procs), strconv.Itoa(c.pid)) {
		t.Errorf("init %d is not in the delegated cgroup %s (cgroup.procs %q)", c.pid, filepath.Dir(memFile), procs)
	}
	// exec joins the delegated cgroup (v2: from inside the subtree).
	// Inside the container's cgroup namespace its cgroup is "/"; a process
	// left outside it would show a path with "..".
	out := b.mustWarren("exec", id, "/bin/cat", "/proc/self/cgroup").stdout
	joined := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && ((cgroupV2 && f[0] == "0") || (!cgroupV2 && slices.Contains(strings.Split(f[1], ","), "memory"))) {
			joined = f[2] == "/"
		}
	}
	if !joined {
		t.Errorf("exec'd process is not in the delegated cgroup; its /proc/self/cgroup:\n%s", out)
	}
	b.mustWarren("delete", "--force", id)
	if _, err := os.Stat(filepath.Dir(memFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("container cgroup %s left behind (%v)", filepath.Dir(memFile), err)
	}

	if !cgroupV2 {
		// Only memory is delegated here: a pids limit cannot be applied.
		b.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: ptr(int64(10))}
		id2 := newID(t)
		b.spec.Linux.CgroupsPath = "/" + name + "/" + id2
		_, r := b.tryCreate(id2)
		if r.code == 0 || !strings.Contains(r.stderr, "linux.resources.pids") || !strings.Contains(r.stderr, "not delegated") {
			t.Errorf("pids limit without a delegated pids cgroup: want an error naming linux.resources.pids:\n%s", r)
		}
		b.assertNoLeftovers(id2)
	}
}

// mkCgroup creates a cgroup directory owned by u with the given files
// chowned too (how a subtree is delegated), removed at the end of the test.
func mkCgroup(t *testing.T, dir string, u *testUser, files ...string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("remove delegated cgroup %s: %v", dir, err)
		}
	})
	for _, f := range append([]string{""}, files...) {
		if err := os.Chown(filepath.Join(dir, f), int(u.uid), int(u.gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// enableV2 enables controllers for the children of a cgroup v2 directory.
func enableV2(t *testing.T, dir string, ctrls ...string) {
	t.Helper()
	var add []string
	for _, c := range ctrls {
		add = append(add, "+"+c)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(add, " ")), 0o644); err != nil {
		t.Fatalf("enable %v in %s: %v", ctrls, dir, err)
	}
}

// v1Mountpoint is the mount point of the v1 hierarchy holding ctrl.
func v1Mountpoint(t *testing.T, ctrl string) string {
	t.Helper()
	ms, err := readMountinfo("self")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.FSType == "cgroup" && slices.Contains(strings.Split(m.SuperOptions, ","), ctrl) {
			return m.Mountpoint
		}
	}
	return ""
}
