package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// RootfsPath returns root.path resolved against the bundle directory when it
// is relative, as the runtime spec requires. s.Root must be non-nil.
func RootfsPath(s *specs.Spec, bundle string) string {
	if filepath.IsAbs(s.Root.Path) {
		return filepath.Clean(s.Root.Path)
	}
	return filepath.Join(bundle, s.Root.Path)
}

// Validate checks a configuration for `create`/`run` on Linux. It returns the
// first problem found, as an error wrapping errdefs.ErrInvalid (the config is
// wrong), errdefs.ErrNotFound (root.path or a namespace path is missing) or
// errdefs.ErrNotSupported (valid, but this build cannot do it yet). The
// message starts with the JSON field path.
func Validate(s *specs.Spec, bundle string) error {
	if s == nil {
		return fmt.Errorf("config: no configuration given: %w", errdefs.ErrInvalid)
	}
	v := &validator{s: s, bundle: bundle}
	for _, check := range []func() error{
		v.platform,
		v.version,
		v.root,
		v.process,
		v.linux,
		v.mounts,
		v.hooks,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

type validator struct {
	s      *specs.Spec
	bundle string
	// ns indexes linux.namespaces by type once they have been validated.
	ns map[specs.LinuxNamespaceType]nsEntry
}

type nsEntry struct {
	index int
	path  string
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}

func unsupported(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrNotSupported)
}

// hasNS reports whether the config lists namespace t, new or joined.
func (v *validator) hasNS(t specs.LinuxNamespaceType) bool {
	_, ok := v.ns[t]
	return ok
}

// newNS reports whether the config asks for a fresh namespace of type t.
func (v *validator) newNS(t specs.LinuxNamespaceType) bool {
	e, ok := v.ns[t]
	return ok && e.path == ""
}

func (v *validator) platform() error {
	other := []struct {
		field string
		set   bool
	}{
		{"windows", v.s.Windows != nil},
		{"solaris", v.s.Solaris != nil},
		{"vm", v.s.VM != nil},
		{"zos", v.s.ZOS != nil},
		{"freebsd", v.s.FreeBSD != nil},
	}
	for _, o := range other {
		if o.set {
			return invalid(o.field, "section is for another platform; this runtime runs Linux containers only, remove it")
		}
	}
	return nil
}

func (v *validator) version() error {
	ver := v.s.Version
	if ver == "" {
		return invalid("ociVersion", "must be set (this runtime supports 1.x up to %s)", specs.Version)
	}
	major, rest, _ := strings.Cut(ver, ".")
	if major != "1" || rest == "" {
		return invalid("ociVersion", "unsupported version %q: this runtime supports 1.x up to %s", ver, specs.Version)
	}
	return nil
}

func (v *validator) root() error {
	r := v.s.Root
	if r == nil {
		return invalid("root", "section is required")
	}
	if r.Path == "" {
		return invalid("root.path", "must name the rootfs directory")
	}
	p := RootfsPath(v.s, v.bundle)
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("root.path: rootfs directory %q does not exist: %w", p, errdefs.ErrNotFound)
		}
		return invalid("root.path", "cannot access rootfs %q: %v", p, unwrapPathError(err))
	}
	if !fi.IsDir() {
		return invalid("root.path", "rootfs %q is not a directory", p)
	}
	return nil
}

