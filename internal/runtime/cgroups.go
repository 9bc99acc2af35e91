package runtime

import (
	"fmt"
	"log/slog"

	json "github.com/go-json-experiment/json/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/cgroups"
	"github.com/warren-runtime/warren/internal/errdefs"
)

// Pause freezes every process of a running container.
func (c *Container) Pause() error {
	if err := c.check("pause"); err != nil {
		return fmt.Errorf("container %s is not running: %w", c.id, errdefs.ErrState)
	}
	m := c.cgroup()
	if m == nil {
		return fmt.Errorf("container %s has no cgroup to freeze: %w", c.id, errdefs.ErrNotSupported)
	}
	if err := m.Freeze(); err != nil {
		return fmt.Errorf("pause %s: %w", c.id, err)
	}
	return nil
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if err := c.check("resume"); err != nil {
		return fmt.Errorf("container %s is not paused: %w", c.id, errdefs.ErrState)
	}
	if err := c.cgroup().Thaw(); err != nil {
		return fmt.Errorf("resume %s: %w", c.id, err)
	}
	return nil
}

// Update applies new resource limits to a live container and records them.
// Device rules are not updatable (as in runc).
func (c *Container) Update(r *specs.LinuxResources) error {
	if err := c.check("update"); err != nil {
		return fmt.Errorf("container %s is not running: %w", c.id, errdefs.ErrState)
	}
	if r.Devices != nil {
		// runc ignores them too, and CRI always sends them.
		slog.Warn("update: linux.resources.devices ignored: device rules cannot be updated", "id", c.id)
		cp := *r
		cp.Devices = nil
		r = &cp
	}
	m := c.cgroup()
	if m == nil {
		return fmt.Errorf("container %s has no cgroup: %w", c.id, errdefs.ErrNotSupported)
	}
	cur, err := c.state.resources()
	if err != nil {
		return err
	}
	merged := MergeResources(cur, r)
	apply := *merged
	apply.Devices = nil
	if err := m.Set(&apply, nil); err != nil {
		return fmt.Errorf("update %s: %w", c.id, err)
	}
	if c.state.Resources, err = json.Marshal(merged); err != nil {
		return err
	}
	return writeStateFile(c.dir, c.state)
}

// Stats returns the container's cgroup statistics.
func (c *Container) Stats() (*cgroups.Stats, error) {
	m := c.cgroup()
	if m == nil {
		return nil, fmt.Errorf("container %s has no cgroup: %w", c.id, errdefs.ErrNotSupported)
	}
	return m.Stats(), nil
}

// OOMKillCount reports how many of the container's processes the OOM
// killer has killed so far.
func (c *Container) OOMKillCount() uint64 {
	if m := c.cgroup(); m != nil {
		return m.OOMKillCount()
	}
	return 0
}

// OOMKillCountOf is OOMKillCount for a state read without the lock.
func OOMKillCountOf(st *State) uint64 {
	if len(st.CgroupPaths) == 0 {
		return 0
	}
	m := cgroups.Manager{Paths: st.CgroupPaths}
	return m.OOMKillCount()
}

// MergeResources returns base with every field that u sets replaced.
func MergeResources(base, u *specs.LinuxResources) *specs.LinuxResources {
	out := &specs.LinuxResources{}
	if base != nil {
		cp := *base
		out = &cp
	}
	if u == nil {
		return out
	}
	if c := u.CPU; c != nil {
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		} else {
			cp := *out.CPU
			out.CPU = &cp
		}
		o := out.CPU
		setU(&o.Shares, c.Shares)
		setI(&o.Quota, c.Quota)
		setU(&o.Burst, c.Burst)
		setU(&o.Period, c.Period)
		setI(&o.RealtimeRuntime, c.RealtimeRuntime)
		setU(&o.RealtimePeriod, c.RealtimePeriod)
		setI(&o.Idle, c.Idle)
		if c.Cpus != "" {
			o.Cpus = c.Cpus
		}
		if c.Mems != "" {
			o.Mems = c.Mems
		}
	}
	if mm := u.Memory; mm != nil {
		if out.Memory == nil {
			out.Memory = &specs.LinuxMemory{}
		} else {
			cp := *out.Memory
			out.Memory = &cp
		}
		o := out.Memory
		setI(&o.Limit, mm.Limit)
		setI(&o.Reservation, mm.Reservation)
		setI(&o.Swap, mm.Swap)
		setU(&o.Swappiness, mm.Swappiness)
		if mm.DisableOOMKiller != nil {
			o.DisableOOMKiller = mm.DisableOOMKiller
		}
	}
	if p := u.Pids; p != nil && p.Limit != nil {
		out.Pids = &specs.LinuxPids{Limit: p.Limit}
	}
	if b := u.BlockIO; b != nil {
		if out.BlockIO == nil {
			out.BlockIO = &specs.LinuxBlockIO{}
		} else {
			cp := *out.BlockIO
			out.BlockIO = &cp
		}
		o := out.BlockIO
		if b.Weight != nil {
			o.Weight = b.Weight
		}
		if b.LeafWeight != nil {
			o.LeafWeight = b.LeafWeight
		}
		if b.WeightDevice != nil {
			o.WeightDevice = b.WeightDevice
		}
		if b.ThrottleReadBpsDevice != nil {
			o.ThrottleReadBpsDevice = b.ThrottleReadBpsDevice
		}
		if b.ThrottleWriteBpsDevice != nil {
			o.ThrottleWriteBpsDevice = b.ThrottleWriteBpsDevice
		}
		if b.ThrottleReadIOPSDevice != nil {
			o.ThrottleReadIOPSDevice = b.ThrottleReadIOPSDevice
		}
		if b.ThrottleWriteIOPSDevice != nil {
			o.ThrottleWriteIOPSDevice = b.ThrottleWriteIOPSDevice
		}
	}
	if u.HugepageLimits != nil {
		out.HugepageLimits = u.HugepageLimits
	}
	if u.Network != nil {
		out.Network = u.Network
	}
	if len(u.Unified) > 0 {
		m := map[string]string{}
		for k, v := range out.Unified {
			m[k] = v
		}
		for k, v := range u.Unified {
			m[k] = v
		}
		out.Unified = m
	}
	return out
}

func setU(dst **uint64, v *uint64) {
	if v != nil {
		*dst = v
	}
}

func setI(dst **int64, v *int64) {
	if v != nil {
		*dst = v
	}
}
