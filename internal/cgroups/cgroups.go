// Package cgroups places containers in cgroups and removes them again.
//
// This is the seam the runtime uses; today it creates the container's cgroup
// in every mounted hierarchy (v1 controllers, named hierarchies and the v2
// unified tree, so the hybrid layout works), moves the init into it, enforces
// linux.resources.devices on v1, lists and signals members, and removes it.
// Resource limits come with the cgroups work (see features).
package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Hierarchy is one mounted cgroup hierarchy.
type Hierarchy struct {
	Mountpoint string // e.g. /sys/fs/cgroup/memory
	Root       string // the hierarchy path mounted there (field 4 of mountinfo)
	Key        string // controllers ("cpu,cpuacct", "name=systemd"); "" for cgroup2
	V2         bool
}

// Hierarchies lists the cgroup hierarchies mounted in this mount namespace.
// Only cgroup mount lines are parsed, not the whole table.
func Hierarchies() ([]Hierarchy, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []Hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, " - cgroup") {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf := strings.Fields(pre)
		qf := strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		h := Hierarchy{Mountpoint: unescape(pf[4]), Root: unescape(pf[3])}
		switch qf[0] {
		case "cgroup2":
			h.V2 = true
		case "cgroup":
			var keys []string
			for _, o := range strings.Split(qf[2], ",") {
				if isController(o) || strings.HasPrefix(o, "name=") {
					keys = append(keys, o)
				}
			}
			h.Key = strings.Join(keys, ",")
		default:
			continue
		}
		if seen[h.Key] {
			continue
		}
		seen[h.Key] = true
		hs = append(hs, h)
	}
	return hs, sc.Err()
}

var v1Controllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true, "freezer": true,
	"net_cls": true, "blkio": true, "perf_event": true, "net_prio": true, "hugetlb": true, "pids": true,
	"rdma": true, "misc": true,
}

func isController(o string) bool { return v1Controllers[o] }

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownCgroups maps hierarchy key to this process's cgroup path in it.
func ownCgroups(pid string) (map[string]string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return nil, err
	}
	return parseProcCgroup(string(b)), nil
}

func parseProcCgroup(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		m[parts[1]] = parts[2]
	}
	return m
}

// Manager owns one container's cgroup: a directory per hierarchy.
type Manager struct {
	// Paths maps hierarchy key ("" for cgroup2) to the absolute directory.
	Paths map[string]string
}

// New computes the container's cgroup directories for cgroupsPath (absolute,
// or relative to warren's own cgroup in each hierarchy, as runc does; empty
// means the container id, relative).
func New(cgroupsPath, id string) (*Manager, error) {
	if cgroupsPath == "" {
		cgroupsPath = id
	}
	if strings.Contains(cgroupsPath, ":") && !strings.HasPrefix(cgroupsPath, "/") {
		return nil, fmt.Errorf("linux.cgroupsPath %q: the slice:prefix:name form needs --systemd-cgroup, and systemd is not available here", cgroupsPath)
	}
	clean := filepath.Clean("/" + cgroupsPath)
	hs, err := Hierarchies()
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	var own map[string]string
	if !filepath.IsAbs(cgroupsPath) {
		if own, err = ownCgroups("self"); err != nil {
			return nil, fmt.Errorf("read own cgroup: %w", err)
		}
	}
	m := &Manager{Paths: map[string]string{}}
	for _, h := range hs {
		p := clean
		if own != nil {
			p = filepath.Join(own[h.Key], cgroupsPath)
		}
		// The mount shows the hierarchy from h.Root down (e.g. inside a
		// cgroup namespace); paths are relative to that.
		rel, err := filepath.Rel(h.Root, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = p
		}
		m.Paths[h.Key] = filepath.Join(h.Mountpoint, rel)
	}
	if len(m.Paths) == 0 {
		return nil, errors.New("no cgroup hierarchy is mounted")
	}
	return m, nil
}

// Apply creates every directory and moves pid in.
// The hierarchies are independent and each mkdir is slow on v1 (the
// kernel synchronises on the hierarchy), so they are done in parallel.
func (m *Manager) Apply(pid int) error {
	p := []byte(strconv.Itoa(pid))
	errs := make(chan error, len(m.Paths))
	for key, dir := range m.Paths {
		go func() { errs <- apply(key, dir, p) }()
	}
	var first error
	for range m.Paths {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func apply(key, dir string, pid []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if strings.Contains(key, "cpuset") {
		if err := inheritCpuset(dir); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0); err != nil {
		return fmt.Errorf("move pid %s into cgroup %s: %w", pid, dir, err)
	}
	return nil
}

// inheritCpuset fills an empty v1 cpuset (which refuses tasks) from its parents.
func inheritCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || strings.TrimSpace(string(b)) != "" {
			continue
		}
		if err := inheritCpuset(filepath.Dir(dir)); err != nil {
			return err
		}
		pb, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return fmt.Errorf("read %s of parent of %s: %w", f, dir, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), pb, 0); err != nil {
			return fmt.Errorf("set %s in %s: %w", f, dir, err)
		}
	}
	return nil
}

// Pids lists the processes in the container's cgroup and its children.
func (m *Manager) Pids() ([]int, error) {
	dir := m.Paths["pids"]
	if dir == "" {
		for _, d := range m.Paths {
			dir = d
			break
		}
	}
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list processes of cgroup %s: %w", dir, err)
	}
	return pids, nil
}

// Signal sends sig to every process in the cgroup. With the v1 freezer the
// group is frozen first so no process can fork away from the signal.
func (m *Manager) Signal(sig unix.Signal) error {
	freezer := m.Paths["freezer"]
	frozen := false
	if freezer != "" && sig == unix.SIGKILL {
		if os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("FROZEN"), 0) == nil {
			frozen = true
		}
	}
	pids, err := m.Pids()
	for _, p := range pids {
		_ = unix.Kill(p, sig)
	}
	if frozen {
		_ = os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("THAWED"), 0)
	}
	return err
}

// Destroy removes the container's cgroup directories (children first). It
// retries while the kernel still counts exiting processes as members.
func (m *Manager) Destroy() error {
	var firstErr error
	for _, dir := range m.Paths {
		if err := removeTree(dir); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	delay := time.Millisecond
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY || i >= 12 {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}
