package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/errdefs"

	"github.com/warren-runtime/warren/internal/rawfile"
)

// Set applies linux.resources to the container's cgroup: on v1 to each
// controller's hierarchy, on v2 to the one directory, converting the OCI
// (v1-shaped) values as the OCI and kernel docs describe. A resource whose
// controller this host lacks is an error naming the field, never skipped.
//
// devices are the config's linux.devices: they are allowed after the device
// rules (see DeviceRules). Device rules are written only when r has some.
func (m *Manager) Set(r *specs.LinuxResources, devices []specs.LinuxDevice) error {
	if r == nil {
		return nil
	}
	w := &writer{m: m}
	if m.Unified() {
		w.v2(r)
	} else {
		w.v1(r)
	}
	if w.err != nil {
		return w.err
	}
	if len(r.Devices) > 0 {
		if m.Unified() {
			return SetDevicesV2(m.Paths[""], DeviceRules(r.Devices, devices))
		}
		return m.SetDevices(r.Devices, devices)
	}
	return nil
}

// writer collects the first error of a series of cgroup file writes.
type writer struct {
	m   *Manager
	err error
}

// write sets file in controller ctrl's directory; field names the OCI field
// for the error message.
func (w *writer) write(field, ctrl, file, value string) {
	if w.err != nil {
		return
	}
	dir := w.m.dir(ctrl)
	if dir == "" && len(w.m.skipped) > 0 {
		w.err = fmt.Errorf("%s: cannot set a limit: the %s cgroup controller is not delegated to this user (rootless mode skipped %s); delegate a writable cgroup subtree or remove the limit: %w", field, ctrl, strings.Join(w.m.Skipped(), ", "), errdefs.ErrNotSupported)
		return
	}
	if dir == "" {
		w.err = fmt.Errorf("%s: the %s cgroup controller is not available on this host: %w", field, ctrl, errdefs.ErrNotSupported)
		return
	}
	p := filepath.Join(dir, file)
	if err := rawfile.Write(p, []byte(value)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%s does not exist (controller %s not enabled for this cgroup, or not supported by this kernel)", p, ctrl)
		}
		w.err = fmt.Errorf("%s: write %q to %s: %w", field, value, p, err)
	}
}

func (w *writer) has(ctrl, file string) bool {
	d := w.m.dir(ctrl)
	if d == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(d, file))
	return err == nil
}

func itoa(v int64) string          { return strconv.FormatInt(v, 10) }
func utoa(v uint64) string         { return strconv.FormatUint(v, 10) }
func devKey(maj, min int64) string { return itoa(maj) + ":" + itoa(min) }

// ---- cgroup v1 ----

