package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The runtime prepares a container's rootfs from a thread of its own and
// the C tail applies the process settings, unless the config needs the Go
// init (WARREN_GO_INIT forces it). Both must build the same container:
// mounts (types, options, sources, propagation), devices, masked and
// read-only paths, hostname and domainname, sysctls, lo up, oom_score_adj,
// ids, capabilities, rlimits, env, cwd, open fds; and the prestart and
// createRuntime hooks see the same state, in the runtime's namespaces.
func TestPreparedMatchesGoInit(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	s := b.spec
	s.Hostname, s.Domainname = "prepared", "example.org"
	s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"}
	s.Process.OOMScoreAdj = ptr(123)
	s.Process.Cwd = "/work/dir"
	data := b.tempDir("data")
	writeFile(t, filepath.Join(data, "hello"), "hi\n")
	for i, m := range s.Mounts {
		if m.Type == "proc" {
			s.Mounts[i].Options = []string{"nosuid", "noexec", "nodev"}
		}
	}
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "ro", "rprivate"}},
		specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=1m", "mode=1777"}},
	)
	s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/extra", Type: "c", Major: 1, Minor: 3, FileMode: ptr(os.FileMode(0o640)), UID: ptr(uint32(0)), GID: ptr(uint32(5))})
	s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/etc/hidden")
	writeFile(t, filepath.Join(b.rootfs, "etc", "hidden"), "secret\n")
	hooks := b.tempDir("hooks")
	log := filepath.Join(hooks, "hooks.log")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox on the host for the hooks")
	}
	s.Hooks = &specs.Hooks{
		Prestart:      []specs.Hook{hookScript(t, hooks, "prestart", log)},
		CreateRuntime: []specs.Hook{hookScript(t, hooks, "createRuntime", log)},
	}
	b.setScript("/testinit report; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax /etc/hidden /data/hello; stat -c '%A %u %g %t:%T' /dev/extra; grep -c . /proc/self/mountinfo")

	run := func(env ...string) (report, string, string) {
		t.Helper()
		if err := os.WriteFile(log, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		b.env = env
		out := b.runOK()
		rep, rest, _ := strings.Cut(out, "\n")
		var r report
		decodeJSON(t, rep, &r)
		hookLog := readFile(t, log)
		return r, rest, hookLog
	}
	prepared, pRest, pHooks := run()
	goInit, gRest, gHooks := run("WARREN_GO_INIT=1")

	// Only what may differ between two containers goes: namespace and
	// mount ids, peer groups, pids, device numbers of new filesystems.
	ids := regexp.MustCompile(`[0-9]+`)
	norm := func(r report) string {
		var b strings.Builder
		for _, m := range r.Mounts {
			opt := ids.ReplaceAllString(strings.Join(m.Optional, " "), "N")
			fmt.Fprintf(&b, "%s %s %s %s %s %s %s\n", m.Mountpoint, m.Root, m.Options, m.FSType, m.Source, m.SuperOptions, opt)
		}
		fmt.Fprintf(&b, "host %s %s uid %d %d gid %d %d groups %v cwd %s env %v umask %o caps %v nnp %d rlimits %v fds %v oom %d ifs %+v cgroup %q errors %v ns",
			r.Hostname, r.Domainname, r.UID, r.EUID, r.GID, r.EGID, r.Groups, r.Cwd, r.Env, r.Umask, r.Caps, r.NoNewPrivs, r.Rlimits, r.FDs, r.OOMScoreAdj, r.Interfaces, r.Cgroup, r.Errors)
		for _, n := range []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"} {
			if _, ok := r.Namespaces[n]; ok {
				fmt.Fprintf(&b, " %s", n)
			}
		}
		return b.String()
	}
	if np, ng := norm(prepared), norm(goInit); np != ng {
		t.Errorf("the container prepared by the runtime differs from the Go init's:\nprepared:\n%s\nGo init:\n%s", np, ng)
	}
	if pRest != gRest {
		t.Errorf("sysctls, masked path, bind mount, device:\nprepared:\n%s\nGo init:\n%s", pRest, gRest)
	}
	for _, want := range []string{"1\n4096\n", "hi\n", "crw-r----- 0 5 1:3\n"} {
		if !strings.Contains(pRest, want) {
			t.Errorf("prepared container: want %q in\n%s", want, pRest)
		}
	}
	if strings.Contains(pRest, "secret") {
		t.Errorf("/etc/hidden is not masked in the prepared container:\n%s", pRest)
	}
	if prepared.Hostname != "prepared" || prepared.Domainname != "example.org" || prepared.OOMScoreAdj != 123 || prepared.Cwd != "/work/dir" {
		t.Errorf("prepared container: hostname %q domainname %q oom %d cwd %q", prepared.Hostname, prepared.Domainname, prepared.OOMScoreAdj, prepared.Cwd)
	}
	// The hooks ran in the runtime's mount namespace with the state of a
	// creating container, in both.
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	cid := regexp.MustCompile(`"id":"[^"]*"`)
	hookNorm := func(l string) string { return ids.ReplaceAllString(cid.ReplaceAllString(l, "ID"), "N") }
	for _, hl := range []string{pHooks, gHooks} {
		lines := strings.Split(strings.TrimSpace(hl), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "prestart "+hostMnt) || !strings.HasPrefix(lines[1], "createRuntime "+hostMnt) || !strings.Contains(hl, `"status":"creating"`) {
			t.Errorf("hooks log (want prestart then createRuntime in %s, creating):\n%s", hostMnt, hl)
		}
	}
	if hookNorm(pHooks) != hookNorm(gHooks) {
		t.Errorf("hooks saw different states:\nprepared:\n%s\nGo init:\n%s", pHooks, gHooks)
	}
}