func (v *validator) process() error {
	p := v.s.Process
	if p == nil {
		return nil // OPTIONAL at create; start refuses a container without one
	}
	if len(p.Args) == 0 {
		return invalid("process.args", "must name the program to run")
	}
	for i, a := range p.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return invalid(fmt.Sprintf("process.args[%d]", i), "contains a NUL byte")
		}
	}
	if p.Cwd == "" {
		return invalid("process.cwd", "must be set to an absolute path")
	}
	if !filepath.IsAbs(p.Cwd) {
		return invalid("process.cwd", "%q is not an absolute path", p.Cwd)
	}
	for i, e := range p.Env {
		field := fmt.Sprintf("process.env[%d]", i)
		if !strings.Contains(e, "=") {
			return invalid(field, "%q is not in KEY=value form", e)
		}
		if strings.IndexByte(e, 0) >= 0 {
			return invalid(field, "contains a NUL byte")
		}
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return invalid("process.oomScoreAdj", "%d is outside [-1000, 1000]", *p.OOMScoreAdj)
	}
	if err := checkRlimits(p.Rlimits); err != nil {
		return err
	}
	if err := checkCapabilities(p.Capabilities); err != nil {
		return err
	}
	// No LSM support is compiled in; silently ignoring a requested profile
	// would run the container less confined than its author asked for.
	if p.ApparmorProfile != "" {
		return unsupported("process.apparmorProfile", "AppArmor is not supported by this runtime; remove the field")
	}
	if p.SelinuxLabel != "" {
		return unsupported("process.selinuxLabel", "SELinux is not supported by this runtime; remove the field")
	}
	if p.IOPriority != nil {
		return unsupported("process.ioPriority", "I/O priority is not supported yet")
	}
	if p.Scheduler != nil {
		return unsupported("process.scheduler", "scheduler attributes are not supported yet")
	}
	if p.ExecCPUAffinity != nil {
		return unsupported("process.execCPUAffinity", "exec CPU affinity is not supported yet")
	}
	return nil
}

func checkRlimits(rl []specs.POSIXRlimit) error {
	seen := make(map[string]int, len(rl))
	for i, r := range rl {
		field := fmt.Sprintf("process.rlimits[%d]", i)
		if _, ok := rlimits[r.Type]; !ok {
			return invalid(field+".type", "unknown rlimit %q", r.Type)
		}
		if j, dup := seen[r.Type]; dup {
			return invalid(field+".type", "duplicate rlimit %q (also process.rlimits[%d])", r.Type, j)
		}
		seen[r.Type] = i
		if r.Soft > r.Hard {
			return invalid(field, "%s soft limit %d exceeds hard limit %d", r.Type, r.Soft, r.Hard)
		}
	}
	return nil
}

func checkCapabilities(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	sets := []struct {
		name string
		caps []string
	}{
		{"bounding", c.Bounding},
		{"effective", c.Effective},
		{"inheritable", c.Inheritable},
		{"permitted", c.Permitted},
		{"ambient", c.Ambient},
	}
	for _, set := range sets {
		for i, name := range set.caps {
			if _, ok := capabilities[name]; !ok {
				return invalid(fmt.Sprintf("process.capabilities.%s[%d]", set.name, i), "unknown capability %q", name)
			}
		}
	}
	return nil
}

func (v *validator) linux() error {
	l := v.s.Linux
	if l == nil {
		return invalid("linux", "section is required for a Linux container")
	}
	for _, check := range []func(*specs.Linux) error{
		v.namespaces,
		v.idMappings,
		v.uts,
		v.timeOffsets,
		v.sysctl,
		v.paths,
		v.devices,
		v.resources,
		v.linuxUnsupported,
	} {
		if err := check(l); err != nil {
			return err
		}
	}
	return nil
}

func (v *validator) namespaces(l *specs.Linux) error {
	v.ns = make(map[specs.LinuxNamespaceType]nsEntry, len(l.Namespaces))
	for i, n := range l.Namespaces {
		field := fmt.Sprintf("linux.namespaces[%d]", i)
		if _, ok := NamespaceFlag(n.Type); !ok {
			return invalid(field+".type", "unknown namespace type %q", n.Type)
		}
		if prev, dup := v.ns[n.Type]; dup {
			return invalid(field+".type", "duplicate namespace type %q (also linux.namespaces[%d])", n.Type, prev.index)
		}
		if n.Path != "" && !filepath.IsAbs(n.Path) {
			return invalid(field+".path", "%q is not an absolute path", n.Path)
		}
		if n.Path != "" {
			// Only a missing file is certain here; other errors (EACCES
			// on another process's /proc/PID/ns) are the runtime's to report.
			if _, err := os.Stat(n.Path); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s.path: namespace file %s does not exist: %w", field, n.Path, errdefs.ErrNotFound)
			}
		}
		v.ns[n.Type] = nsEntry{index: i, path: n.Path}
	}
	// The rootfs is prepared with mounts and pivot_root: in the host's mount
	// namespace that would rearrange the host's own mounts.
	if _, ok := v.ns[specs.MountNamespace]; !ok {
		return invalid("linux.namespaces", "a mount namespace is required (add {\"type\": \"mount\"})")
	}
	return nil
}

