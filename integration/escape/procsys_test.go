//go:build linux

package escape

import "testing"

// CVE-2019-19921 / CVE-2023-27561 (runc) and CVE-2025-54867 (youki): the
// image's /proc (or /sys) is a symlink pointing out of the rootfs, and a
// runtime that mounts procfs/sysfs on the path string follows it: the new
// procfs lands on a host directory (in the container's mount namespace,
// before pivot_root), and everything the runtime then writes "inside
// /proc" goes there. warren resolves every mount destination inside the
// rootfs by fd (linux.MkdirInRoot, openat2 RESOLVE_IN_ROOT), mounts on that
// handle, and checks with statfs that the destination now is a procfs/sysfs
// (rootfs_linux.go mountOne).
//
// The createContainer hook records the container's mount table before
// pivot_root: on a vulnerable runtime it lists a proc/sysfs mount on the
// victim directory and the test fails; the victim must also keep exactly
// its canary.
func TestEscapeProcSysSymlink(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		link   string // /proc or /sys
		victim string // relative to the test's temp dir
		rel    string // link target; "" = the victim's absolute path
	}{
		{"proc-absolute", "/proc", "victim-proc", ""},
		{"proc-relative-into-bundle", "/proc", "bundle/victim-proc", "../victim-proc"},
		{"sys-absolute", "/sys", "victim-sys", ""},
		{"sys-relative", "/sys", "victim-sys", "../../victim-sys"},
	}
	for _, tc := range cases {
		for _, mirrored := range []bool{false, true} {
			name := tc.name
			if mirrored {
				// The target also exists inside the rootfs: an
				// in-root resolution succeeds there.
				name += "-mirrored"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := newBundle(t)
				victim := b.victimDir(tc.victim)
				target := tc.rel
				if target == "" {
					target = victim
				}
				b.symlink(target, tc.link)
				if mirrored {
					b.mirror(target, tc.link)
				}
				dump := b.mountinfoHook()
				b.setArgs("/testinit", "probe", "/proc/self/status", "/sys/kernel")
				c, r := b.tryCreate(runOpts{})
				assertNoMountsOn(t, dump, r.ok(), victim)
				if r.ok() {
					c.start()
					b.waitStatus(c.id, "stopped")
					p := decodeProbes(t, c.output())
					if tc.link == "/proc" && !p["/proc/self/status"].Read.OK {
						t.Errorf("the container has no working /proc: %+v", p["/proc/self/status"])
					}
				} else {
					t.Logf("refused (fine):\n%s", r)
				}
				assertVictimDirUnchanged(t, victim)
			})
		}
	}
}
