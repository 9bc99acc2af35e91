//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/tests/testinit/internal/earlyrlimit"
)

// Report is what "testinit report" prints. The JSON keys are relied upon by
// the integration tests; do not rename them.
type Report struct {
	PID  int `json:"pid"`
	PPID int `json:"ppid"`

	// From getresuid(2) / getresgid(2).
	UID  int `json:"uid"`
	EUID int `json:"euid"`
	SUID int `json:"suid"`
	GID  int `json:"gid"`
	EGID int `json:"egid"`
	SGID int `json:"sgid"`
	// Supplementary groups from getgroups(2); never null.
	Groups []int `json:"groups"`

	Hostname   string   `json:"hostname"`   // uname nodename
	Domainname string   `json:"domainname"` // uname domainname
	Cwd        string   `json:"cwd"`        // getcwd(2), not $PWD
	Args       []string `json:"args"`
	Env        []string `json:"env"`

	// Umask from the "Umask:" line of /proc/self/status as a number
	// (0o022 == 18); falls back to umask(2) on kernels without that line.
	Umask int `json:"umask"`

	// Namespace type (entry name in /proc/self/ns, e.g. "pid_for_children")
	// to inode number. Entries that do not exist or cannot be read with
	// ENOENT are left out.
	Namespaces map[string]uint64 `json:"namespaces"`

	// Capability sets from /proc/self/status as the kernel prints them
	// (16 hex digits): keys CapInh, CapPrm, CapEff, CapBnd, CapAmb.
	Caps       map[string]string `json:"caps"`
	NoNewPrivs int               `json:"noNewPrivs"` // -1 if unknown
	Seccomp    int               `json:"seccomp"`    // 0 off, 1 strict, 2 filter; -1 if unknown

	// RLIMIT_* name (e.g. "RLIMIT_NOFILE") to limits; RLIM_INFINITY is
	// 18446744073709551615 (max uint64).
	Rlimits map[string]Rlimit `json:"rlimits"`

	// Open fds, sorted, without the fd used to read /proc/self/fd, and
	// their /proc/self/fd/N link targets (JSON object keys are the fd
	// numbers as strings; decode into map[int]string).
	FDs       []int          `json:"fds"`
	FDTargets map[int]string `json:"fdTargets"`

	UIDMap    string `json:"uidMap"`    // raw /proc/self/uid_map
	GIDMap    string `json:"gidMap"`    // raw /proc/self/gid_map
	Setgroups string `json:"setgroups"` // /proc/self/setgroups, trimmed ("allow"/"deny")

	OOMScoreAdj int    `json:"oomScoreAdj"`
	Cgroup      string `json:"cgroup"` // raw /proc/self/cgroup

	Mounts []Mount `json:"mounts"`

	// Network interfaces of the current network namespace.
	Interfaces []Interface `json:"interfaces"`
	// "netlink" (net.Interfaces) or "sysfs" (/sys/class/net fallback).
	InterfacesSource string `json:"interfacesSource"`

	// Non-fatal problems met while collecting the report; empty when
	// everything could be read. Each is also written to stderr.
	Errors []string `json:"errors"`
}

// Rlimit is one resource limit.
type Rlimit struct {
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// Interface is one network interface.
type Interface struct {
	Name string `json:"name"`
	Up   bool   `json:"up"` // IFF_UP set
}

var rlimitNames = []struct {
	name string
	res  int
}{
	{"RLIMIT_CPU", unix.RLIMIT_CPU},
	{"RLIMIT_FSIZE", unix.RLIMIT_FSIZE},
	{"RLIMIT_DATA", unix.RLIMIT_DATA},
	{"RLIMIT_STACK", unix.RLIMIT_STACK},
	{"RLIMIT_CORE", unix.RLIMIT_CORE},
	{"RLIMIT_RSS", unix.RLIMIT_RSS},
	{"RLIMIT_NPROC", unix.RLIMIT_NPROC},
	{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE},
	{"RLIMIT_MEMLOCK", unix.RLIMIT_MEMLOCK},
	{"RLIMIT_AS", unix.RLIMIT_AS},
	{"RLIMIT_LOCKS", unix.RLIMIT_LOCKS},
	{"RLIMIT_SIGPENDING", unix.RLIMIT_SIGPENDING},
	{"RLIMIT_MSGQUEUE", unix.RLIMIT_MSGQUEUE},
	{"RLIMIT_NICE", unix.RLIMIT_NICE},
	{"RLIMIT_RTPRIO", unix.RLIMIT_RTPRIO},
	{"RLIMIT_RTTIME", unix.RLIMIT_RTTIME},
}

// The helpers below use raw system calls instead of package os: os.Open
// registers descriptors with the runtime poller, which would leave an epoll
// fd and an eventfd open and pollute later fd listings.

const maxProcFile = 16 << 20

// readFileRaw reads a (small) file with plain open/read/close.
func readFileRaw(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 8192)
	for len(out) < maxProcFile {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			break
		}
		out = append(out, buf[:n]...)
	}
	return string(out), nil
}

