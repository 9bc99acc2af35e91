//go:build linux

package escape

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// CVE-2025-31133: runc masked linux.maskedPaths files by bind-mounting the
// container's own /dev/null over them. An image (or a racing container)
// whose /dev/null is a symlink, e.g. to /proc/sys/kernel/core_pattern, or a
// plain file, made runc bind that file over the masked path instead:
// masked paths stayed readable, and worse, the symlink's target was now
// mounted writable. warren opens the host's /dev/null before entering the
// rootfs, checks it is the character device 1:3 (linux.CheckDevNull) and
// binds that handle (rootfs_linux.go maskPath): the rootfs's /dev/null is
// never used.
//
// Here the config has no /dev mount, so the image's /dev is what the
// container gets. A vulnerable runtime fails the test in one of three ways:
// a masked file inside is not the 1:3 device (it is the symlink's target or
// the fake file), the mount table before pivot_root shows the victim bound
// into the container, or the victim changed.

// maskedFiles are the default config's masked files and directories that
// exist on this host.
func maskedOnHost(t *testing.T, paths []string) (files, dirs []string) {
	for _, p := range paths {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			dirs = append(dirs, p)
		} else {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		t.Fatalf("none of the masked paths %v exists on this host", paths)
	}
	return files, dirs
}

// assertMasked checks, from the container's probes, that every masked file
// is the null device (and reads empty) and every masked directory an empty
// tmpfs.
func assertMasked(t *testing.T, what string, probes map[string]pathProbe, files, dirs []string) {
	t.Helper()
	for _, f := range files {
		p, ok := probes[f]
		if !ok {
			t.Errorf("%s: no probe of %s", what, f)
			continue
		}
		if p.Stat.Type != "char" || p.Stat.Major != 1 || p.Stat.Minor != 3 {
			t.Errorf("ESCAPE (CVE-2025-31133, %s): masked path %s is not the null device inside the container: %+v (fs %#x)", what, f, p.Stat, p.FsType)
		}
		if p.Bytes != 0 {
			t.Errorf("ESCAPE (%s): masked path %s is readable: %d bytes, starting %q", what, f, p.Bytes, p.Head)
		}
	}
	for _, d := range dirs {
		p, ok := probes[d]
		if !ok {
			t.Errorf("%s: no probe of %s", what, d)
			continue
		}
		if p.FsType != unix.TMPFS_MAGIC || p.Entries != 0 {
			t.Errorf("ESCAPE (%s): masked directory %s is not an empty tmpfs inside the container (fs %#x, %d entries)", what, d, p.FsType, p.Entries)
		}
	}
}

func TestEscapeDevNullMasking(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		plant func(b *bundle, null, victim string)
	}{
		{"symlink-to-host-file", func(b *bundle, null, victim string) { b.symlink(victim, "/dev/null") }},
		{"symlink-to-procfs-file", func(b *bundle, null, victim string) { b.symlink("/proc/sys/kernel/domainname", "/dev/null") }},
		{"symlink-relative-out", func(b *bundle, null, victim string) {
			rel, err := filepath.Rel(filepath.Join(b.rootfs, "dev"), victim)
			if err != nil {
				b.t.Fatal(err)
			}
			b.symlink(rel, "/dev/null")
		}},
		{"regular-file", func(b *bundle, null, victim string) {
			if err := os.WriteFile(null, []byte("not the null device\n"), 0o666); err != nil {
				b.t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			b.removeMount("/dev") // the image's /dev is the container's
			victim := b.victimFile("null-target")
			tc.plant(b, filepath.Join(b.rootfs, "dev", "null"), victim)
			files, dirs := maskedOnHost(t, b.spec.Linux.MaskedPaths)
			// CAP_SYS_RAWIO: an unmasked /proc/kcore would be readable.
			caps := b.spec.Process.Capabilities
			caps.Bounding = append(caps.Bounding, "CAP_SYS_RAWIO")
			caps.Effective = append(caps.Effective, "CAP_SYS_RAWIO")
			caps.Permitted = append(caps.Permitted, "CAP_SYS_RAWIO")
			dump := b.mountinfoHook()
			b.setArgs(append([]string{"/testinit", "probe"}, append(files, dirs...)...)...)
			c, r := b.tryCreate(runOpts{})
			assertNoMountsOn(t, dump, r.ok(), victim)
			if r.ok() {
				c.start()
				b.waitStatus(c.id, "stopped")
				assertMasked(t, tc.name, decodeProbes(t, c.output()), files, dirs)
			} else {
				t.Logf("refused (fine):\n%s", r)
			}
			assertVictimFileUnchanged(t, victim)
		})
	}
}
