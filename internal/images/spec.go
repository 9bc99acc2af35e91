package images

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// Annotations recording image config fields the runtime spec has no
// place for (the names CRI-O and the image spec's conversion use).
const (
	AnnotationStopSignal   = "org.opencontainers.image.stopSignal"
	AnnotationExposedPorts = "org.opencontainers.image.exposedPorts"
	AnnotationVolumes      = "org.opencontainers.image.volumes"
)

// defaultPath is the PATH of a process whose image sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultCaps are the capabilities of a container's process unless asked
// otherwise: docker's and podman's default set.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Spec builds the runtime config of a container of an image whose root is
// mounted at rootfs (process, user, env, cwd from the image config, user
// and group names resolved in the image's /etc/passwd and /etc/group,
// stop signal, exposed ports and volumes recorded as annotations) on a
// default config: every namespace but user and time new, the usual mounts,
// masked and read-only paths, the default capabilities, no_new_privs off
// (set-id programs in images work, as with docker), no rlimits (the
// engine's are inherited).
func Spec(cfg *v1.ConfigFile, rootfs string) (*specs.Spec, error) {
	c := cfg.Config
	args := append(append([]string{}, c.Entrypoint...), c.Cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("image config: neither Entrypoint nor Cmd is set: name a command: %w", errdefs.ErrInvalid)
	}
	env := append([]string{}, c.Env...)
	if !hasPath(env) {
		env = append([]string{defaultPath}, env...)
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	user, err := ResolveUser(rootfs, c.User)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: args, Env: env, Cwd: cwd, User: user,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps,
			},
		},
		Root:     &specs.Root{Path: rootfs},
		Hostname: "",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
		Annotations: map[string]string{},
	}
	if c.StopSignal != "" {
		s.Annotations[AnnotationStopSignal] = c.StopSignal
	}
	if len(c.ExposedPorts) > 0 {
		s.Annotations[AnnotationExposedPorts] = strings.Join(sortedKeys(c.ExposedPorts), ",")
	}
	if len(c.Volumes) > 0 {
		s.Annotations[AnnotationVolumes] = strings.Join(sortedKeys(c.Volumes), ",")
	}
	for k, v := range c.Labels {
		s.Annotations[k] = v
	}
	return s, nil
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}

// ResolveUser turns an image config's User ("", "uid", "uid:gid", "name",
// "name:group", any mix) into ids, looking names up in the image's
// /etc/passwd and /etc/group (opened inside rootfs, never following a
// symlink out of it). A user given by name or by a uid /etc/passwd knows
// gets its primary group and the groups that list it as additional gids,
// as docker does.
func ResolveUser(rootfs, user string) (specs.User, error) {
	if user == "" {
		user = "0"
	}
	u, g, hasGroup := strings.Cut(user, ":")
	passwd, perr := readInRoot(rootfs, "/etc/passwd")
	group, gerr := readInRoot(rootfs, "/etc/group")
	var out specs.User
	var name string
	if uid, err := strconv.ParseUint(u, 10, 32); err == nil {
		out.UID = uint32(uid) // gid 0 unless /etc/passwd knows the uid (docker's rule)
		for _, f := range passwd {
			if len(f) >= 4 && f[2] == u {
				name = f[0]
				if gid, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					out.GID = uint32(gid)
				}
				break
			}
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) >= 4 && f[0] == u {
				uid, err1 := strconv.ParseUint(f[2], 10, 32)
				gid, err2 := strconv.ParseUint(f[3], 10, 32)
				if err1 != nil || err2 != nil {
					return out, fmt.Errorf("image config user %q: bad /etc/passwd entry: %w", user, errdefs.ErrInvalid)
				}
				out.UID, out.GID, name, found = uint32(uid), uint32(gid), u, true
				break
			}
		}
		if !found {
			why := "no such user in the image's /etc/passwd"
			if perr != nil {
				why = "the image has no readable /etc/passwd (" + perr.Error() + ")"
			}
			return out, fmt.Errorf("image config user %q: %s: %w", user, why, errdefs.ErrNotFound)
		}
	}
	if hasGroup {
		if gid, err := strconv.ParseUint(g, 10, 32); err == nil {
			out.GID = uint32(gid)
		} else {
			found := false
			for _, f := range group {
				if len(f) >= 3 && f[0] == g {
					gid, err := strconv.ParseUint(f[2], 10, 32)
					if err != nil {
						return out, fmt.Errorf("image config user %q: bad /etc/group entry: %w", user, errdefs.ErrInvalid)
					}
					out.GID, found = uint32(gid), true
					break
				}
			}
			if !found {
				why := "no such group in the image's /etc/group"
				if gerr != nil {
					why = "the image has no readable /etc/group (" + gerr.Error() + ")"
				}
				return out, fmt.Errorf("image config user %q: %s: %w", user, why, errdefs.ErrNotFound)
			}
		}
	}
	if name != "" && !hasGroup {
		for _, f := range group {
			if len(f) < 4 {
				continue
			}
			gid, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil || uint32(gid) == out.GID {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == name {
					out.AdditionalGids = append(out.AdditionalGids, uint32(gid))
				}
			}
		}
	}
	return out, nil
}

// readInRoot reads a colon-separated file inside rootfs, resolved there
// (RESOLVE_IN_ROOT: an absolute symlink in the image stays in the image).
func readInRoot(rootfs, p string) ([][]string, error) {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, p, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, errors.New(p + " is not a regular file")
	}
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}