// readDirFD lists the entry names of an already opened directory.
func readDirFD(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 16384)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// listDir lists a directory's entries (without "." and "..").
func listDir(path string) ([]string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	names, err := readDirFD(fd)
	if err != nil {
		return nil, &os.PathError{Op: "getdents", Path: path, Err: err}
	}
	return names, nil
}

func readlinkRaw(path string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlink(path, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: path, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<20 {
			return string(buf[:n]), nil
		}
	}
}

// collectFDs lists the open descriptors. The directory fd used for the
// listing is opened explicitly so its number is known and can be skipped.
func collectFDs() ([]int, map[int]string, error) {
	const dir = "/proc/self/fd"
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return []int{}, map[int]string{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	names, err := readDirFD(dfd)
	if err != nil {
		return []int{}, map[int]string{}, &os.PathError{Op: "getdents", Path: dir, Err: err}
	}
	fds := []int{}
	targets := map[int]string{}
	var errs []error
	for _, name := range names {
		n, err := strconv.Atoi(name)
		if err != nil || n == dfd {
			continue
		}
		fds = append(fds, n)
		t, err := readlinkRaw(dir + "/" + name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		targets[n] = t
	}
	sort.Ints(fds)
	return fds, targets, errors.Join(errs...)
}

type reporter struct {
	r *Report
}

func (rp *reporter) fail(err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	rp.r.Errors = append(rp.r.Errors, msg)
	fmt.Fprintf(os.Stderr, "testinit: report: %s\n", msg)
}

func collectReport() *Report {
	r := &Report{
		Groups:     []int{},
		Args:       os.Args,
		Env:        os.Environ(),
		Umask:      -1,
		Namespaces: map[string]uint64{},
		Caps:       map[string]string{},
		NoNewPrivs: -1,
		Seccomp:    -1,
		Rlimits:    map[string]Rlimit{},
		FDs:        []int{},
		FDTargets:  map[int]string{},
		Mounts:     []Mount{},
		Interfaces: []Interface{},
		Errors:     []string{},
	}
	rp := &reporter{r: r}

	// First, before anything else opens a descriptor.
	fds, targets, err := collectFDs()
	r.FDs, r.FDTargets = fds, targets
	rp.fail(err)

	r.PID = unix.Getpid()
	r.PPID = unix.Getppid()
	r.UID, r.EUID, r.SUID = unix.Getresuid()
	r.GID, r.EGID, r.SGID = unix.Getresgid()
	if groups, err := unix.Getgroups(); err != nil {
		rp.fail(fmt.Errorf("getgroups: %w", err))
	} else if groups != nil {
		r.Groups = groups
	}

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		rp.fail(fmt.Errorf("uname: %w", err))
	} else {
		r.Hostname = cString(uts.Nodename[:])
		r.Domainname = cString(uts.Domainname[:])
	}

	if wd, err := unix.Getwd(); err != nil {
		rp.fail(fmt.Errorf("getcwd: %w", err))
	} else {
		r.Cwd = wd
	}

	if data, err := readFileRaw("/proc/self/status"); err != nil {
		rp.fail(err)
	} else {
		st := parseStatus(data)
		caps, err := capsFromStatus(st)
		r.Caps = caps
		rp.fail(err)
		if v, err := statusInt(st, "NoNewPrivs"); err == nil {
			r.NoNewPrivs = v
		} else {
			rp.fail(err)
		}
		if v, err := statusInt(st, "Seccomp"); err == nil {
			r.Seccomp = v
		} else {
			rp.fail(err)
		}
		if v, err := statusOctal(st, "Umask"); err == nil {
			r.Umask = v
		}
	}
	if r.Umask < 0 {
		// Kernels before 4.7 have no Umask line; umask(2) is the only way.
		old := unix.Umask(0)
		unix.Umask(old)
		r.Umask = old
	}

	if names, err := listDir("/proc/self/ns"); err != nil {
		rp.fail(err)
	} else {
		for _, name := range names {
			link, err := readlinkRaw("/proc/self/ns/" + name)
			if err != nil {
				// pid_for_children cannot be resolved before the first
				// child exists after unshare(CLONE_NEWPID); skip such.
				if !errors.Is(err, unix.ENOENT) {
					rp.fail(err)
				}
				continue
			}
			_, ino, err := parseNSLink(link)
			if err != nil {
				rp.fail(err)
				continue
			}
			r.Namespaces[name] = ino
		}
	}

	for _, rl := range rlimitNames {
		var lim unix.Rlimit
		if err := unix.Prlimit(0, rl.res, nil, &lim); err != nil {
			rp.fail(fmt.Errorf("prlimit %s: %w", rl.name, err))
			continue
		}
		r.Rlimits[rl.name] = Rlimit{Soft: lim.Cur, Hard: lim.Max}
	}
	// Package syscall raised the soft RLIMIT_NOFILE during init; report
	// the value the process was started with instead.
	if soft, hard, ok := earlyrlimit.Nofile(); ok {
		r.Rlimits["RLIMIT_NOFILE"] = Rlimit{Soft: soft, Hard: hard}
	} else if lim, ok := r.Rlimits["RLIMIT_NOFILE"]; ok && lim.Hard > 0 && lim.Soft == lim.Hard-1 {
		rp.fail(errors.New("RLIMIT_NOFILE: startup value unavailable; soft limit was probably raised by the Go runtime"))
	}

	if s, err := readFileRaw("/proc/self/uid_map"); err != nil {
		rp.fail(err)
	} else {
		r.UIDMap = s
	}
	if s, err := readFileRaw("/proc/self/gid_map"); err != nil {
		rp.fail(err)
	} else {
		r.GIDMap = s
	}
	if s, err := readFileRaw("/proc/self/setgroups"); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			rp.fail(err)
		}
	} else {
		r.Setgroups = strings.TrimSpace(s)
	}

	if s, err := readFileRaw("/proc/self/oom_score_adj"); err != nil {
		rp.fail(err)
	} else if v, err := strconv.Atoi(strings.TrimSpace(s)); err != nil {
		rp.fail(fmt.Errorf("oom_score_adj %q: %w", s, err))
	} else {
		r.OOMScoreAdj = v
	}

	if s, err := readFileRaw("/proc/self/cgroup"); err != nil {
		rp.fail(err)
	} else {
		r.Cgroup = s
	}

	if s, err := readFileRaw("/proc/self/mountinfo"); err != nil {
		rp.fail(err)
	} else {
		mounts, err := parseMountinfo(s)
		r.Mounts = mounts
		rp.fail(err)
	}

	ifs, src, err := collectInterfaces()
	r.Interfaces, r.InterfacesSource = ifs, src
	rp.fail(err)

	return r
}

// collectInterfaces asks the kernel over netlink, which always describes the
// caller's network namespace, and falls back to /sys/class/net (which shows
// the namespace sysfs was mounted in) if netlink is unavailable.
func collectInterfaces() ([]Interface, string, error) {
	ifs, nlErr := net.Interfaces()
	if nlErr == nil {
		out := make([]Interface, 0, len(ifs))
		for _, ifc := range ifs {
			out = append(out, Interface{Name: ifc.Name, Up: ifc.Flags&net.FlagUp != 0})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out, "netlink", nil
	}
	names, err := listDir("/sys/class/net")
	if err != nil {
		return []Interface{}, "", fmt.Errorf("interfaces: netlink: %v; sysfs: %w", nlErr, err)
	}
	sort.Strings(names)
	out := make([]Interface, 0, len(names))
	var errs []error
	for _, name := range names {
		s, err := readFileRaw("/sys/class/net/" + name + "/flags")
		if err != nil {
			errs = append(errs, err)
			out = append(out, Interface{Name: name})
			continue
		}
		flags, err := parseIfFlags(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		out = append(out, Interface{Name: name, Up: flags&unix.IFF_UP != 0})
	}
	return out, "sysfs", errors.Join(errs...)
}