func (v *validator) idMappings(l *specs.Linux) error {
	user, hasUser := v.ns[specs.UserNamespace]
	for _, m := range []struct {
		field, kind string
		maps        []specs.LinuxIDMapping
	}{
		{"linux.uidMappings", "uid", l.UIDMappings},
		{"linux.gidMappings", "gid", l.GIDMappings},
	} {
		switch {
		case len(m.maps) > 0 && !hasUser:
			return invalid(m.field, `id mappings need a user namespace; add {"type": "user"} to linux.namespaces`)
		case len(m.maps) > 0 && user.path != "":
			return invalid(m.field, "id mappings cannot be applied to the user namespace joined at linux.namespaces[%d].path %q", user.index, user.path)
		case len(m.maps) == 0 && hasUser && user.path == "":
			return invalid(m.field, "user namespaces enabled, but no %s mappings found", m.kind)
		}
		if err := checkMappings(m.field, m.maps); err != nil {
			return err
		}
	}
	if !hasUser || user.path != "" {
		return nil
	}
	// The runtime sets the container up as root of the new user namespace,
	// then becomes the process user: both must be mapped.
	type idNeed struct {
		field, mapField string
		id              uint32
		maps            []specs.LinuxIDMapping
	}
	need := []idNeed{
		{"linux.uidMappings", "linux.uidMappings", 0, l.UIDMappings},
		{"linux.gidMappings", "linux.gidMappings", 0, l.GIDMappings},
	}
	if p := v.s.Process; p != nil {
		need = append(need,
			idNeed{"process.user.uid", "linux.uidMappings", p.User.UID, l.UIDMappings},
			idNeed{"process.user.gid", "linux.gidMappings", p.User.GID, l.GIDMappings})
		for i, g := range p.User.AdditionalGids {
			need = append(need, idNeed{fmt.Sprintf("process.user.additionalGids[%d]", i), "linux.gidMappings", g, l.GIDMappings})
		}
	}
	for _, n := range need {
		if mapped(n.maps, n.id) {
			continue
		}
		if n.field == n.mapField {
			return invalid(n.field, "container id 0 is not mapped: the runtime sets the container up as root of its user namespace")
		}
		return invalid(n.field, "%d is not mapped in the new user namespace by %s (container ids %s)", n.id, n.mapField, mappedRanges(n.maps))
	}
	return nil
}

func mapped(maps []specs.LinuxIDMapping, id uint32) bool {
	for _, m := range maps {
		if uint64(id) >= uint64(m.ContainerID) && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return true
		}
	}
	return false
}

func mappedRanges(maps []specs.LinuxIDMapping) string {
	var parts []string
	for _, m := range maps {
		parts = append(parts, fmt.Sprintf("%d-%d", m.ContainerID, uint64(m.ContainerID)+uint64(m.Size)-1))
	}
	return strings.Join(parts, ", ")
}

