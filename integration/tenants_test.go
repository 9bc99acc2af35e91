//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The seed's multi-tenant mapping (docs/tenants.md): tenant N's container
// root is host uid/gid 1000000 + N*65536, with 65536 ids. Two tenants side
// by side, each root in its own user namespace, must share nothing a uid
// grants: files they create on a shared bind mount belong to their own host
// ids, and neither can write the other's files, signal or ptrace the
// other's processes.

const (
	tenantBase = 1000000
	tenantSize = 65536
)

// tenantHostID is the host uid (and gid) of tenant n's container root.
func tenantHostID(n int) uint32 { return uint32(tenantBase + n*tenantSize) }

// tenantSpec makes b's spec tenant n's: a new user namespace mapping
// container 0-65535 to the tenant's host range, and a sleeping testinit as
// the init.
func tenantSpec(b *bundle, n int) {
	s := b.spec
	var nss []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != specs.UserNamespace {
			nss = append(nss, ns)
		}
	}
	s.Linux.Namespaces = append(nss, specs.LinuxNamespace{Type: specs.UserNamespace})
	id := tenantHostID(n)
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: id, Size: tenantSize}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: id, Size: tenantSize}}
	s.Hostname = fmt.Sprintf("tenant%d", n)
	b.setArgs("/testinit", "sleep", "1000")
}

// withSharedAndHostProcs bind-mounts shared (a host directory) at /shared
// and, so that the probes can see the other tenant's processes, leaves the
// container in the host's pid namespace with /proc an rbind of the host's
// /proc (a fresh procfs needs CAP_SYS_ADMIN over the owner of the pid
// namespace, which a tenant root does not have for the host's). Isolation
// between tenants then rests on the user namespaces alone, which is what is
// under test; it is not a recommended tenant configuration.
func withSharedAndHostProcs(b *bundle, shared string) {
	b.t.Helper()
	s := b.spec
	var nss []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != specs.PIDNamespace {
			nss = append(nss, ns)
		}
	}
	s.Linux.Namespaces = nss
	replaced := false
	for i, m := range s.Mounts {
		if m.Destination == "/proc" {
			s.Mounts[i] = specs.Mount{Destination: "/proc", Type: "bind", Source: "/proc",
				Options: []string{"rbind", "nosuid", "nodev", "noexec"}}
			replaced = true
		}
	}
	if !replaced {
		b.t.Fatalf("`warren spec` output has no /proc mount to replace: %+v", s.Mounts)
	}
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/shared", Type: "bind", Source: shared,
		Options: []string{"rbind", "rw"}})
	// The tenant root cannot create the mountpoint in a rootfs owned by
	// host root (see TestTenantRootfsOwnership).
	if err := os.Mkdir(filepath.Join(b.rootfs, "shared"), 0o755); err != nil {
		b.t.Fatal(err)
	}
}

// newSharedDir makes a host directory like /tmp (world-writable, sticky)
// under b's temp dir; every component above it is 0755 (newBundle), so
// tenant roots reach it.
func newSharedDir(b *bundle) string {
	b.t.Helper()
	shared := b.tempDir("shared")
	if err := os.Chmod(shared, 0o1777); err != nil {
		b.t.Fatal(err)
	}
	return shared
}

// tenant is one running tenant container.
type tenant struct {
	n  int
	id uint32 // host uid/gid of its root
	b  *bundle
	c  *ctr
}

// exec runs testinit inside the tenant's container and decodes its JSON.
func (tn *tenant) exec(v any, args ...string) {
	tn.b.t.Helper()
	r := tn.b.mustWarren(append([]string{"exec", tn.c.id, "/testinit"}, args...)...)
	decodeJSON(tn.b.t, strings.TrimSpace(r.stdout), v)
}

