//go:build linux

package escape

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// CVE-2025-52881 (runc): the runtime's writes to procfs (sysctls,
// oom_score_adj, LSM labels under /proc/self/attr) go through paths that a
// mount laid over a procfs file can redirect, so the write lands in some
// other file (in the original attack a racing container bind-mounted
// /proc/sys/kernel/core_pattern or similar over the target). warren writes
// sysctls and oom_score_adj before pivot_root through a handle on the
// host's /proc that was checked to be a procfs (linux.OpenProc, statfs
// PROC_SUPER_MAGIC), opening every file below it with openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV|RESOLVE_NO_MAGICLINKS
// (linux.Proc.Open): a mount over the file (a crossing into another mount)
// makes the open fail instead of redirecting it. warren makes no LSM
// writes (/proc/self/attr): AppArmor/SELinux are refused.

const testDomain = "escape.example"

// Mounts from the config cover the container's /proc/sys/kernel/domainname
// and /proc/<init>/oom_score_adj with victim files. A runtime that writes
// its sysctls or oom_score_adj through the container's /proc after the
// mounts (or through any path those mounts cover) writes the victims: the
// test fails on their content. warren's writes must land in the real
// files: the init's oom_score_adj (read from the host) and the container's
// domain name (uname inside).
func TestEscapeProcfsWriteRedirectedByConfigMount(t *testing.T) {
	t.Parallel()
	for _, dest := range []string{"/proc/self/oom_score_adj", "/proc/1/oom_score_adj"} {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(dest, "/proc/"), "/", "-"), func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			vDomain := b.victimFile("domainname")
			vOOM := b.victimFile("oom_score_adj")
			b.spec.Mounts = append(b.spec.Mounts,
				bindMount(vDomain, "/proc/sys/kernel/domainname"),
				bindMount(vOOM, dest))
			b.spec.Linux.Sysctl = map[string]string{"kernel.domainname": testDomain}
			b.spec.Process.OOMScoreAdj = ptr(123)
			b.setArgs("/testinit", "report")
			c, r := b.tryCreate(runOpts{})
			if r.ok() {
				if got := strings.TrimSpace(readString("/proc/" + strconv.Itoa(c.pid) + "/oom_score_adj")); got != "123" {
					t.Errorf("the init's oom_score_adj is %q, want 123: the write went elsewhere", got)
				}
				c.start()
				b.waitStatus(c.id, "stopped")
				var rep report
				lastJSON(t, c.output(), &rep)
				if rep.Domainname != testDomain {
					t.Errorf("domain name inside the container is %q, want %q: the sysctl write went elsewhere", rep.Domainname, testDomain)
				}
			} else {
				t.Logf("refused (fine):\n%s", r)
			}
			assertVictimFileUnchanged(t, vDomain)
			assertVictimFileUnchanged(t, vOOM)
		})
	}
}

// The procfs warren itself uses is tampered with: warren runs in a private
// mount namespace where /proc/sys/kernel is covered by a victim directory
// holding a fake "domainname". A runtime that opens
// /proc/sys/kernel/domainname by path writes the victim; warren's openat2
// with RESOLVE_NO_XDEV refuses to cross into the covering mount, so create
// fails (or, were the write to reach the real file, the domain name inside
// would be set). Either way the victim keeps its content.
func TestEscapeProcfsWriteRedirectedByHostOvermount(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	victim := b.victimDir("victim-kernel")
	writeFile(t, filepath.Join(victim, "domainname"), "victim domainname\n")
	b.spec.Linux.Sysctl = map[string]string{"kernel.domainname": testDomain}
	b.setArgs("/testinit", "report")
	c, r := b.tryCreate(runOpts{overmounts: [][2]string{{victim, "/proc/sys/kernel"}}})
	if r.ok() {
		c.start()
		b.waitStatus(c.id, "stopped")
		var rep report
		lastJSON(t, c.output(), &rep)
		if rep.Domainname != testDomain {
			t.Errorf("domain name inside the container is %q, want %q: the sysctl write went elsewhere", rep.Domainname, testDomain)
		}
	} else {
		t.Logf("refused (fine):\n%s", r)
		if strings.Contains(r.stderr, "escape helper") {
			t.Fatalf("the test's mount namespace helper failed, not warren:\n%s", r)
		}
	}
	if got := readString(filepath.Join(victim, "domainname")); got != "victim domainname\n" {
		t.Errorf("ESCAPE (CVE-2025-52881): warren's sysctl write was redirected by a mount over /proc/sys/kernel: the victim now holds %q", got)
	}
	ents, _ := os.ReadDir(victim)
	if len(ents) != 2 {
		t.Errorf("ESCAPE: files were created in the victim directory covering /proc/sys/kernel: %v", ents)
	}
}