// checkMappings rejects ranges the kernel would refuse in uid_map/gid_map:
// empty ranges, ranges past 2^32 and ranges overlapping on either side
// (user_namespaces(7), "Defining user and group ID mappings").
func checkMappings(field string, maps []specs.LinuxIDMapping) error {
	const idSpace = uint64(1) << 32
	for i, m := range maps {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m.Size == 0 {
			return invalid(f+".size", "must be greater than 0")
		}
		if uint64(m.ContainerID)+uint64(m.Size) > idSpace {
			return invalid(f, "containerID range %d+%d exceeds the 32-bit id space", m.ContainerID, m.Size)
		}
		if uint64(m.HostID)+uint64(m.Size) > idSpace {
			return invalid(f, "hostID range %d+%d exceeds the 32-bit id space", m.HostID, m.Size)
		}
		for j := range i {
			o := maps[j]
			if overlaps(m.ContainerID, m.Size, o.ContainerID, o.Size) {
				return invalid(f, "containerID range [%d, %d) overlaps %s[%d]", m.ContainerID, uint64(m.ContainerID)+uint64(m.Size), field, j)
			}
			if overlaps(m.HostID, m.Size, o.HostID, o.Size) {
				return invalid(f, "hostID range [%d, %d) overlaps %s[%d]", m.HostID, uint64(m.HostID)+uint64(m.Size), field, j)
			}
		}
	}
	return nil
}

func overlaps(a, asz, b, bsz uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsz) && uint64(b) < uint64(a)+uint64(asz)
}

// uts allows hostname/domainname in a new UTS namespace or in one joined by
// path (as runc and crun do: a pod's containers share the pod's name), but
// not in the runtime's own UTS namespace, inherited or named by a path to
// it: that would rename the host.
func (v *validator) uts(_ *specs.Linux) error {
	for _, f := range []struct{ field, value string }{
		{"hostname", v.s.Hostname},
		{"domainname", v.s.Domainname},
	} {
		if f.value == "" || v.newNS(specs.UTSNamespace) {
			continue
		}
		e, ok := v.ns[specs.UTSNamespace]
		if !ok {
			return invalid(f.field, `unable to set %s without a private UTS namespace; add {"type": "uts"} to linux.namespaces`, f.field)
		}
		if sameFile(e.path, "/proc/self/ns/uts") {
			return invalid(f.field, "unable to set %s: linux.namespaces[%d].path %q is the runtime's own UTS namespace", f.field, e.index, e.path)
		}
	}
	return nil
}

// sameFile reports whether a and b name the same inode; false when either
// cannot be stat'ed (the runtime reports a bad namespace path when it joins).
func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

func (v *validator) timeOffsets(l *specs.Linux) error {
	if len(l.TimeOffsets) == 0 {
		return nil
	}
	// Offsets can only be written before the first process enters a time
	// namespace (time_namespaces(7)), so a joined one cannot take them.
	if !v.newNS(specs.TimeNamespace) {
		return invalid("linux.timeOffsets", `time offsets need a new time namespace; add {"type": "time"} without a path to linux.namespaces`)
	}
	for _, clock := range sortedKeys(l.TimeOffsets) {
		field := "linux.timeOffsets." + clock
		if clock != "monotonic" && clock != "boottime" {
			return invalid(field, `unknown clock %q (want "monotonic" or "boottime")`, clock)
		}
		if l.TimeOffsets[clock].Nanosecs >= 1e9 {
			return invalid(field+".nanosecs", "%d is not below 1000000000", l.TimeOffsets[clock].Nanosecs)
		}
	}
	return nil
}

// ipcSysctls are the kernel.* sysctls that live in the IPC namespace; the
// list matches runc's validator.
var ipcSysctls = map[string]bool{
	"kernel.msgmax":          true,
	"kernel.msgmnb":          true,
	"kernel.msgmni":          true,
	"kernel.sem":             true,
	"kernel.shmall":          true,
	"kernel.shmmax":          true,
	"kernel.shmmni":          true,
	"kernel.shm_rmid_forced": true,
}

