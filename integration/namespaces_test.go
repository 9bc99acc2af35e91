//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// nsEntry maps an OCI namespace type to its /proc/self/ns entry name.
var nsEntry = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.MountNamespace:   "mnt",
	specs.CgroupNamespace:  "cgroup",
	specs.UserNamespace:    "user",
	specs.TimeNamespace:    "time",
}

var allNSTypes = []specs.LinuxNamespaceType{
	specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace,
	specs.MountNamespace, specs.CgroupNamespace, specs.UserNamespace, specs.TimeNamespace,
}

func setNamespaces(s *specs.Spec, types ...specs.LinuxNamespaceType) {
	s.Linux.Namespaces = nil
	for _, t := range types {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t})
	}
}

// withUserNS adds a user namespace mapping container 0-65535 to host
// 100000-165535.
func withUserNS(s *specs.Spec) {
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

// assertNamespaces checks each entry: in `fresh` it must differ from the
// host's, otherwise it must equal the host's.
func assertNamespaces(t *testing.T, r *report, fresh map[string]bool) {
	t.Helper()
	for _, name := range nsEntry {
		got, ok := r.Namespaces[name]
		host, hostOK := hostNS[name]
		if !hostOK {
			continue // kernel without this namespace type
		}
		if !ok {
			t.Errorf("namespace %s: missing from the container's /proc/self/ns (report errors: %v)", name, r.Errors)
			continue
		}
		if fresh[name] && got == host {
			t.Errorf("namespace %s: container inode %d equals the host's; want a new namespace", name, got)
		}
		if !fresh[name] && got != host {
			t.Errorf("namespace %s: container inode %d, host %d; not requested, so it must be the host's", name, got, host)
		}
	}
}

func TestNamespacesAllTypesAreNew(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	setNamespaces(b.spec, allNSTypes...)
	withUserNS(b.spec)
	r := b.report()
	fresh := map[string]bool{}
	for _, typ := range allNSTypes {
		fresh[nsEntry[typ]] = true
	}
	assertNamespaces(t, r, fresh)
	// The *_for_children entries follow the process's own namespaces.
	for _, n := range []string{"pid", "time"} {
		if c, ok := r.Namespaces[n+"_for_children"]; ok && c != r.Namespaces[n] {
			t.Errorf("namespace %s_for_children is %d but %s is %d", n, c, n, r.Namespaces[n])
		}
	}
}

func TestNamespacesUnlistedAreHost(t *testing.T) {
	t.Parallel()
	t.Run("DefaultConfig", func(t *testing.T) {
		t.Parallel()
		// `warren spec`: pid, network, ipc, uts, mount, cgroup; no user, no time.
		b := newBundle(t)
		fresh := map[string]bool{}
		for _, ns := range b.spec.Linux.Namespaces {
			fresh[nsEntry[ns.Type]] = true
		}
		if fresh["user"] || fresh["time"] {
			t.Fatalf("default spec unexpectedly has a user or time namespace: %+v", b.spec.Linux.Namespaces)
		}
		assertNamespaces(t, b.report(), fresh)
	})
	t.Run("OnlyPidAndMount", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		setNamespaces(b.spec, specs.PIDNamespace, specs.MountNamespace)
		b.spec.Hostname = "" // no uts namespace to set it in
		assertNamespaces(t, b.report(), map[string]bool{"pid": true, "mnt": true})
	})
}

