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
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/rawfile"
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
	b, err := rawfile.Read("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var hs []Hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
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
	b, err := rawfile.Read("/proc/" + pid + "/cgroup")
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

	// hierarchies seen by New (nil for a Manager rebuilt from state).
	hierarchies []Hierarchy
	// created is set once Create or CreateDelegated has run.
	created bool
	// skipped lists the hierarchies CreateDelegated dropped because they
	// are not delegated to the caller ("" for cgroup2).
	skipped []string
}

// MountedHierarchies returns the hierarchies New found, listing them again
// only for a Manager rebuilt from saved paths: mountinfo is read once per
// create.
func (m *Manager) MountedHierarchies() ([]Hierarchy, error) {
	if m.hierarchies != nil {
		return m.hierarchies, nil
	}
	return Hierarchies()
}

// Unified reports whether the container lives in a cgroup v2-only host:
// one hierarchy, cgroup2, holding every controller.
func (m *Manager) Unified() bool {
	_, ok := m.Paths[""]
	return ok && len(m.Paths) == 1
}

// dir returns the directory that holds controller ctrl ("memory", "cpu",
// ...), or "" when no mounted hierarchy has it. On v2 every controller
// lives in the one directory (whether it is enabled is checked on write).
func (m *Manager) dir(ctrl string) string {
	if m.Unified() {
		return m.Paths[""]
	}
	for key, d := range m.Paths {
		if key == "" {
			continue
		}
		for _, c := range strings.Split(key, ",") {
			if c == ctrl {
				return d
			}
		}
	}
	return ""
}

// New computes the container's cgroup directories for cgroupsPath (absolute,
// or relative to warren's own cgroup in each hierarchy, as runc does; empty
// means the container id, relative). On a v2-only host a relative path is
// taken from the parent of warren's own cgroup: warren's cgroup holds
// processes, so no controller could be enabled below it.
func New(cgroupsPath, id string) (*Manager, error) {
	if cgroupsPath == "" {
		cgroupsPath = id
	}
	if strings.Contains(cgroupsPath, ":") && !strings.HasPrefix(cgroupsPath, "/") {
		return nil, fmt.Errorf("linux.cgroupsPath %q: the slice:prefix:name form needs --systemd-cgroup, and systemd is not available here: %w", cgroupsPath, errdefs.ErrNotSupported)
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
	unified := len(hs) == 1 && hs[0].V2
	m := &Manager{Paths: map[string]string{}, hierarchies: hs}
	for _, h := range hs {
		p := clean
		if own != nil {
			base := own[h.Key]
			if unified {
				base = filepath.Dir(base)
			}
			p = filepath.Join(base, cgroupsPath)
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

// Create makes the container's cgroup directories without moving anything
// in; on v2 it first enables every available controller on the way down.
// The v1 hierarchies are independent and each mkdir is slow (the kernel
// synchronises on the hierarchy), so they are done in parallel.
func (m *Manager) Create() error { return m.create(false) }

// CreateDelegated is Create for an unprivileged caller (rootless mode): a
// hierarchy where the caller may not create the container's cgroup is not
// delegated to it, and is dropped from Paths instead of failing; Skipped
// lists those. On v2, controllers an ancestor the caller does not own has
// not enabled stay unavailable (Set names them if the config needs them).
// Other errors still fail.
func (m *Manager) CreateDelegated() error { return m.create(true) }

func (m *Manager) create(delegated bool) error {
	if m.created {
		return nil
	}
	m.created = true
	if m.Unified() {
		err := m.createV2(m.Paths[""], delegated)
		if delegated && isPermission(err) {
			m.drop("")
			return nil
		}
		return err
	}
	type result struct {
		key string
		err error
	}
	res := make(chan result, len(m.Paths))
	for key, dir := range m.Paths {
		go func() { res <- result{key, createV1(key, dir)} }()
	}
	var first error
	for range len(m.Paths) {
		r := <-res
		switch {
		case delegated && isPermission(r.err):
			m.drop(r.key)
		case r.err != nil && first == nil:
			first = r.err
		}
	}
	return first
}

// Drop gives up the whole cgroup (rootless mode, when the caller turns out
// not to be allowed to move a process into it): the directories just
// created are removed and every hierarchy is listed in Skipped.
func (m *Manager) Drop() {
	for key := range m.Paths {
		m.drop(key)
	}
}

func (m *Manager) drop(key string) {
	if dir, ok := m.Paths[key]; ok {
		_ = os.Remove(dir)
	}
	delete(m.Paths, key)
	m.skipped = append(m.skipped, key)
	sort.Strings(m.skipped)
}

// Skipped lists the hierarchies (keys such as "memory" or "cpu,cpuacct";
// "cgroup2" for the unified one) that rootless mode left out.
func (m *Manager) Skipped() []string {
	out := make([]string, len(m.skipped))
	for i, k := range m.skipped {
		if k == "" {
			k = "cgroup2"
		}
		out[i] = k
	}
	return out
}

func isPermission(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS)
}

func createV1(key, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if strings.Contains(key, "cpuset") {
		return inheritCpuset(dir)
	}
	return nil
}

// createV2 creates dir, enabling in each ancestor's cgroup.subtree_control
// the controllers it has, so that the container's cgroup gets them all.
func (m *Manager) createV2(dir string, delegated bool) error {
	mnt, err := m.v2MountPoint(dir)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(mnt, dir)
	cur := mnt
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." {
			continue
		}
		if err := enableControllers(cur); err != nil && !(delegated && isPermission(err)) {
			return err
		}
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", cur, err)
		}
	}
	return nil
}