func (w *writer) v1(r *specs.LinuxResources) {
	if c := r.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 {
			w.write("linux.resources.cpu.shares", "cpu", "cpu.shares", utoa(*c.Shares))
		}
		if c.Period != nil && *c.Period != 0 {
			w.write("linux.resources.cpu.period", "cpu", "cpu.cfs_period_us", utoa(*c.Period))
		}
		if c.Quota != nil && *c.Quota != 0 {
			w.write("linux.resources.cpu.quota", "cpu", "cpu.cfs_quota_us", itoa(*c.Quota))
		}
		if c.Burst != nil {
			w.write("linux.resources.cpu.burst", "cpu", "cpu.cfs_burst_us", utoa(*c.Burst))
		}
		if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
			w.write("linux.resources.cpu.realtimePeriod", "cpu", "cpu.rt_period_us", utoa(*c.RealtimePeriod))
		}
		if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
			w.write("linux.resources.cpu.realtimeRuntime", "cpu", "cpu.rt_runtime_us", itoa(*c.RealtimeRuntime))
		}
		if c.Idle != nil {
			w.write("linux.resources.cpu.idle", "cpu", "cpu.idle", itoa(*c.Idle))
		}
		if c.Cpus != "" {
			w.write("linux.resources.cpu.cpus", "cpuset", "cpuset.cpus", c.Cpus)
		}
		if c.Mems != "" {
			w.write("linux.resources.cpu.mems", "cpuset", "cpuset.mems", c.Mems)
		}
	}
	if mem := r.Memory; mem != nil {
		w.v1Memory(mem)
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		v := "max"
		if *p.Limit > 0 {
			v = itoa(*p.Limit)
		}
		w.write("linux.resources.pids.limit", "pids", "pids.max", v)
	}
	if b := r.BlockIO; b != nil {
		weightFile := "blkio.weight"
		if !w.has("blkio", weightFile) && w.has("blkio", "blkio.bfq.weight") {
			weightFile = "blkio.bfq.weight"
		}
		if b.Weight != nil && *b.Weight != 0 {
			w.write("linux.resources.blockIO.weight", "blkio", weightFile, utoa(uint64(*b.Weight)))
		}
		if b.LeafWeight != nil && *b.LeafWeight != 0 {
			w.write("linux.resources.blockIO.leafWeight", "blkio", "blkio.leaf_weight", utoa(uint64(*b.LeafWeight)))
		}
		for i, d := range b.WeightDevice {
			if d.Weight != nil {
				w.write(fmt.Sprintf("linux.resources.blockIO.weightDevice[%d]", i), "blkio", weightFile+"_device", devKey(d.Major, d.Minor)+" "+utoa(uint64(*d.Weight)))
			}
		}
		for _, t := range []struct {
			field, file string
			list        []specs.LinuxThrottleDevice
		}{
			{"throttleReadBpsDevice", "blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
			{"throttleWriteBpsDevice", "blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
			{"throttleReadIOPSDevice", "blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
			{"throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
		} {
			for i, d := range t.list {
				w.write(fmt.Sprintf("linux.resources.blockIO.%s[%d]", t.field, i), "blkio", t.file, devKey(d.Major, d.Minor)+" "+utoa(d.Rate))
			}
		}
	}
	for i, h := range r.HugepageLimits {
		w.write(fmt.Sprintf("linux.resources.hugepageLimits[%d]", i), "hugetlb", "hugetlb."+h.Pagesize+".limit_in_bytes", utoa(h.Limit))
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			w.write("linux.resources.network.classID", "net_cls", "net_cls.classid", utoa(uint64(*n.ClassID)))
		}
		for i, p := range n.Priorities {
			w.write(fmt.Sprintf("linux.resources.network.priorities[%d]", i), "net_prio", "net_prio.ifpriomap", p.Name+" "+utoa(uint64(p.Priority)))
		}
	}
	if len(r.Unified) > 0 && w.err == nil {
		w.err = fmt.Errorf("linux.resources.unified: needs a cgroup v2 host (this one is v1 or hybrid): %w", errdefs.ErrNotSupported)
	}
}

func (w *writer) v1Memory(mem *specs.LinuxMemory) {
	set := func(p *int64) bool { return p != nil && *p != 0 }
	limit := func() {
		if set(mem.Limit) {
			w.write("linux.resources.memory.limit", "memory", "memory.limit_in_bytes", itoa(*mem.Limit))
		}
	}
	swap := func() {
		if set(mem.Swap) {
			w.write("linux.resources.memory.swap", "memory", "memory.memsw.limit_in_bytes", itoa(*mem.Swap))
		}
	}
	// The kernel keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes
	// at every step: raise memsw before the limit, lower the limit first.
	if set(mem.Swap) && (*mem.Swap == -1 || *mem.Swap > w.readV1Int("memory.memsw.limit_in_bytes")) {
		swap()
		limit()
	} else {
		limit()
		swap()
	}
	if set(mem.Reservation) {
		w.write("linux.resources.memory.reservation", "memory", "memory.soft_limit_in_bytes", itoa(*mem.Reservation))
	}
	if mem.Swappiness != nil {
		w.write("linux.resources.memory.swappiness", "memory", "memory.swappiness", utoa(*mem.Swappiness))
	}
	if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
		w.write("linux.resources.memory.disableOOMKiller", "memory", "memory.oom_control", "1")
	}
}

// readV1Int reads an integer file of the memory controller (0 when unknown).
func (w *writer) readV1Int(file string) int64 {
	b, err := rawfile.Read(filepath.Join(w.m.dir("memory"), file))
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// ---- cgroup v2 ----

// CPUSharesToWeight maps v1 cpu.shares [2, 262144] onto v2 cpu.weight
// [1, 10000] linearly, the conversion the OCI runtimes agree on.
func CPUSharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares <= 2 {
		return 1
	}
	if shares >= 262144 {
		return 10000
	}
	return 1 + ((shares-2)*9999)/262142
}

// BlkioWeightToIOWeight maps v1 blkio.weight [10, 1000] onto io.weight [1, 10000].
func BlkioWeightToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	return 1 + (uint64(w)-10)*9999/990
}