// statusIDs returns the Uid: or Gid: line fields of /proc/pid/status.
func statusIDs(t *testing.T, pid int, key string) []string {
	t.Helper()
	data := readFile(t, fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(data, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("/proc/%d/status has no %s line:\n%s", pid, key, data)
	return nil
}

// hostOwner stats path on the host.
func hostOwner(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("on the host: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

type ptraceResult struct {
	PID   int    `json:"pid"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Errno int    `json:"errno"`
}

type killResult struct {
	PID   int    `json:"pid"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Errno int    `json:"errno"`
}

func TestTenantsIsolatedByUserNamespace(t *testing.T) {
	t.Parallel()
	b1, b2 := newBundle(t), newBundle(t)
	shared := newSharedDir(b1)

	tenants := []*tenant{{n: 1, b: b1}, {n: 2, b: b2}}
	for _, tn := range tenants {
		tn.id = tenantHostID(tn.n)
		tenantSpec(tn.b, tn.n)
		withSharedAndHostProcs(tn.b, shared)
		tn.c = tn.b.runDetached(newID(t))
	}
	t1, t2 := tenants[0], tenants[1]
	if t1.id != 1065536 || t2.id != 1131072 {
		t.Fatalf("tenant host ids %d, %d; want 1065536, 1131072", t1.id, t2.id)
	}

	// Each is root inside, mapped to its own host range.
	users := map[uint64]int{}
	for _, tn := range tenants {
		var r report
		tn.exec(&r, "report")
		if r.UID != 0 || r.GID != 0 || r.EUID != 0 {
			t.Errorf("tenant %d: uid/euid/gid inside %d/%d/%d, want 0/0/0", tn.n, r.UID, r.EUID, r.GID)
		}
		want := fmt.Sprint([][3]uint64{{0, uint64(tn.id), tenantSize}})
		for _, m := range []struct{ name, content string }{{"uid_map", r.UIDMap}, {"gid_map", r.GIDMap}} {
			if got := fmt.Sprint(parseIDMap(t, m.content)); got != want {
				t.Errorf("tenant %d: %s inside %s (raw %q), want %s", tn.n, m.name, got, m.content, want)
			}
		}
		if r.Namespaces["user"] == hostNS["user"] {
			t.Errorf("tenant %d: user namespace is the host's", tn.n)
		}
		if o, dup := users[r.Namespaces["user"]]; dup {
			t.Errorf("tenants %d and %d share user namespace %d", o, tn.n, r.Namespaces["user"])
		}
		users[r.Namespaces["user"]] = tn.n
		// The configuration under test: host pid namespace, host /proc.
		if r.Namespaces["pid"] != hostNS["pid"] {
			t.Errorf("tenant %d: pid namespace %d, want the host's %d (no pid namespace configured)", tn.n, r.Namespaces["pid"], hostNS["pid"])
		}
		if m := r.mountAt("/proc"); m == nil || m.FSType != "proc" || !hasOpt(m.Options, "nosuid") || !hasOpt(m.Options, "noexec") {
			t.Errorf("tenant %d: /proc inside is %+v, want the host's procfs bind-mounted nosuid,noexec", tn.n, m)
		}
		// Seen from the host, the init runs as the tenant's host ids.
		wantIDs := strings.Repeat(strconv.Itoa(int(tn.id))+" ", 4)
		for _, key := range []string{"Uid", "Gid"} {
			if got := strings.Join(statusIDs(t, tn.c.pid, key), " ") + " "; got != wantIDs {
				t.Errorf("tenant %d: host /proc/%d/status %s: %q, want %q", tn.n, tn.c.pid, key, got, wantIDs)
			}
		}
	}

	// Files each creates on the shared mount belong to its host ids.
	for _, tn := range tenants {
		var w fileResult
		path := fmt.Sprintf("/shared/t%d", tn.n)
		tn.exec(&w, "write", path)
		if !w.OK {
			t.Fatalf("tenant %d: writing %s: %s (errno %d)", tn.n, path, w.Error, w.Errno)
		}
		uid, gid := hostOwner(t, filepath.Join(shared, filepath.Base(path)))
		if uid != tn.id || gid != tn.id {
			t.Errorf("tenant %d: %s on the host is owned by %d:%d, want %d:%d", tn.n, path, uid, gid, tn.id, tn.id)
		}
		// Inside, its own file is root's.
		var st statResult
		tn.exec(&st, "stat", path)
		if !st.Exists || st.UID != 0 || st.GID != 0 {
			t.Errorf("tenant %d: own file %s inside: %+v, want owned by 0:0", tn.n, path, st)
		}
	}

	// Neither can overwrite the other's file; the other's ids are not
	// mapped in its namespace, so they show as the overflow id 65534 and
	// the tenant root's CAP_DAC_OVERRIDE does not apply to them.
	for _, p := range [][2]*tenant{{t2, t1}, {t1, t2}} {
		from, to := p[0], p[1]
		path := fmt.Sprintf("/shared/t%d", to.n)
		var w fileResult
		from.exec(&w, "write", path)
		if w.OK || w.Errno != int(unix.EACCES) {
			t.Errorf("tenant %d writing tenant %d's %s: %+v; want EACCES", from.n, to.n, path, w)
		}
		var st statResult
		from.exec(&st, "stat", path)
		if !st.Exists || st.UID != 65534 || st.GID != 65534 {
			t.Errorf("tenant %d: tenant %d's %s inside: %+v; want owned by the overflow id 65534:65534", from.n, to.n, path, st)
		}
		if uid, gid := hostOwner(t, filepath.Join(shared, filepath.Base(path))); uid != to.id || gid != to.id {
			t.Errorf("tenant %d's file changed owner to %d:%d after tenant %d's write attempt", to.n, uid, gid, from.n)
		}
	}
	// Positive control: a tenant can rewrite its own file.
	var w fileResult
	t1.exec(&w, "write", "/shared/t1")
	if !w.OK {
		t.Errorf("tenant 1 rewriting its own /shared/t1: %+v", w)
	}

	// Positive controls for the process probes: inside tenant 1 (same
	// user namespace, same host uid) signal 0 and ptrace of its own init
	// work, so a failure below is the kernel's permission check.
	pid1 := strconv.Itoa(t1.c.pid)
	var k killResult
	t1.exec(&k, "kill", pid1, "0")
	if !k.OK {
		t.Errorf("tenant 1 signalling (0) its own init %s: %+v; want success", pid1, k)
	}
	// Yama's ptrace_scope >= 1 allows only ancestors (or CAP_SYS_PTRACE
	// holders) to attach, which an exec'd process is not; the cross-tenant
	// EPERM below holds either way.
	if scope, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil && strings.TrimSpace(string(scope)) != "0" {
		t.Logf("Yama ptrace_scope is %s: not checking that tenant 1 can ptrace its own init", strings.TrimSpace(string(scope)))
	} else {
		var pt ptraceResult
		t1.exec(&pt, "ptrace", pid1)
		if !pt.OK {
			t.Errorf("tenant 1 ptracing its own init %s: %+v; want success", pid1, pt)
		}
	}

	// Neither can signal or ptrace the other's init.
	for _, p := range [][2]*tenant{{t2, t1}, {t1, t2}} {
		from, to := p[0], p[1]
		pid := strconv.Itoa(to.c.pid)
		var k killResult
		from.exec(&k, "kill", pid, "0")
		if k.OK || k.Errno != int(unix.EPERM) {
			t.Errorf("tenant %d signalling (0) tenant %d's init %s: %+v; want EPERM", from.n, to.n, pid, k)
		}
		var pt ptraceResult
		from.exec(&pt, "ptrace", pid)
		if pt.OK || pt.Errno != int(unix.EPERM) {
			t.Errorf("tenant %d ptracing tenant %d's init %s: %+v; want EPERM", from.n, to.n, pid, pt)
		}
	}
	for _, tn := range tenants {
		if !procAlive(tn.c.pid) {
			t.Errorf("tenant %d's init %d died during the probes", tn.n, tn.c.pid)
		}
	}

	// After delete nothing is left, and the files keep their owners.
	for _, tn := range tenants {
		tn.b.mustWarren("delete", "--force", tn.c.id)
		tn.b.assertNoLeftovers(tn.c.id)
		assertGone(t, tn.c.pid, fmt.Sprintf("tenant %d's init", tn.n))
	}
	for _, tn := range tenants {
		p := filepath.Join(shared, fmt.Sprintf("t%d", tn.n))
		if uid, gid := hostOwner(t, p); uid != tn.id || gid != tn.id {
			t.Errorf("after delete: %s owned by %d:%d, want %d:%d", p, uid, gid, tn.id, tn.id)
		}
	}
}

// The counter-case, and the reason every tenant gets its own range: two
// containers in separate user namespaces but mapped to the same host range
// are the same host user. Signals and file permissions go by host uid, so
// they reach each other; only ptrace still fails, because its capability
// check also wants the tracer in the tracee's user namespace (or
// CAP_SYS_PTRACE over it).
func TestTenantsSharingARangeAreOneUser(t *testing.T) {
	t.Parallel()
	b1, b2 := newBundle(t), newBundle(t)
	shared := newSharedDir(b1)
	a := &tenant{n: 1, id: tenantHostID(1), b: b1}
	bb := &tenant{n: 1, id: tenantHostID(1), b: b2}
	for _, tn := range []*tenant{a, bb} {
		tenantSpec(tn.b, tn.n)
		withSharedAndHostProcs(tn.b, shared)
		tn.c = tn.b.runDetached(newID(t))
	}
	if nsInode(t, fmt.Sprintf("/proc/%d/ns/user", a.c.pid)) == nsInode(t, fmt.Sprintf("/proc/%d/ns/user", bb.c.pid)) {
		t.Fatalf("the two containers share a user namespace; want one each")
	}
	var w fileResult
	a.exec(&w, "write", "/shared/a")
	if !w.OK {
		t.Fatalf("first container writing /shared/a: %+v", w)
	}
	bb.exec(&w, "write", "/shared/a")
	if !w.OK {
		t.Errorf("second container (same host range) rewriting the first's /shared/a: %+v; want success", w)
	}
	pid := strconv.Itoa(a.c.pid)
	var k killResult
	bb.exec(&k, "kill", pid, "0")
	if !k.OK {
		t.Errorf("second container (same host range) signalling (0) the first's init %s: %+v; want success", pid, k)
	}
	var pt ptraceResult
	bb.exec(&pt, "ptrace", pid)
	if pt.OK || pt.Errno != int(unix.EPERM) {
		t.Errorf("second container ptracing the first's init %s across user namespaces: %+v; want EPERM", pid, pt)
	}
}

// The rootfs is a host directory: owned by host root, the tenant root sees
// it as the overflow id and may read but not write it (its capabilities do
// not cover ids unmapped in its namespace). Chowned to the tenant's range,
// it is the tenant root's own. (Idmapped mounts are the alternative that
// leaves the files on disk alone.)
func TestTenantRootfsOwnership(t *testing.T) {
	t.Parallel()
	t.Run("OwnedByHostRoot", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		tenantSpec(b, 1)
		b.spec.Root.Readonly = false
		tn := &tenant{n: 1, id: tenantHostID(1), b: b, c: b.runDetached(newID(t))}
		var st statResult
		tn.exec(&st, "stat", "/etc")
		if st.UID != 65534 || st.GID != 65534 {
			t.Errorf("/etc (host root's) inside: %+v; want the overflow id 65534:65534", st)
		}
		var r fileResult
		tn.exec(&r, "read", "/testinit")
		if !r.OK {
			t.Errorf("reading /testinit (host root's, 0755) as the tenant root: %+v; want success", r)
		}
		var w fileResult
		tn.exec(&w, "write", "/etc/tenant-file")
		if w.OK || w.Errno != int(unix.EACCES) {
			t.Errorf("creating /etc/tenant-file in host root's /etc as the tenant root: %+v; want EACCES", w)
		}
		if _, err := os.Lstat(filepath.Join(b.rootfs, "etc", "tenant-file")); err == nil {
			t.Errorf("/etc/tenant-file exists on the host")
		}
	})
	t.Run("ChownedToTenant", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		id := tenantHostID(1)
		if err := filepath.WalkDir(b.rootfs, func(p string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, int(id), int(id))
		}); err != nil {
			t.Fatal(err)
		}
		tenantSpec(b, 1)
		b.spec.Root.Readonly = false
		tn := &tenant{n: 1, id: id, b: b, c: b.runDetached(newID(t))}
		var st statResult
		tn.exec(&st, "stat", "/etc")
		if st.UID != 0 || st.GID != 0 {
			t.Errorf("/etc (chowned to %d) inside: %+v; want 0:0", id, st)
		}
		var w fileResult
		tn.exec(&w, "write", "/etc/tenant-file")
		if !w.OK {
			t.Fatalf("creating /etc/tenant-file in the tenant-owned rootfs: %+v", w)
		}
		if uid, gid := hostOwner(t, filepath.Join(b.rootfs, "etc", "tenant-file")); uid != id || gid != id {
			t.Errorf("/etc/tenant-file on the host owned by %d:%d, want %d:%d", uid, gid, id, id)
		}
	})
}