func enableControllers(dir string) error {
	b, err := rawfile.Read(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("read controllers of %s: %w", dir, err)
	}
	have, _ := rawfile.Read(filepath.Join(dir, "cgroup.subtree_control"))
	enabled := strings.Fields(string(have))
	var add []string
	for _, c := range strings.Fields(string(b)) {
		if !slices.Contains(enabled, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := rawfile.Write(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(add, " "))); err != nil {
		// A cgroup with processes of its own cannot delegate controllers
		// (the "no internal processes" rule); say so plainly.
		return fmt.Errorf("enable controllers %s in %s: %w (a cgroup v2 parent must not hold processes itself; use an absolute linux.cgroupsPath)", strings.Join(add, " "), dir, err)
	}
	return nil
}

// v2MountPoint returns the cgroup2 mount point that dir lies under.
func (m *Manager) v2MountPoint(dir string) (string, error) {
	hs, err := m.MountedHierarchies()
	if err != nil {
		return "", err
	}
	for _, h := range hs {
		if h.V2 && (dir == h.Mountpoint || strings.HasPrefix(dir, h.Mountpoint+"/")) {
			return h.Mountpoint, nil
		}
	}
	return "", fmt.Errorf("%s is not under a cgroup2 mount", dir)
}

// AddPidDelegated moves pid into every directory of the cgroup, in
// rootless mode: a hierarchy the caller may not move pid into is dropped
// (see CreateDelegated) instead of failing. As root, the runtime's stage 0
// joins the cgroup itself (V1TasksFiles) or is born in it (OpenV2).
func (m *Manager) AddPidDelegated(pid int) error {
	p := []byte(strconv.Itoa(pid))
	for key, dir := range m.Paths {
		err := rawfile.Write(filepath.Join(dir, "cgroup.procs"), p)
		if isPermission(err) {
			m.drop(key)
			continue
		}
		if err != nil {
			return fmt.Errorf("move pid %d into cgroup %s: %w", pid, dir, err)
		}
	}
	return nil
}

// V1TasksFiles lists the tasks file of the container's cgroup in every v1
// hierarchy: a thread that writes "0" to one moves itself in.
func (m *Manager) V1TasksFiles() []string {
	var fs []string
	for key, dir := range m.Paths {
		if key != "" {
			fs = append(fs, filepath.Join(dir, "tasks"))
		}
	}
	return fs
}

// OpenV2 opens the container's cgroup2 directory, for CLONE_INTO_CGROUP.
func (m *Manager) OpenV2() (*os.File, error) {
	return os.OpenFile(m.Paths[""], os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// inheritCpuset fills an empty v1 cpuset (which refuses tasks) from its parents.
func inheritCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := rawfile.Read(filepath.Join(dir, f))
		if err != nil || strings.TrimSpace(string(b)) != "" {
			continue
		}
		if err := inheritCpuset(filepath.Dir(dir)); err != nil {
			return err
		}
		pb, err := rawfile.Read(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return fmt.Errorf("read %s of parent of %s: %w", f, dir, err)
		}
		if err := rawfile.Write(filepath.Join(dir, f), pb); err != nil {
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
		b, err := rawfile.Read(filepath.Join(p, "cgroup.procs"))
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

// Signal sends sig to every process in the cgroup. The group is frozen
// while the signals go out, as runc does, so that no process forks away
// from them and none reacts (an init exiting on SIGTERM makes the kernel
// SIGKILL the rest of its pid namespace) before all are signalled. A
// paused container stays paused, unless the signal is SIGKILL, which a
// frozen task cannot act on.
func (m *Manager) Signal(sig unix.Signal) error {
	if sig == unix.SIGKILL && m.Unified() {
		// cgroup.kill (5.14+) kills every member atomically.
		if rawfile.Write(filepath.Join(m.Paths[""], "cgroup.kill"), []byte("1")) == nil {
			return nil
		}
	}
	wasFrozen := m.FreezerState() == Frozen
	if !wasFrozen {
		_ = m.Freeze()
	}
	pids, err := m.Pids()
	for _, p := range pids {
		_ = unix.Kill(p, sig)
	}
	if !wasFrozen || sig == unix.SIGKILL {
		_ = m.Thaw()
	}
	return err
}

// Destroy removes the container's cgroup directories (children first). It
// retries while the kernel still counts exiting processes as members.
//
// Like Create, the hierarchies are handled in parallel.
func (m *Manager) Destroy() error {
	errs := make(chan error, len(m.Paths))
	for _, dir := range m.Paths {
		go func() { errs <- removeTree(dir) }()
	}
	var first error
	for range m.Paths {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
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
