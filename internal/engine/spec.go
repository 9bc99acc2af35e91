package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/images"
	"github.com/warren-runtime/warren/internal/store"
)

// allCaps is every capability a privileged container gets.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// capName normalises a --cap-add/--cap-drop value ("net_admin",
// "CAP_NET_ADMIN", "ALL").
func capName(s string) (string, error) {
	n := strings.ToUpper(s)
	if n == "ALL" {
		return n, nil
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if !slices.Contains(allCaps, n) {
		return "", fmt.Errorf("capability %q: unknown: %w", s, errdefs.ErrInvalid)
	}
	return n, nil
}

// parseSignal accepts "TERM", "SIGTERM" or "15".
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	n := strings.ToUpper(s)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if sig := unix.SignalNum(n); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: unknown: %w", s, errdefs.ErrInvalid)
}

// buildSpec is the runtime config of r: the image's defaults
// (images.Spec) with the container's settings applied.
func (e *Engine) buildSpec(r *store.Record, imgCfg *v1.ConfigFile, rootfs string, nsPaths map[specs.LinuxNamespaceType]string) (*specs.Spec, error) {
	c := &r.Config
	spec, err := images.Spec(applyImageOverrides(imgCfg, c), rootfs)
	if err != nil {
		return nil, err
	}
	if v := e.cfg.Runtimes[r.Runtime].SpecVersion; v != "" {
		spec.Version = v
	}
	p := spec.Process
	p.Terminal = c.Tty
	if c.Tty && !slices.ContainsFunc(p.Env, func(kv string) bool { return strings.HasPrefix(kv, "TERM=") }) {
		p.Env = append(p.Env, "TERM=xterm")
	}
	spec.Root.Readonly = c.ReadOnly
	spec.Hostname = c.Hostname
	if spec.Hostname == "" {
		spec.Hostname = r.ID[:12]
	}
	spec.Annotations["org.warren.container.name"] = r.Name
	for k, v := range c.Labels {
		spec.Annotations[k] = v
	}

	// Capabilities: the default set, or all when privileged; then drops
	// and adds as docker applies them (ALL first).
	caps := slices.Clone(p.Capabilities.Bounding)
	if c.Privileged {
		caps = slices.Clone(allCaps)
	}
	for _, d := range c.CapDrop {
		n, _ := capName(d)
		if n == "ALL" {
			caps = nil
			continue
		}
		caps = slices.DeleteFunc(caps, func(x string) bool { return x == n })
	}
	for _, a := range c.CapAdd {
		n, _ := capName(a)
		if n == "ALL" {
			caps = slices.Clone(allCaps)
			continue
		}
		if !slices.Contains(caps, n) {
			caps = append(caps, n)
		}
	}
	p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	if c.Privileged {
		spec.Linux.MaskedPaths = nil
		spec.Linux.ReadonlyPaths = nil
		for i := range spec.Mounts {
			if spec.Mounts[i].Destination == "/sys" || spec.Mounts[i].Destination == "/sys/fs/cgroup" {
				spec.Mounts[i].Options = slices.DeleteFunc(spec.Mounts[i].Options, func(o string) bool { return o == "ro" })
			}
		}
	}

	// Namespaces: new by default; host drops it; container:X joins.
	modes := map[specs.LinuxNamespaceType]string{
		specs.PIDNamespace: c.PidMode, specs.IPCNamespace: c.IpcMode,
		specs.UTSNamespace: c.UTSMode, specs.NetworkNamespace: c.NetworkMode,
	}
	var nss []specs.LinuxNamespace
	for _, ns := range spec.Linux.Namespaces {
		mode := modes[ns.Type]
		switch {
		case mode == "host", nsPaths[ns.Type] == "host":
			continue
		case nsPaths[ns.Type] != "":
			ns.Path = nsPaths[ns.Type]
		}
		nss = append(nss, ns)
	}
	spec.Linux.Namespaces = nss
	if c.UTSMode == "host" || strings.HasPrefix(c.UTSMode, "container:") {
		spec.Hostname = ""
	}
	if c.NetworkMode == "host" {
		// The host's network: /sys of a namespace the container does not
		// own cannot be mounted fresh; bind the host's read-only.
		for i := range spec.Mounts {
			if spec.Mounts[i].Destination == "/sys" {
				spec.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
			}
		}
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/sys/fs/cgroup" })
	}
	if c.IpcMode == "host" {
		// The host's IPC namespace: a fresh mqueue would be the host's
		// anyway; keep /dev/shm private to the container.
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/mqueue" })
	}
	if r.UsernsStart != 0 && nsPaths[specs.NetworkNamespace] != "" {
		// A network namespace the engine made belongs to the initial
		// user namespace; sysfs cannot be mounted for it from the
		// container's: bind the host's read-only instead.
		for i := range spec.Mounts {
			if spec.Mounts[i].Destination == "/sys" {
				spec.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
			}
		}
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/sys/fs/cgroup" })
	}
	if r.UsernsStart != 0 {
		size := e.cfg.UsernsSize
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: r.UsernsStart, Size: size}}
		spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: r.UsernsStart, Size: size}}
	}

	// The network's hosts and resolv.conf, when it has them: the
	// container's own, or a pod member's pod's (the same files for every
	// member, rewritten in place as the network's members change).
	netDir := r.Dir
	if c.Pod != "" {
		if p, err := e.db.Pod(c.Pod); err == nil {
			netDir = p.Dir
		}
	}
	for _, f := range [][2]string{{hostsFile, "/etc/hosts"}, {resolvConfFile, "/etc/resolv.conf"}} {
		if _, err := os.Stat(filepath.Join(netDir, f[0])); err == nil {
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: f[1], Type: "bind", Source: filepath.Join(netDir, f[0]), Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	if c.Pod != "" {
		spec.Hostname = "" // the pod's UTS namespace has its name
	}

	// Mounts: volumes and bind mounts.
	for _, m := range c.Mounts {
		src := m.Source
		if m.Type == "volume" {
			src = filepath.Join(e.cfg.Root, "volumes", m.Source, "_data")
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, fmt.Errorf("volume %s: %w", m.Source, err)
			}
			if r.UsernsStart != 0 {
				os.Lchown(src, int(r.UsernsStart), int(r.UsernsStart))
			}
		}
		opts := []string{"rbind"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: src, Options: opts})
	}

	// Resources.
	res := &specs.LinuxResources{}
	if c.Resources.Memory > 0 {
		m := c.Resources.Memory
		res.Memory = &specs.LinuxMemory{Limit: &m}
	}
	if c.Resources.NanoCPUs > 0 {
		period := uint64(100000)
		quota := c.Resources.NanoCPUs * int64(period) / 1e9
		res.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if c.Resources.PidsLimit > 0 {
		n := c.Resources.PidsLimit
		res.Pids = &specs.LinuxPids{Limit: &n}
	}
	spec.Linux.Resources = res
	spec.Linux.CgroupsPath = r.CgroupsPath
	return spec, nil
}
