package engine

import (
	"context"

	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
)

const cgroupRoot = "/sys/fs/cgroup"

// cgroupVersion is "2" on a unified hierarchy, else "1" (hybrid
// included: the controllers are v1 there).
func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

// The engine reads a container's cgroup files itself (read-only): crun
// has no `events --stats`, and the files are the same whoever made the
// cgroup.
func readUint(p string) (uint64, bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func keyed(p, key string) (uint64, bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// oomKilled reports whether the kernel's OOM killer killed a process of
// the cgroup (read before the runtime removes it).
func oomKilled(cg string) bool {
	if cgroupVersion() == "2" {
		n, _ := keyed(filepath.Join(cgroupRoot, cg, "memory.events"), "oom_kill")
		return n > 0
	}
	n, _ := keyed(filepath.Join(cgroupRoot, "memory", cg, "memory.oom_control"), "oom_kill")
	return n > 0
}

// Stats samples a running container's cgroup.
func (e *Engine) Stats(ref string) (*api.Stats, error) {
	r, err := e.get(ref)
	if err != nil {
		return nil, err
	}
	if r.State.Status != api.StateRunning && r.State.Status != api.StatePaused {
		return nil, fmt.Errorf("container %s is %s: no statistics: %w", r.Name, r.State.Status, errdefs.ErrState)
	}
	s := &api.Stats{ID: r.ID, Name: r.Name, Read: time.Now().UTC()}
	cg := r.CgroupsPath
	if cgroupVersion() == "2" {
		d := filepath.Join(cgroupRoot, cg)
		if us, ok := keyed(filepath.Join(d, "cpu.stat"), "usage_usec"); ok {
			s.CPUUsageNs = us * 1000
		}
		s.MemoryUsage, _ = readUint(filepath.Join(d, "memory.current"))
		s.MemoryLimit, _ = readUint(filepath.Join(d, "memory.max"))
		s.Pids, _ = readUint(filepath.Join(d, "pids.current"))
		s.PidsLimit, _ = readUint(filepath.Join(d, "pids.max"))
	} else {
		s.CPUUsageNs, _ = readUint(filepath.Join(cgroupRoot, "cpuacct", cg, "cpuacct.usage"))
		s.MemoryUsage, _ = readUint(filepath.Join(cgroupRoot, "memory", cg, "memory.usage_in_bytes"))
		if l, ok := readUint(filepath.Join(cgroupRoot, "memory", cg, "memory.limit_in_bytes")); ok && l < 1<<62 {
			s.MemoryLimit = l
		}
		s.Pids, _ = readUint(filepath.Join(cgroupRoot, "pids", cg, "pids.current"))
		s.PidsLimit, _ = readUint(filepath.Join(cgroupRoot, "pids", cg, "pids.max"))
	}
	return s, nil
}

// Top lists the container's processes (the runtime's `ps --format json`
// gives the pids; /proc the rest).
func (e *Engine) Top(ctx context.Context, ref string) ([]api.Process, error) {
	r, err := e.get(ref)
	if err != nil {
		return nil, err
	}
	if r.State.Status != api.StateRunning && r.State.Status != api.StatePaused {
		return nil, fmt.Errorf("container %s is %s: %w", r.Name, r.State.Status, errdefs.ErrState)
	}
	pids, err := e.runtimeOf(r).Ps(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	out := []api.Process{}
	for _, pid := range pids {
		p := api.Process{Pid: pid}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i > 0 {
				f := strings.Fields(s[i+1:])
				if len(f) > 1 {
					p.State = f[0]
					p.PPid, _ = strconv.Atoi(f[1])
				}
			}
		} else {
			continue // gone meanwhile
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "Uid:"); ok {
					if f := strings.Fields(v); len(f) > 0 {
						p.UID, _ = strconv.Atoi(f[0])
					}
				}
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			p.Command = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		}
		out = append(out, p)
	}
	return out, nil
}
