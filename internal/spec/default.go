package spec

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultHostname is the hostname Default gives the container (runc uses "runc").
const DefaultHostname = "warren"

// Default returns the configuration `warren spec` writes: the same document
// `runc spec` (1.1/1.2) produces, apart from the hostname. Tools and people
// diff the two, so keep field order and values in step with runc.
func Default() *specs.Spec {
	defaultCaps := func() []string {
		return []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	}
	return &specs.Spec{
		Version: specs.Version,
		Root: &specs.Root{
			Path:     "rootfs",
			Readonly: true,
		},
		Process: &specs.Process{
			Terminal: true,
			User:     specs.User{},
			Args:     []string{"sh"},
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"TERM=xterm",
			},
			Cwd:             "/",
			NoNewPrivileges: true,
			// No ambient set: runc dropped it in 1.1 because ambient caps
			// survive execve of unprivileged binaries.
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps(),
				Effective: defaultCaps(),
				Permitted: defaultCaps(),
			},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024},
			},
		},
		Hostname: DefaultHostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{
				Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
				Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			},
			{
				Destination: "/dev/pts", Type: "devpts", Source: "devpts",
				Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			},
			{
				Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
				Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"},
			},
			{
				Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
				Options: []string{"nosuid", "noexec", "nodev"},
			},
			{
				Destination: "/sys", Type: "sysfs", Source: "sysfs",
				Options: []string{"nosuid", "noexec", "nodev", "ro"},
			},
			{
				Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
				Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
			},
		},
		Linux: &specs.Linux{
			MaskedPaths: []string{
				"/proc/acpi",
				"/proc/asound",
				"/proc/kcore",
				"/proc/keys",
				"/proc/latency_stats",
				"/proc/timer_list",
				"/proc/timer_stats",
				"/proc/sched_debug",
				"/sys/firmware",
				"/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus",
				"/proc/fs",
				"/proc/irq",
				"/proc/sys",
				"/proc/sysrq-trigger",
			},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			// runc adds the cgroup namespace only on a cgroup v2 host; we
			// always do, so the generated file does not depend on the
			// machine that wrote it.
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.CgroupNamespace},
			},
		},
	}
}

// Rootless adapts s for a container started by an unprivileged user, as
// `runc spec --rootless` does, with the given maps (see RootlessMappings): a
// new user namespace, no uid=/gid= mount options (those ids may be
// unmapped), and no cgroup resources (an unprivileged user cannot write
// them without delegation). Unlike runc it keeps the network namespace: the
// user namespace owns it, so the container gets its own loopback and a
// fresh sysfs (with the host's /sys bound in as a fallback, see rootfs).
func Rootless(s *specs.Spec, uidMaps, gidMaps []specs.LinuxIDMapping) {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	l := s.Linux

	namespaces := make([]specs.LinuxNamespace, 0, len(l.Namespaces)+1)
	for _, ns := range l.Namespaces {
		if ns.Type == specs.UserNamespace {
			continue
		}
		namespaces = append(namespaces, ns)
	}
	l.Namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})

	l.UIDMappings = uidMaps
	l.GIDMappings = gidMaps

	mounts := make([]specs.Mount, 0, len(s.Mounts))
	for _, m := range s.Mounts {
		var opts []string
		for _, o := range m.Options {
			if strings.HasPrefix(o, "uid=") || strings.HasPrefix(o, "gid=") {
				continue
			}
			opts = append(opts, o)
		}
		m.Options = opts
		mounts = append(mounts, m)
	}
	s.Mounts = mounts

	l.Resources = nil
}

// RootlessMappings maps container id 0 to the caller's own host id and, when
// the caller has subordinate ids (/etc/subuid or /etc/subgid, given as
// start/count pairs), container ids 1 and up to those ranges in order, as
// podman does. Without subordinate ids the map is the one line an
// unprivileged user may write itself.
func RootlessMappings(self uint32, sub [][2]uint32) []specs.LinuxIDMapping {
	maps := []specs.LinuxIDMapping{{ContainerID: 0, HostID: self, Size: 1}}
	next := uint64(1)
	for _, r := range sub {
		if r[1] == 0 || next+uint64(r[1]) > 1<<32 {
			break
		}
		maps = append(maps, specs.LinuxIDMapping{ContainerID: uint32(next), HostID: r[0], Size: r[1]})
		next += uint64(r[1])
	}
	return maps
}