// sysctl only allows keys that are namespaced by a namespace the container
// has: /proc/sys is not fully namespaced, and writing anything else would
// change the host.
func (v *validator) sysctl(l *specs.Linux) error {
	hostNet, hostNetChecked := false, false
	for _, key := range sortedKeys(l.Sysctl) {
		field := fmt.Sprintf("linux.sysctl[%q]", key)
		name := sysctlDotted(key)
		switch {
		case ipcSysctls[name] || strings.HasPrefix(name, "fs.mqueue."):
			if !v.hasNS(specs.IPCNamespace) {
				return invalid(field, `sysctl %q is not allowed in the host's ipc namespace; add {"type": "ipc"} to linux.namespaces`, name)
			}
		case strings.HasPrefix(name, "net."):
			if !hostNetChecked {
				var err error
				if hostNet, err = v.usesHostNet(); err != nil {
					return err
				}
				hostNetChecked = true
			}
			if hostNet {
				return invalid(field, "sysctl %q is not allowed in the host network namespace", name)
			}
		case name == "kernel.domainname" && v.hasNS(specs.UTSNamespace):
		case name == "kernel.hostname" && v.hasNS(specs.UTSNamespace):
			return invalid(field, `sysctl %q conflicts with the "hostname" field; set hostname instead`, name)
		default:
			return invalid(field, "sysctl %q is not in a separate kernel namespace", name)
		}
	}
	return nil
}

// usesHostNet reports whether the container would share the runtime's
// network namespace: none listed, or one joined by a path that is the
// runtime's own ("host" meaning current, as in runc).
func (v *validator) usesHostNet() (bool, error) {
	e, ok := v.ns[specs.NetworkNamespace]
	if !ok {
		return true, nil
	}
	if e.path == "" {
		return false, nil
	}
	field := fmt.Sprintf("linux.namespaces[%d].path", e.index)
	var self, joined unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return false, invalid(field, "cannot stat /proc/self/ns/net to compare: %v", err)
	}
	if err := unix.Stat(e.path, &joined); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("%s: network namespace %q does not exist: %w", field, e.path, errdefs.ErrNotFound)
		}
		return false, invalid(field, "cannot stat network namespace %q: %v", e.path, err)
	}
	return self.Dev == joined.Dev && self.Ino == joined.Ino, nil
}

// sysctlDotted normalises the slash-separated sysctl form (sysctl.d(5)):
// when the first separator is '/', dots and slashes swap roles, so
// "net/ipv4/conf/eno2.100/rp_filter" becomes "net.ipv4.conf.eno2/100.rp_filter".
func sysctlDotted(key string) string {
	i := strings.IndexAny(key, "./")
	if i < 0 || key[i] == '.' {
		return key
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, key)
}

var propagations = []string{"shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"}

func (v *validator) paths(l *specs.Linux) error {
	if l.RootfsPropagation != "" && !slices.Contains(propagations, l.RootfsPropagation) {
		return invalid("linux.rootfsPropagation", "unknown propagation %q (want one of %s)", l.RootfsPropagation, strings.Join(propagations, ", "))
	}
	for _, list := range []struct {
		field string
		paths []string
	}{
		{"linux.maskedPaths", l.MaskedPaths},
		{"linux.readonlyPaths", l.ReadonlyPaths},
	} {
		for i, p := range list.paths {
			if !filepath.IsAbs(p) {
				return invalid(fmt.Sprintf("%s[%d]", list.field, i), "%q is not an absolute path", p)
			}
		}
	}
	return nil
}

func (v *validator) devices(l *specs.Linux) error {
	for i, d := range l.Devices {
		field := fmt.Sprintf("linux.devices[%d]", i)
		if !filepath.IsAbs(d.Path) {
			return invalid(field+".path", "%q is not an absolute path", d.Path)
		}
		switch d.Type {
		case "c", "b", "u":
			// Major 0 is reserved for unnamed devices (Documentation/
			// admin-guide/devices.txt), so it means "not given" here.
			if d.Major <= 0 {
				return invalid(field+".major", "device type %q needs a major number greater than 0", d.Type)
			}
			if d.Minor < 0 {
				return invalid(field+".minor", "%d is negative", d.Minor)
			}
		case "p":
		default:
			return invalid(field+".type", "unknown device type %q (want c, b, u or p)", d.Type)
		}
	}
	return nil
}