// A namespace given by path is joined, not created.
func TestNamespacesJoinByPath(t *testing.T) {
	t.Parallel()
	t.Run("NetworkFromUnshare", func(t *testing.T) {
		t.Parallel()
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Skip("unshare(1) not installed")
		}
		holder := exec.Command("unshare", "--net", "--", busyboxPath, "sleep", "1000")
		if err := holder.Start(); err != nil {
			t.Fatalf("unshare --net: %v", err)
		}
		t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
		nsPath := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
		var want uint64
		waitFor(t, "unshare --net to enter its new network namespace", func() bool {
			want = nsInode(t, nsPath)
			return want != hostNS["net"]
		}, nil)

		b := newBundle(t)
		for i, ns := range b.spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				b.spec.Linux.Namespaces[i].Path = nsPath
			}
		}
		r := b.report()
		if got := r.Namespaces["net"]; got != want {
			t.Errorf("net namespace: container inode %d, want %d (joined %s)", got, want, nsPath)
		}
		fresh := map[string]bool{"pid": true, "ipc": true, "uts": true, "mnt": true, "cgroup": true}
		for name := range fresh {
			if r.Namespaces[name] == hostNS[name] {
				t.Errorf("namespace %s: equal to the host's, want new", name)
			}
		}
		if r.Namespaces["user"] != hostNS["user"] || r.Namespaces["time"] != hostNS["time"] {
			t.Errorf("user/time namespaces not requested but differ from the host's: %v vs host %v", r.Namespaces, hostNS)
		}
	})
	t.Run("UTSAndIPCFromAnotherContainer", func(t *testing.T) {
		t.Parallel()
		a := newBundle(t)
		a.spec.Hostname = "shared-uts"
		a.setArgs("/testinit", "sleep", "1000")
		first := a.create(newID(t))
		first.startIt()
		a.waitStatus(first.id, "running")
		utsPath := fmt.Sprintf("/proc/%d/ns/uts", first.pid)
		ipcPath := fmt.Sprintf("/proc/%d/ns/ipc", first.pid)
		wantUTS, wantIPC := nsInode(t, utsPath), nsInode(t, ipcPath)
		if wantUTS == hostNS["uts"] {
			t.Fatalf("first container's uts namespace is the host's")
		}

		b := newBundle(t)
		b.spec.Hostname = "renamed-by-b" // set in the joined namespace, as runc does
		for i, ns := range b.spec.Linux.Namespaces {
			switch ns.Type {
			case specs.UTSNamespace:
				b.spec.Linux.Namespaces[i].Path = utsPath
			case specs.IPCNamespace:
				b.spec.Linux.Namespaces[i].Path = ipcPath
			}
		}
		r := b.report()
		if r.Namespaces["uts"] != wantUTS {
			t.Errorf("uts namespace: got inode %d, want %d (of %s)", r.Namespaces["uts"], wantUTS, utsPath)
		}
		if r.Namespaces["ipc"] != wantIPC {
			t.Errorf("ipc namespace: got inode %d, want %d (of %s)", r.Namespaces["ipc"], wantIPC, ipcPath)
		}
		if r.Hostname != "renamed-by-b" {
			t.Errorf("hostname in the joined uts namespace: got %q, want %q", r.Hostname, "renamed-by-b")
		}
		if h, _ := os.Hostname(); h == "renamed-by-b" {
			t.Errorf("the host was renamed")
		}
		if r.Namespaces["net"] == hostNS["net"] || r.Namespaces["pid"] == hostNS["pid"] {
			t.Errorf("net/pid namespaces should still be new")
		}
	})
}

func TestPidNamespaceInitIsPid1(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	r := b.report()
	if r.PID != 1 {
		t.Errorf("pid inside a new pid namespace: got %d, want 1", r.PID)
	}
}

func TestHostnameAndDomainname(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Hostname = "wit-host"
	b.spec.Domainname = "wit.example"
	r := b.report()
	if r.Hostname != "wit-host" {
		t.Errorf("hostname: got %q, want %q", r.Hostname, "wit-host")
	}
	if r.Domainname != "wit.example" {
		t.Errorf("domainname: got %q, want %q", r.Domainname, "wit.example")
	}
}

// parseIDMap parses /proc/self/uid_map content.
func parseIDMap(t *testing.T, s string) [][3]uint64 {
	t.Helper()
	var out [][3]uint64
	for _, l := range lines(s) {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("bad id map line %q", l)
		}
		var e [3]uint64
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				t.Fatalf("bad id map line %q: %v", l, err)
			}
			e[i] = n
		}
		out = append(out, e)
	}
	return out
}

func TestUserNamespaceIDMaps(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	withUserNS(b.spec)
	r := b.report()
	want := [][3]uint64{{0, 100000, 65536}}
	for _, m := range []struct{ name, content string }{{"uid_map", r.UIDMap}, {"gid_map", r.GIDMap}} {
		got := parseIDMap(t, m.content)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s inside: got %v (raw %q), want %v", m.name, got, m.content, want)
		}
	}
	if r.UID != 0 || r.GID != 0 {
		t.Errorf("uid/gid inside the user namespace: got %d/%d, want 0/0", r.UID, r.GID)
	}
	if r.Namespaces["user"] == hostNS["user"] {
		t.Errorf("user namespace equals the host's")
	}
}

func TestNetworkNamespaceHasOnlyLoopbackUp(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	r := b.report()
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "lo" {
		t.Fatalf("interfaces in a new network namespace: got %+v, want only lo", r.Interfaces)
	}
	if !r.Interfaces[0].Up {
		t.Errorf("lo is down in the container's network namespace; want it up")
	}
}