func (w *writer) v2(r *specs.LinuxResources) {
	if c := r.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 {
			w.write("linux.resources.cpu.shares", "cpu", "cpu.weight", utoa(CPUSharesToWeight(*c.Shares)))
		}
		if c.Quota != nil && *c.Quota != 0 || c.Period != nil && *c.Period != 0 {
			quota := "max"
			if c.Quota != nil && *c.Quota > 0 {
				quota = itoa(*c.Quota)
			}
			period := uint64(100000)
			if c.Period != nil && *c.Period != 0 {
				period = *c.Period
			}
			w.write("linux.resources.cpu.quota", "cpu", "cpu.max", quota+" "+utoa(period))
		}
		if c.Burst != nil {
			w.write("linux.resources.cpu.burst", "cpu", "cpu.max.burst", utoa(*c.Burst))
		}
		if c.Idle != nil {
			w.write("linux.resources.cpu.idle", "cpu", "cpu.idle", itoa(*c.Idle))
		}
		if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 || c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
			if w.err == nil {
				w.err = fmt.Errorf("linux.resources.cpu.realtimeRuntime: realtime CPU limits do not exist on cgroup v2: %w", errdefs.ErrNotSupported)
			}
		}
		if c.Cpus != "" {
			w.write("linux.resources.cpu.cpus", "cpuset", "cpuset.cpus", c.Cpus)
		}
		if c.Mems != "" {
			w.write("linux.resources.cpu.mems", "cpuset", "cpuset.mems", c.Mems)
		}
	}
	if mem := r.Memory; mem != nil {
		max := func(v int64) string {
			if v == -1 {
				return "max"
			}
			return itoa(v)
		}
		if mem.Swap != nil && *mem.Swap != 0 {
			// OCI swap is memory+swap (v1 memsw); v2 limits swap alone.
			swap := "max"
			if *mem.Swap != -1 {
				if mem.Limit == nil || *mem.Limit <= 0 {
					if w.err == nil {
						w.err = fmt.Errorf("linux.resources.memory.swap: on cgroup v2 a swap limit needs memory.limit too (swap is memory+swap): %w", errdefs.ErrInvalid)
					}
					return
				}
				if *mem.Swap < *mem.Limit {
					if w.err == nil {
						w.err = fmt.Errorf("linux.resources.memory.swap: %d is below memory.limit %d (swap is memory+swap): %w", *mem.Swap, *mem.Limit, errdefs.ErrInvalid)
					}
					return
				}
				swap = itoa(*mem.Swap - *mem.Limit)
			}
			if mem.Limit != nil && *mem.Limit != 0 {
				w.write("linux.resources.memory.limit", "memory", "memory.max", max(*mem.Limit))
			}
			w.write("linux.resources.memory.swap", "memory", "memory.swap.max", swap)
		} else if mem.Limit != nil && *mem.Limit != 0 {
			w.write("linux.resources.memory.limit", "memory", "memory.max", max(*mem.Limit))
		}
		if mem.Reservation != nil && *mem.Reservation != 0 {
			w.write("linux.resources.memory.reservation", "memory", "memory.low", max(*mem.Reservation))
		}
		if mem.Swappiness != nil && *mem.Swappiness != 0 && w.err == nil {
			w.err = fmt.Errorf("linux.resources.memory.swappiness: there is no per-cgroup swappiness on cgroup v2: %w", errdefs.ErrNotSupported)
		}
		if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller && w.err == nil {
			w.err = fmt.Errorf("linux.resources.memory.disableOOMKiller: the OOM killer cannot be disabled on cgroup v2: %w", errdefs.ErrNotSupported)
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		v := "max"
		if *p.Limit > 0 {
			v = itoa(*p.Limit)
		}
		w.write("linux.resources.pids.limit", "pids", "pids.max", v)
	}
	if b := r.BlockIO; b != nil {
		if b.Weight != nil && *b.Weight != 0 {
			w.write("linux.resources.blockIO.weight", "io", "io.weight", "default "+utoa(BlkioWeightToIOWeight(*b.Weight)))
		}
		for i, d := range b.WeightDevice {
			if d.Weight != nil {
				w.write(fmt.Sprintf("linux.resources.blockIO.weightDevice[%d]", i), "io", "io.weight", devKey(d.Major, d.Minor)+" "+utoa(BlkioWeightToIOWeight(*d.Weight)))
			}
		}
		for _, t := range []struct {
			field, key string
			list       []specs.LinuxThrottleDevice
		}{
			{"throttleReadBpsDevice", "rbps", b.ThrottleReadBpsDevice},
			{"throttleWriteBpsDevice", "wbps", b.ThrottleWriteBpsDevice},
			{"throttleReadIOPSDevice", "riops", b.ThrottleReadIOPSDevice},
			{"throttleWriteIOPSDevice", "wiops", b.ThrottleWriteIOPSDevice},
		} {
			for i, d := range t.list {
				w.write(fmt.Sprintf("linux.resources.blockIO.%s[%d]", t.field, i), "io", "io.max", devKey(d.Major, d.Minor)+" "+t.key+"="+utoa(d.Rate))
			}
		}
	}
	for i, h := range r.HugepageLimits {
		w.write(fmt.Sprintf("linux.resources.hugepageLimits[%d]", i), "hugetlb", "hugetlb."+h.Pagesize+".max", utoa(h.Limit))
	}
	if n := r.Network; n != nil && (n.ClassID != nil || len(n.Priorities) > 0) && w.err == nil {
		w.err = fmt.Errorf("linux.resources.network: net_cls and net_prio do not exist on cgroup v2: %w", errdefs.ErrNotSupported)
	}
	keys := make([]string, 0, len(r.Unified))
	for k := range r.Unified {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.ContainsAny(k, "/") || k == "" || k == "." || k == ".." || strings.HasPrefix(k, "cgroup.") && k != "cgroup.max.depth" && k != "cgroup.max.descendants" {
			if w.err == nil {
				w.err = fmt.Errorf("linux.resources.unified[%q]: not a settable cgroup v2 file: %w", k, errdefs.ErrInvalid)
			}
			return
		}
		ctrl, _, _ := strings.Cut(k, ".")
		w.write(fmt.Sprintf("linux.resources.unified[%q]", k), ctrl, k, r.Unified[k])
	}
}
