package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// validBase returns a bundle directory with an empty rootfs and a config that
// passes Validate: Default() without a terminal.
func validBase(t *testing.T) (*specs.Spec, string) {
	t.Helper()
	bundle := t.TempDir()
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := Default()
	s.Process.Terminal = false
	return s, bundle
}

func TestValidateBase(t *testing.T) {
	s, bundle := validBase(t)
	if err := Validate(s, bundle); err != nil {
		t.Fatalf("Validate(Default() with terminal false) = %v, want nil", err)
	}
}

func setNS(s *specs.Spec, t specs.LinuxNamespaceType, path string) {
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == t {
			s.Linux.Namespaces[i].Path = path
			return
		}
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
}

func dropNS(s *specs.Spec, t specs.LinuxNamespaceType) {
	var keep []specs.LinuxNamespace
	for _, n := range s.Linux.Namespaces {
		if n.Type != t {
			keep = append(keep, n)
		}
	}
	s.Linux.Namespaces = keep
}

func withUserNS(s *specs.Spec) {
	setNS(s, specs.UserNamespace, "")
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

func i64(v int64) *int64 { return &v }

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *specs.Spec, bundle string)
		class  error
		field  string // substring the message must contain
	}{
		// top level
		{"windows section", func(s *specs.Spec, _ string) { s.Windows = &specs.Windows{} }, errdefs.ErrInvalid, "windows"},
		{"solaris section", func(s *specs.Spec, _ string) { s.Solaris = &specs.Solaris{} }, errdefs.ErrInvalid, "solaris"},
		{"vm section", func(s *specs.Spec, _ string) { s.VM = &specs.VM{} }, errdefs.ErrInvalid, "vm:"},
		{"zos section", func(s *specs.Spec, _ string) { s.ZOS = &specs.ZOS{} }, errdefs.ErrInvalid, "zos"},
		{"freebsd section", func(s *specs.Spec, _ string) { s.FreeBSD = &specs.FreeBSD{} }, errdefs.ErrInvalid, "freebsd"},
		{"empty ociVersion", func(s *specs.Spec, _ string) { s.Version = "" }, errdefs.ErrInvalid, "ociVersion"},
		{"ociVersion major 2", func(s *specs.Spec, _ string) { s.Version = "2.0.0" }, errdefs.ErrInvalid, "ociVersion"},
		{"ociVersion major 0", func(s *specs.Spec, _ string) { s.Version = "0.5.0" }, errdefs.ErrInvalid, "ociVersion"},
		{"ociVersion bare major", func(s *specs.Spec, _ string) { s.Version = "1" }, errdefs.ErrInvalid, "ociVersion"},

		// root
		{"no root", func(s *specs.Spec, _ string) { s.Root = nil }, errdefs.ErrInvalid, "root"},
		{"empty root.path", func(s *specs.Spec, _ string) { s.Root.Path = "" }, errdefs.ErrInvalid, "root.path"},
		{"missing rootfs", func(s *specs.Spec, _ string) { s.Root.Path = "nope" }, errdefs.ErrNotFound, "root.path"},
		{"missing absolute rootfs", func(s *specs.Spec, b string) { s.Root.Path = filepath.Join(b, "gone") }, errdefs.ErrNotFound, "gone"},
		{"rootfs is a file", func(s *specs.Spec, b string) {
			f := filepath.Join(b, "file")
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				panic(err)
			}
			s.Root.Path = "file"
		}, errdefs.ErrInvalid, "root.path"},

		// process
		{"no args", func(s *specs.Spec, _ string) { s.Process.Args = nil }, errdefs.ErrInvalid, "process.args"},
		{"NUL in args", func(s *specs.Spec, _ string) { s.Process.Args = []string{"sh", "a\x00b"} }, errdefs.ErrInvalid, "process.args[1]"},
		{"empty cwd", func(s *specs.Spec, _ string) { s.Process.Cwd = "" }, errdefs.ErrInvalid, "process.cwd"},
		{"relative cwd", func(s *specs.Spec, _ string) { s.Process.Cwd = "home" }, errdefs.ErrInvalid, "process.cwd"},
		{"env without =", func(s *specs.Spec, _ string) { s.Process.Env = append(s.Process.Env, "FOO") }, errdefs.ErrInvalid, "process.env[2]"},
		{"oomScoreAdj too low", func(s *specs.Spec, _ string) { s.Process.OOMScoreAdj = ptr(-1001) }, errdefs.ErrInvalid, "process.oomScoreAdj"},
		{"oomScoreAdj too high", func(s *specs.Spec, _ string) { s.Process.OOMScoreAdj = ptr(1001) }, errdefs.ErrInvalid, "process.oomScoreAdj"},
		{"unknown rlimit", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_FOO"})
		}, errdefs.ErrInvalid, "process.rlimits[1].type"},
		{"lowercase rlimit", func(s *specs.Spec, _ string) { s.Process.Rlimits[0].Type = "rlimit_nofile" }, errdefs.ErrInvalid, "process.rlimits[0].type"},
		{"duplicate rlimit", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1})
		}, errdefs.ErrInvalid, "process.rlimits[1].type"},
		{"rlimit soft > hard", func(s *specs.Spec, _ string) { s.Process.Rlimits[0].Soft = 2048 }, errdefs.ErrInvalid, "process.rlimits[0]"},
		{"unknown bounding cap", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_FOO")
		}, errdefs.ErrInvalid, "process.capabilities.bounding[3]"},
		{"unknown effective cap", func(s *specs.Spec, _ string) { s.Process.Capabilities.Effective = []string{"SYS_ADMIN"} }, errdefs.ErrInvalid, "process.capabilities.effective[0]"},
		{"unknown inheritable cap", func(s *specs.Spec, _ string) { s.Process.Capabilities.Inheritable = []string{"CAP_KILL", "cap_kill"} }, errdefs.ErrInvalid, "process.capabilities.inheritable[1]"},
		{"unknown permitted cap", func(s *specs.Spec, _ string) { s.Process.Capabilities.Permitted = []string{"CAP_41"} }, errdefs.ErrInvalid, "process.capabilities.permitted[0]"},
		{"unknown ambient cap", func(s *specs.Spec, _ string) { s.Process.Capabilities.Ambient = []string{""} }, errdefs.ErrInvalid, "process.capabilities.ambient[0]"},
		{"apparmor", func(s *specs.Spec, _ string) { s.Process.ApparmorProfile = "docker-default" }, errdefs.ErrNotSupported, "process.apparmorProfile"},
		{"selinux label", func(s *specs.Spec, _ string) { s.Process.SelinuxLabel = "system_u:system_r:container_t:s0" }, errdefs.ErrNotSupported, "process.selinuxLabel"},
		{"ioPriority", func(s *specs.Spec, _ string) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE}
		}, errdefs.ErrNotSupported, "process.ioPriority"},
		{"scheduler", func(s *specs.Spec, _ string) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther} }, errdefs.ErrNotSupported, "process.scheduler"},
		{"execCPUAffinity", func(s *specs.Spec, _ string) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0"} }, errdefs.ErrNotSupported, "process.execCPUAffinity"},

		// linux: namespaces
		{"no linux", func(s *specs.Spec, _ string) { s.Linux = nil }, errdefs.ErrInvalid, "linux"},
		{"unknown namespace", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "foo"})
		}, errdefs.ErrInvalid, `linux.namespaces[6].type: unknown namespace type "foo"`},
		{"duplicate namespace", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}, errdefs.ErrInvalid, "linux.namespaces[6].type"},
		{"relative namespace path", func(s *specs.Spec, _ string) { setNS(s, specs.IPCNamespace, "proc/1/ns/ipc") }, errdefs.ErrInvalid, "linux.namespaces[2].path"},

		// linux: id mappings
		{"uid mappings without userns", func(s *specs.Spec, _ string) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, errdefs.ErrInvalid, "linux.uidMappings"},
		{"gid mappings without userns", func(s *specs.Spec, _ string) {
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, errdefs.ErrInvalid, "linux.gidMappings"},
		{"mappings with joined userns", func(s *specs.Spec, _ string) {
			withUserNS(s)
			setNS(s, specs.UserNamespace, "/proc/1/ns/user")
		}, errdefs.ErrInvalid, "linux.uidMappings"},
		{"new userns without uid mappings", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = nil
		}, errdefs.ErrInvalid, "no uid mappings found"},
		{"new userns without gid mappings", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.GIDMappings = nil
		}, errdefs.ErrInvalid, "no gid mappings found"},
		{"mapping size 0", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings[0].Size = 0
		}, errdefs.ErrInvalid, "linux.uidMappings[0].size"},
		{"mapping overflows id space", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.GIDMappings[0].HostID = 0xffffffff
			s.Linux.GIDMappings[0].Size = 2
		}, errdefs.ErrInvalid, "linux.gidMappings[0]"},
		{"container ranges overlap", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: 65535, HostID: 500000, Size: 10})
		}, errdefs.ErrInvalid, "linux.uidMappings[1]: containerID range"},
		{"host ranges overlap", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.GIDMappings = append(s.Linux.GIDMappings, specs.LinuxIDMapping{ContainerID: 70000, HostID: 99999, Size: 2})
		}, errdefs.ErrInvalid, "linux.gidMappings[1]: hostID range"},
		{"container root not mapped", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings[0].ContainerID = 1
		}, errdefs.ErrInvalid, "linux.uidMappings: container id 0 is not mapped"},
		{"process uid not mapped", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Process.User.UID = 65536
		}, errdefs.ErrInvalid, "process.user.uid: 65536 is not mapped in the new user namespace by linux.uidMappings (container ids 0-65535)"},
		{"process gid not mapped", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Process.User.GID = 70000
		}, errdefs.ErrInvalid, "process.user.gid: 70000"},
		{"additional gid not mapped", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Process.User.AdditionalGids = []uint32{5, 100000}
		}, errdefs.ErrInvalid, "process.user.additionalGids[1]: 100000"},

		// hostname / domainname
		{"hostname without uts", func(s *specs.Spec, _ string) { dropNS(s, specs.UTSNamespace) }, errdefs.ErrInvalid, "unable to set hostname without a private UTS namespace"},
		{"hostname in the runtime's own uts", func(s *specs.Spec, _ string) { setNS(s, specs.UTSNamespace, "/proc/self/ns/uts") }, errdefs.ErrInvalid, "runtime's own UTS"},
		{"domainname without uts", func(s *specs.Spec, _ string) {
			s.Hostname = ""
			s.Domainname = "example.org"
			dropNS(s, specs.UTSNamespace)
		}, errdefs.ErrInvalid, "domainname"},

		// time offsets
		{"time offsets without timens", func(s *specs.Spec, _ string) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 10}}
		}, errdefs.ErrInvalid, "linux.timeOffsets"},
		{"time offsets with joined timens", func(s *specs.Spec, _ string) {
			setNS(s, specs.TimeNamespace, "/proc/1/ns/time")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 10}}
		}, errdefs.ErrInvalid, "linux.timeOffsets"},
		{"unknown clock", func(s *specs.Spec, _ string) {
			setNS(s, specs.TimeNamespace, "")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"realtime": {Secs: 10}}
		}, errdefs.ErrInvalid, "linux.timeOffsets.realtime"},
		{"nanosecs too large", func(s *specs.Spec, _ string) {
			setNS(s, specs.TimeNamespace, "")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Nanosecs: 1e9}}
		}, errdefs.ErrInvalid, "linux.timeOffsets.boottime.nanosecs"},

		// sysctl
		{"net sysctl without netns", func(s *specs.Spec, _ string) {
			dropNS(s, specs.NetworkNamespace)
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}, errdefs.ErrInvalid, `linux.sysctl["net.ipv4.ip_forward"]`},
		{"net sysctl in joined host netns", func(s *specs.Spec, _ string) {
			setNS(s, specs.NetworkNamespace, "/proc/self/ns/net")
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}, errdefs.ErrInvalid, "host network namespace"},
		{"net sysctl in missing netns", func(s *specs.Spec, b string) {
			setNS(s, specs.NetworkNamespace, filepath.Join(b, "no-such-netns"))
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}, errdefs.ErrNotFound, "linux.namespaces[1].path"},
		{"ipc sysctl without ipcns", func(s *specs.Spec, _ string) {
			dropNS(s, specs.IPCNamespace)
			s.Linux.Sysctl = map[string]string{"kernel.shmmax": "1"}
		}, errdefs.ErrInvalid, `linux.sysctl["kernel.shmmax"]`},
		{"mqueue sysctl without ipcns", func(s *specs.Spec, _ string) {
			dropNS(s, specs.IPCNamespace)
			s.Linux.Sysctl = map[string]string{"fs.mqueue.msg_max": "1"}
		}, errdefs.ErrInvalid, "fs.mqueue.msg_max"},
		{"slash-form ipc sysctl without ipcns", func(s *specs.Spec, _ string) {
			dropNS(s, specs.IPCNamespace)
			s.Linux.Sysctl = map[string]string{"kernel/sem": "1"}
		}, errdefs.ErrInvalid, `"kernel.sem"`},
		{"domainname sysctl without uts", func(s *specs.Spec, _ string) {
			s.Hostname = ""
			dropNS(s, specs.UTSNamespace)
			s.Linux.Sysctl = map[string]string{"kernel.domainname": "x"}
		}, errdefs.ErrInvalid, "not in a separate kernel namespace"},
		{"hostname sysctl conflicts with field", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{"kernel.hostname": "x"}
		}, errdefs.ErrInvalid, `conflicts with the "hostname" field`},
		{"host-wide sysctl", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{"vm.swappiness": "10"}
		}, errdefs.ErrInvalid, `sysctl "vm.swappiness" is not in a separate kernel namespace`},

		// propagation, paths, devices
		{"bad rootfsPropagation", func(s *specs.Spec, _ string) { s.Linux.RootfsPropagation = "recursive" }, errdefs.ErrInvalid, "linux.rootfsPropagation"},
		{"relative masked path", func(s *specs.Spec, _ string) { s.Linux.MaskedPaths[3] = "proc/keys" }, errdefs.ErrInvalid, "linux.maskedPaths[3]"},
		{"relative readonly path", func(s *specs.Spec, _ string) { s.Linux.ReadonlyPaths[0] = "proc/bus" }, errdefs.ErrInvalid, "linux.readonlyPaths[0]"},
		{"no mount namespace", func(s *specs.Spec, _ string) { dropNS(s, specs.MountNamespace) }, errdefs.ErrInvalid, "mount namespace is required"},
		{"unknown device type", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "z", Major: 1, Minor: 3}}
		}, errdefs.ErrInvalid, "linux.devices[0].type"},
		{"relative device path", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "dev/null", Type: "c", Major: 1, Minor: 3}}
		}, errdefs.ErrInvalid, "linux.devices[0].path"},
		{"char device without major", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}, {Path: "/dev/x", Type: "c"}}
		}, errdefs.ErrInvalid, "linux.devices[1].major"},
		{"block device negative minor", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/sda", Type: "b", Major: 8, Minor: -1}}
		}, errdefs.ErrInvalid, "linux.devices[0].minor"},

		// mounts
		{"empty mount destination", func(s *specs.Spec, _ string) { s.Mounts[2].Destination = "" }, errdefs.ErrInvalid, "mounts[2].destination"},
		{"bind type without source", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind"})
		}, errdefs.ErrInvalid, "mounts[7].source"},
		{"rbind option without source", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "none", Options: []string{"rbind", "ro"}})
		}, errdefs.ErrInvalid, "mounts[7].source"},
		{"id-mapped mount with gid maps only", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Source: "/srv", Options: []string{"bind", "idmap"},
				GIDMappings: []specs.LinuxIDMapping{{Size: 1}}})
		}, errdefs.ErrInvalid, "mounts[7].uidMappings: must be given with gidMappings"},
		{"id-mapped mount with uid maps only", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Source: "/srv", Options: []string{"bind"},
				UIDMappings: []specs.LinuxIDMapping{{Size: 1}}})
		}, errdefs.ErrInvalid, "mounts[7].gidMappings: must be given with uidMappings"},
		{"id-mapped mount with a bad map", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Source: "/srv", Options: []string{"rbind", "ridmap"},
				UIDMappings: []specs.LinuxIDMapping{{Size: 1}}, GIDMappings: []specs.LinuxIDMapping{{Size: 0}}})
		}, errdefs.ErrInvalid, "mounts[7].gidMappings[0].size"},
		{"idmap on a tmpfs", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"idmap"}})
		}, errdefs.ErrNotSupported, "mounts[7].options: the idmap option: id-mapped mounts are supported for bind mounts only"},
		{"idmap without maps or user namespace", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Source: "/srv", Options: []string{"bind", "idmap"}})
		}, errdefs.ErrInvalid, "mounts[7].options: idmap without uidMappings and gidMappings"},

		// unsupported linux features
		{"seccomp without default action", func(s *specs.Spec, _ string) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{}
		}, errdefs.ErrInvalid, "linux.seccomp.defaultAction"},
		{"seccomp notify without listener", func(s *specs.Spec, _ string) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}
		}, errdefs.ErrInvalid, "linux.seccomp.listenerPath"},
		{"seccomp rule without names", func(s *specs.Spec, _ string) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Action: specs.ActErrno}}}
		}, errdefs.ErrInvalid, "linux.seccomp.syscalls[0].names"},
		{"mountLabel", func(s *specs.Spec, _ string) { s.Linux.MountLabel = "system_u:object_r:container_file_t:s0" }, errdefs.ErrNotSupported, "linux.mountLabel"},
		{"intelRdt", func(s *specs.Spec, _ string) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} }, errdefs.ErrNotSupported, "linux.intelRdt"},
		{"personality", func(s *specs.Spec, _ string) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
		}, errdefs.ErrNotSupported, "linux.personality"},
		{"memoryPolicy", func(s *specs.Spec, _ string) {
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0"}
		}, errdefs.ErrNotSupported, "linux.memoryPolicy"},
		{"netDevices", func(s *specs.Spec, _ string) {
			s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth1": {}}
		}, errdefs.ErrNotSupported, "linux.netDevices"},

		// hooks
		{"relative hook path", func(s *specs.Spec, _ string) { s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "bin/true"}}} }, errdefs.ErrInvalid, "hooks.prestart[0].path"},
		{"zero hook timeout", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true"}, {Path: "/bin/true", Timeout: ptr(0)}}}
		}, errdefs.ErrInvalid, "hooks.poststop[1].timeout"},
		{"hook env without =", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/true", Env: []string{"X"}}}}
		}, errdefs.ErrInvalid, "hooks.createContainer[0].env"},

		// resources
		{"device rule bad type", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "p", Access: "r"})
		}, errdefs.ErrInvalid, "linux.resources.devices[1].type"},
		{"device rule bad access", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices[0].Access = "rwx"
		}, errdefs.ErrInvalid, "linux.resources.devices[0].access"},
		{"memory swap below limit", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(1 << 30), Swap: i64(1 << 20)}
		}, errdefs.ErrInvalid, "linux.resources.memory.swap"},
		{"memory limit below -1", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(-5)}
		}, errdefs.ErrInvalid, "linux.resources.memory.limit"},
		{"cpu shares too small", func(s *specs.Spec, _ string) { s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: ptr(uint64(1))} }, errdefs.ErrInvalid, "linux.resources.cpu.shares"},
		{"cpu period out of range", func(s *specs.Spec, _ string) { s.Linux.Resources.CPU = &specs.LinuxCPU{Period: ptr(uint64(10))} }, errdefs.ErrInvalid, "linux.resources.cpu.period"},
		{"blockIO weight out of range", func(s *specs.Spec, _ string) {
			s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{Weight: ptr(uint16(5))}
		}, errdefs.ErrInvalid, "linux.resources.blockIO.weight"},
		{"hugepage size malformed", func(s *specs.Spec, _ string) {
			s.Linux.Resources.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "../2MB", Limit: 1}}
		}, errdefs.ErrInvalid, "linux.resources.hugepageLimits[0].pageSize"},
		{"rdma", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Rdma = map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: ptr(uint32(1))}}
		}, errdefs.ErrNotSupported, "linux.resources.rdma"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, bundle := validBase(t)
			tc.mutate(s, bundle)
			err := Validate(s, bundle)
			if err == nil {
				t.Fatal("Validate succeeded, want error")
			}
			t.Log(err)
			if !errors.Is(err, tc.class) {
				t.Errorf("error %q is not of class %v", err, tc.class)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not mention %q", err, tc.field)
			}
			checkMessageStyle(t, err)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	otherNetNS := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(otherNetNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(s *specs.Spec, bundle string)
	}{
		{"absolute rootfs", func(s *specs.Spec, b string) { s.Root.Path = filepath.Join(b, "rootfs") }},
		{"no process (OPTIONAL until start)", func(s *specs.Spec, _ string) { s.Process = nil }},
		{"rootfs via symlink", func(s *specs.Spec, b string) {
			if err := os.Symlink("rootfs", filepath.Join(b, "link")); err != nil {
				panic(err)
			}
			s.Root.Path = "link"
		}},
		{"older ociVersion", func(s *specs.Spec, _ string) { s.Version = "1.0.2-dev" }},
		{"every hook kind", func(s *specs.Spec, _ string) {
			h := []specs.Hook{{Path: "/bin/true", Args: []string{"true"}, Env: []string{"A=1"}, Timeout: ptr(5)}}
			s.Hooks = &specs.Hooks{Prestart: h, CreateRuntime: h, CreateContainer: h, StartContainer: h, Poststart: h, Poststop: h}
		}},
		{"cgroup limits", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(1 << 30), Swap: i64(-1)}
			s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: i64(50000), Period: ptr(uint64(100000)), Cpus: "0"}
			s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(100)}
			s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{Weight: ptr(uint16(500))}
			s.Linux.Resources.Unified = map[string]string{"memory.high": "1G"}
		}},
		{"newer minor ociVersion", func(s *specs.Spec, _ string) { s.Version = "1.9.0" }},
		{"no capabilities", func(s *specs.Spec, _ string) { s.Process.Capabilities = nil }},
		{"all capabilities", func(s *specs.Spec, _ string) {
			all := KnownCapabilities()
			s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all, Inheritable: all, Ambient: all}
		}},
		{"every rlimit", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = nil
			for name := range rlimits {
				s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: name, Soft: 1, Hard: 2})
			}
		}},
		{"oomScoreAdj bounds", func(s *specs.Spec, _ string) { s.Process.OOMScoreAdj = ptr(-1000) }},
		{"env with empty value", func(s *specs.Spec, _ string) { s.Process.Env = append(s.Process.Env, "EMPTY=") }},
		{"empty hooks", func(s *specs.Spec, _ string) { s.Hooks = &specs.Hooks{Prestart: []specs.Hook{}} }},
		{"user namespace with disjoint mappings", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: 65536, HostID: 165536, Size: 0xffffffff - 65536 - 165536 + 1})
		}},
		{"joined user namespace without mappings", func(s *specs.Spec, _ string) { setNS(s, specs.UserNamespace, "/proc/1/ns/user") }},
		{"domainname with uts", func(s *specs.Spec, _ string) { s.Domainname = "example.org" }},
		{"no hostname, no uts", func(s *specs.Spec, _ string) {
			s.Hostname = ""
			dropNS(s, specs.UTSNamespace)
		}},
		{"time offsets in new timens", func(s *specs.Spec, _ string) {
			setNS(s, specs.TimeNamespace, "")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: -5}, "boottime": {Secs: 100, Nanosecs: 999999999}}
		}},
		{"namespaced sysctls", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{
				"net.ipv4.ip_forward":              "1",
				"net/ipv4/conf/eth0.100/rp_filter": "0",
				"kernel.shm_rmid_forced":           "1",
				"kernel.msgmax":                    "8192",
				"fs.mqueue.queues_max":             "10",
				"kernel.domainname":                "example.org",
			}
		}},
		{"net sysctl in joined non-host netns", func(s *specs.Spec, _ string) {
			setNS(s, specs.NetworkNamespace, otherNetNS)
			s.Linux.Sysctl = map[string]string{"net.core.somaxconn": "1024"}
		}},
		{"ipc sysctl in joined ipcns", func(s *specs.Spec, _ string) {
			setNS(s, specs.IPCNamespace, "/proc/1/ns/ipc")
			s.Linux.Sysctl = map[string]string{"kernel.sem": "250 32000 32 128"}
		}},
		{"every propagation", func(s *specs.Spec, _ string) { s.Linux.RootfsPropagation = "rslave" }},
		{"devices", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
				{Path: "/dev/loop0", Type: "b", Major: 7, Minor: 0},
				{Path: "/dev/ttyX", Type: "u", Major: 4, Minor: 64},
				{Path: "/dev/fifo", Type: "p"},
			}
		}},
		{"relative mount destination", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "data", Type: "tmpfs", Source: "tmpfs"})
		}},
		{"bind mount with source", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Source: "/srv", Options: []string{"rbind", "ro"}})
		}},
		{"device rules", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(8), Access: "r"},
				specs.LinuxDeviceCgroup{Allow: false, Type: "a"})
		}},
		{"empty resource objects", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{}
			s.Linux.Resources.CPU = &specs.LinuxCPU{}
			s.Linux.Resources.HugepageLimits = []specs.LinuxHugepageLimit{}
			s.Linux.Resources.Unified = map[string]string{}
		}},
		{"no resources", func(s *specs.Spec, _ string) { s.Linux.Resources = nil }},
		{"cgroupsPath", func(s *specs.Spec, _ string) { s.Linux.CgroupsPath = "system.slice:warren:abc" }},
		{"empty netDevices", func(s *specs.Spec, _ string) { s.Linux.NetDevices = map[string]specs.LinuxNetDevice{} }},
		{"rootless", func(s *specs.Spec, _ string) { Rootless(s, RootlessMappings(1000, nil), RootlessMappings(1000, nil)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, bundle := validBase(t)
			tc.mutate(s, bundle)
			if err := Validate(s, bundle); err != nil {
				t.Fatalf("Validate = %v, want nil", err)
			}
		})
	}
}

func TestValidateNil(t *testing.T) {
	if err := Validate(nil, t.TempDir()); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("Validate(nil) = %v, want ErrInvalid", err)
	}
}

func TestRootfsPath(t *testing.T) {
	tests := []struct{ root, bundle, want string }{
		{"rootfs", "/b", "/b/rootfs"},
		{"/abs/rootfs/", "/b", "/abs/rootfs"},
		{"../shared/rootfs", "/b/c", "/b/shared/rootfs"},
	}
	for _, tc := range tests {
		s := &specs.Spec{Root: &specs.Root{Path: tc.root}}
		if got := RootfsPath(s, tc.bundle); got != tc.want {
			t.Errorf("RootfsPath(%q, %q) = %q, want %q", tc.root, tc.bundle, got, tc.want)
		}
	}
}
