//go:build linux

package escape

import (
	"testing"

	"golang.org/x/sys/unix"
)

// linux.maskedPaths and linux.readonlyPaths are what keeps a container's
// root from the host kernel's knobs in a procfs and sysfs that are the
// host's: /proc/sysrq-trigger (crash or reboot the host), /proc/sys
// (host-wide sysctls such as kernel.core_pattern, an escape by itself),
// /proc/kcore (host memory). warren binds its verified host /dev/null over
// masked files, an empty read-only tmpfs over masked directories, and
// re-binds read-only paths onto themselves recursively read-only
// (rootfs_linux.go maskPath, readonlyPath).
//
// The container gets CAP_SYS_RAWIO so that an unmasked /proc/kcore would be
// readable; its root owns /proc/sysrq-trigger and /proc/sys/*, so only a
// read-only mount stops the opens for writing (which are closed again,
// never written). On a runtime that skips or breaks either list the
// container reads host memory or opens a host knob for writing, and the
// test fails.

var readonlyProbes = []string{
	"/proc/sysrq-trigger",
	"/proc/sys/kernel/core_pattern",
	"/proc/sys/kernel/modprobe",
	"/proc/sys/vm/drop_caches",
	"/proc/sys/kernel/hostname",
	"/proc/sys/net/ipv4/ip_forward",
}

func assertReadonly(t *testing.T, what string, probes map[string]pathProbe) {
	t.Helper()
	for _, path := range readonlyProbes {
		p, ok := probes[path]
		if !ok {
			t.Errorf("%s: no probe of %s", what, path)
			continue
		}
		if !p.Lstat.Exists {
			continue // not on this kernel
		}
		if p.WriteOpen.OK {
			t.Errorf("ESCAPE (%s): %s opened for writing from inside the container", what, path)
		} else if p.WriteOpen.Errno != int(unix.EROFS) {
			t.Logf("%s: %s refused with %s (not EROFS)", what, path, p.WriteOpen.Error)
		}
	}
}

func TestEscapeMaskedAndReadonlyPaths(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	caps := b.spec.Process.Capabilities
	caps.Bounding = append(caps.Bounding, "CAP_SYS_RAWIO")
	caps.Effective = append(caps.Effective, "CAP_SYS_RAWIO")
	caps.Permitted = append(caps.Permitted, "CAP_SYS_RAWIO")
	files, dirs := maskedOnHost(t, b.spec.Linux.MaskedPaths)
	probeArgs := append([]string{"/testinit", "probe"}, append(append(files, dirs...), readonlyProbes...)...)

	// The container's own process.
	b.setArgs(probeArgs...)
	r := b.run(runOpts{})
	if !r.ok() {
		t.Fatalf("run failed:\n%s", r)
	}
	p := decodeProbes(t, r.stdout)
	assertMasked(t, "init", p, files, dirs)
	assertReadonly(t, "init", p)

	// A process joined by exec sees the same.
	c := startSleeper(t, b)
	r = c.exec(runOpts{}, nil, probeArgs...)
	if !r.ok() {
		t.Fatalf("exec failed:\n%s", r)
	}
	p = decodeProbes(t, r.stdout)
	assertMasked(t, "exec", p, files, dirs)
	assertReadonly(t, "exec", p)
}
