package spec

import (
	"encoding/json"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Build facts reported by Features. They are variables so the runtime (or
// the linker, for Version) can set them as support lands; Features must keep
// telling the truth about this build.
var (
	// Version is this build's version, reported as the
	// "io.github.warren.version" annotation.
	Version = "0.1.0-dev"

	// CgroupV1Supported and CgroupV2Supported report whether the cgroup
	// manager for that hierarchy is compiled in (placement, resource limits,
	// device rules, freezer, statistics).
	CgroupV1Supported = true
	CgroupV2Supported = true

	// Unsupported is the comma-separated list of spec areas this build
	// rejects, reported as the "io.github.warren.unsupported" annotation.
	Unsupported = ""

	// Seccomp describes the seccomp support compiled in (set by the
	// command from the seccomp implementation); nil reports it disabled.
	Seccomp *features.Seccomp
)

// Annotation keys in the features document.
const (
	AnnotationVersion     = "io.github.warren.version"
	AnnotationUnsupported = "io.github.warren.unsupported"
)

// MountOptions lists the mount option names the runtime interprets itself
// (flags and propagation, recursive variants via mount_setattr(2), idmap
// and ridmap, and tmpcopyup). Filesystem data options such as "mode=755" are passed to the
// kernel and are not listed, as the features spec says.
var MountOptions = []string{
	"async",
	"atime",
	"bind",
	"dev",
	"diratime",
	"dirsync",
	"exec",
	"idmap",
	"lazytime",
	"loud",
	"mand",
	"noatime",
	"nodev",
	"nodiratime",
	"noexec",
	"nolazytime",
	"nomand",
	"norelatime",
	"nostrictatime",
	"nosuid",
	"nosymfollow",
	"private",
	"ratime",
	"rbind",
	"rdev",
	"rdiratime",
	"relatime",
	"remount",
	"rexec",
	"ridmap",
	"rnoatime",
	"rnodev",
	"rnodiratime",
	"rnoexec",
	"rnorelatime",
	"rnostrictatime",
	"rnosuid",
	"rnosymfollow",
	"ro",
	"rprivate",
	"rrelatime",
	"rro",
	"rrw",
	"rshared",
	"rslave",
	"rstrictatime",
	"rsuid",
	"rsymfollow",
	"runbindable",
	"rw",
	"shared",
	"silent",
	"slave",
	"strictatime",
	"suid",
	"symfollow",
	"sync",
	"tmpcopyup",
	"unbindable",
}

var nsFiles = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.MountNamespace: "mnt",
	specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.UserNamespace: "user",
	specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
}

// KernelHasNamespace reports whether the running kernel has namespace type t
// (it shows in /proc/self/ns), so features names only what can work here.
var KernelHasNamespace = func(t specs.LinuxNamespaceType) bool {
	_, err := os.Stat("/proc/self/ns/" + nsFiles[t])
	return err == nil
}

// Features returns the `features` document for this build. Lists are fresh
// copies, so callers may modify the result.
func Features() *features.Features {
	no := func() *bool { b := false; return &b }
	yes := func() *bool { b := true; return &b }
	nsNames := make([]string, 0, len(namespaceTypes))
	for _, t := range namespaceTypes {
		if KernelHasNamespace(t) {
			nsNames = append(nsNames, string(t))
		}
	}
	v1, v2 := CgroupV1Supported, CgroupV2Supported
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  append([]string(nil), MountOptions...),
		Linux: &features.Linux{
			Namespaces:   nsNames,
			Capabilities: KnownCapabilities(),
			Cgroup: &features.Cgroup{
				V1:          &v1,
				V2:          &v2,
				Systemd:     no(),
				SystemdUser: no(),
				Rdma:        no(),
			},
			Seccomp:  seccompFeatures(no()),
			Apparmor: &features.Apparmor{Enabled: no()},
			Selinux:  &features.Selinux{Enabled: no()},
			IntelRdt: &features.IntelRdt{Enabled: no()},
			MountExtensions: &features.MountExtensions{
				IDMap: &features.IDMap{Enabled: yes()},
			},
			NetDevices: &features.NetDevices{Enabled: no()},
		},
		Annotations: map[string]string{
			AnnotationVersion:     Version,
			AnnotationUnsupported: Unsupported,
		},
		PotentiallyUnsafeConfigAnnotations: []string{},
	}
}

func seccompFeatures(off *bool) *features.Seccomp {
	if Seccomp == nil {
		return &features.Seccomp{Enabled: off}
	}
	cp := *Seccomp
	return &cp
}

// FeaturesJSON renders Features() as indented JSON for `warren features`.
// The specs-go type marks every list omitempty, which would drop an empty
// "hooks" list and so turn "none supported" into "unknown"; this keeps empty
// lists in the output.
func FeaturesJSON() ([]byte, error) {
	type withEmptyLists struct {
		*features.Features
		Hooks                              []string `json:"hooks"`
		PotentiallyUnsafeConfigAnnotations []string `json:"potentiallyUnsafeConfigAnnotations"`
	}
	f := Features()
	return json.MarshalIndent(withEmptyLists{
		Features:                           f,
		Hooks:                              f.Hooks,
		PotentiallyUnsafeConfigAnnotations: f.PotentiallyUnsafeConfigAnnotations,
	}, "", "    ")
}