func (v *validator) resources(l *specs.Linux) error {
	r := l.Resources
	if r == nil {
		return nil
	}
	for i, d := range r.Devices {
		field := fmt.Sprintf("linux.resources.devices[%d]", i)
		switch d.Type {
		case "", "a", "c", "b":
		default:
			return invalid(field+".type", "unknown device type %q (want a, c or b)", d.Type)
		}
		for _, c := range d.Access {
			if !strings.ContainsRune("rwm", c) {
				return invalid(field+".access", "%q is not a combination of r, w and m", d.Access)
			}
		}
	}
	if len(r.Rdma) > 0 {
		return unsupported("linux.resources.rdma", "the rdma controller is not supported")
	}
	if b := r.BlockIO; b != nil {
		for _, w := range []struct {
			field string
			v     *uint16
		}{{"weight", b.Weight}, {"leafWeight", b.LeafWeight}} {
			if w.v != nil && *w.v != 0 && (*w.v < 10 || *w.v > 1000) {
				return invalid("linux.resources.blockIO."+w.field, "%d is outside 10..1000", *w.v)
			}
		}
		for i, d := range b.WeightDevice {
			if d.Weight != nil && (*d.Weight < 10 || *d.Weight > 1000) {
				return invalid(fmt.Sprintf("linux.resources.blockIO.weightDevice[%d].weight", i), "%d is outside 10..1000", *d.Weight)
			}
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 && *c.Shares < 2 {
			return invalid("linux.resources.cpu.shares", "%d is below the minimum of 2", *c.Shares)
		}
		if c.Period != nil && *c.Period != 0 && (*c.Period < 1000 || *c.Period > 1000000) {
			return invalid("linux.resources.cpu.period", "%d is outside 1000..1000000 microseconds", *c.Period)
		}
		if c.Quota != nil && *c.Quota > 0 && *c.Quota < 1000 {
			return invalid("linux.resources.cpu.quota", "%d is below the minimum of 1000 microseconds", *c.Quota)
		}
		if c.Idle != nil && *c.Idle != 0 && *c.Idle != 1 {
			return invalid("linux.resources.cpu.idle", "%d: want 0 or 1", *c.Idle)
		}
	}
	if m := r.Memory; m != nil {
		for _, f := range []struct {
			field string
			v     *int64
		}{{"limit", m.Limit}, {"reservation", m.Reservation}, {"swap", m.Swap}} {
			if f.v != nil && *f.v < -1 {
				return invalid("linux.resources.memory."+f.field, "%d: want a byte count, or -1 for no limit", *f.v)
			}
		}
		if m.Swap != nil && m.Limit != nil && *m.Swap > 0 && *m.Limit > 0 && *m.Swap < *m.Limit {
			return invalid("linux.resources.memory.swap", "%d is below memory.limit %d (swap is the memory+swap total)", *m.Swap, *m.Limit)
		}
		if m.Swappiness != nil && *m.Swappiness > 100 {
			return invalid("linux.resources.memory.swappiness", "%d is above 100", *m.Swappiness)
		}
	}
	for i, h := range r.HugepageLimits {
		if h.Pagesize == "" || strings.ContainsAny(h.Pagesize, "/.") {
			return invalid(fmt.Sprintf("linux.resources.hugepageLimits[%d].pageSize", i), "%q is not a page size such as 2MB", h.Pagesize)
		}
	}
	return nil
}

// seccomp checks what can be checked without compiling the profile (the
// runtime compiles it at create and names any bad action, operator,
// architecture or flag).
func (v *validator) seccomp(sc *specs.LinuxSeccomp) error {
	if sc.DefaultAction == "" {
		return invalid("linux.seccomp.defaultAction", "is required")
	}
	notify := sc.DefaultAction == specs.ActNotify
	for i, r := range sc.Syscalls {
		field := fmt.Sprintf("linux.seccomp.syscalls[%d]", i)
		if len(r.Names) == 0 {
			return invalid(field+".names", "must list at least one syscall")
		}
		if r.Action == "" {
			return invalid(field+".action", "is required")
		}
		notify = notify || r.Action == specs.ActNotify
	}
	if notify && sc.DefaultAction == specs.ActNotify {
		return invalid("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action (the runtime's own calls would block)")
	}
	if notify && !filepath.IsAbs(sc.ListenerPath) {
		return invalid("linux.seccomp.listenerPath", "SCMP_ACT_NOTIFY needs an absolute listenerPath, got %q", sc.ListenerPath)
	}
	return nil
}

func (v *validator) linuxUnsupported(l *specs.Linux) error {
	switch {
	case l.MountLabel != "":
		return unsupported("linux.mountLabel", "SELinux is not supported by this runtime; remove the field")
	case l.Seccomp != nil:
		return v.seccomp(l.Seccomp)
	case l.IntelRdt != nil:
		return unsupported("linux.intelRdt", "Intel RDT is not supported yet")
	case l.Personality != nil:
		return unsupported("linux.personality", "personality is not supported yet")
	case l.MemoryPolicy != nil:
		return unsupported("linux.memoryPolicy", "memory policy is not supported yet")
	case len(l.NetDevices) > 0:
		return unsupported("linux.netDevices", "moving network devices is not supported yet")
	}
	return nil
}

func (v *validator) mounts() error {
	for i, m := range v.s.Mounts {
		field := fmt.Sprintf("mounts[%d]", i)
		// A relative destination is accepted and taken relative to "/", as
		// runc does (it only warns, for compatibility with old configs).
		if m.Destination == "" {
			return invalid(field+".destination", "must not be empty")
		}
		if isBind(m) && m.Source == "" {
			return invalid(field+".source", "bind mount on %q needs a source", m.Destination)
		}
		if err := v.idmappedMount(field, m); err != nil {
			return err
		}
	}
	return nil
}

// idmappedMount checks an id-mapped mount: one with the idmap or ridmap
// option or with its own maps (config.md, "mounts").
func (v *validator) idmappedMount(field string, m specs.Mount) error {
	opt, idmapped := IDMapped(m)
	if !idmapped {
		return nil
	}
	hasMaps := len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0
	if !isBind(m) {
		what := "uidMappings/gidMappings"
		if opt != "" {
			what = "the " + opt + " option"
		}
		return unsupported(field+".options", "%s: id-mapped mounts are supported for bind mounts only (add \"bind\" or \"rbind\")", what)
	}
	if hasMaps {
		if len(m.UIDMappings) == 0 {
			return invalid(field+".uidMappings", "must be given with gidMappings")
		}
		if len(m.GIDMappings) == 0 {
			return invalid(field+".gidMappings", "must be given with uidMappings")
		}
		if err := checkMappings(field+".uidMappings", m.UIDMappings); err != nil {
			return err
		}
		return checkMappings(field+".gidMappings", m.GIDMappings)
	}
	if !v.newNS(specs.UserNamespace) {
		return invalid(field+".options", "%s without uidMappings and gidMappings uses the container's user namespace maps, but the container has no new user namespace", opt)
	}
	return nil
}

// IDMapped reports whether m is an id-mapped mount (the idmap or ridmap
// option, or maps of its own) and which of the options it has ("" for
// maps alone).
func IDMapped(m specs.Mount) (option string, ok bool) {
	for _, o := range m.Options {
		if o == "idmap" || o == "ridmap" {
			option = o
		}
	}
	return option, option != "" || len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0
}

func isBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

func (v *validator) hooks() error {
	h := v.s.Hooks
	if h == nil {
		return nil
	}
	for _, f := range []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart},
		{"createRuntime", h.CreateRuntime},
		{"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer},
		{"poststart", h.Poststart},
		{"poststop", h.Poststop},
	} {
		for i, hk := range f.hooks {
			field := fmt.Sprintf("hooks.%s[%d]", f.name, i)
			if !filepath.IsAbs(hk.Path) {
				return invalid(field+".path", "%q is not an absolute path", hk.Path)
			}
			if hk.Timeout != nil && *hk.Timeout <= 0 {
				return invalid(field+".timeout", "%d: must be greater than zero", *hk.Timeout)
			}
			for _, e := range hk.Env {
				if !strings.Contains(e, "=") {
					return invalid(field+".env", "%q is not KEY=VALUE", e)
				}
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
