package cgroups

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/warren-runtime/warren/internal/rawfile"
)

// Stats is the "data" of a `warren events` stats event: the shape runc
// prints (containerd and other tools parse it).
type Stats struct {
	CPU               CPU                `json:"cpu"`
	CPUSet            CPUSet             `json:"cpuset"`
	Memory            Memory             `json:"memory"`
	Pids              Pids               `json:"pids"`
	Blkio             Blkio              `json:"blkio"`
	Hugetlb           map[string]Hugetlb `json:"hugetlb"`
	IntelRdt          struct{}           `json:"intel_rdt"`
	NetworkInterfaces []struct{}         `json:"network_interfaces"`
}

type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
	IoQueuedRecursive       []BlkioEntry `json:"ioQueueRecursive,omitempty"`
	IoServiceTimeRecursive  []BlkioEntry `json:"ioServiceTimeRecursive,omitempty"`
	IoWaitTimeRecursive     []BlkioEntry `json:"ioWaitTimeRecursive,omitempty"`
	IoMergedRecursive       []BlkioEntry `json:"ioMergedRecursive,omitempty"`
	IoTimeRecursive         []BlkioEntry `json:"ioTimeRecursive,omitempty"`
	SectorsRecursive        []BlkioEntry `json:"sectorsRecursive,omitempty"`
}

type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

type CPUUsage struct {
	Total  uint64   `json:"total,omitempty"` // nanoseconds
	Percpu []uint64 `json:"percpu,omitempty"`
	Kernel uint64   `json:"kernel"`
	User   uint64   `json:"user"`
}

type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
}

type CPUSet struct {
	CPUs []uint16 `json:"cpus,omitempty"`
	Mems []uint16 `json:"mems,omitempty"`
}

type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// MemoryEventCount holds the v2 memory.events counters (oom_kill also on v1).
type MemoryEventCount struct {
	Low     uint64 `json:"low,omitempty"`
	High    uint64 `json:"high,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	OOM     uint64 `json:"oom,omitempty"`
	OOMKill uint64 `json:"oom_kill,omitempty"`
}

type Memory struct {
	Cache      uint64            `json:"cache,omitempty"`
	Usage      MemoryEntry       `json:"usage,omitempty"`
	Swap       MemoryEntry       `json:"swap,omitempty"`
	Kernel     MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP  MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw        map[string]uint64 `json:"raw,omitempty"`
	EventCount MemoryEventCount  `json:"event_count"`
}

// readUint reads a single-value file; "max" reads as the largest value.
func readUint(dir, file string) uint64 {
	if dir == "" {
		return 0
	}
	b, err := rawfile.Read(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return math.MaxUint64
	}
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// readKV reads a "key value" per line file (cpu.stat, memory.stat, ...).
func readKV(dir, file string) map[string]uint64 {
	m := map[string]uint64{}
	if dir == "" {
		return m
	}
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

// parseList parses a cpuset list such as "0-3,7".
func parseList(s string) []uint16 {
	var out []uint16
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil {
				continue
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, uint16(i))
		}
	}
	return out
}

func readString(dir, file string) string {
	if dir == "" {
		return ""
	}
	b, _ := rawfile.Read(filepath.Join(dir, file))
	return string(b)
}

// Stats reads the container's current statistics.
func (m *Manager) Stats() *Stats {
	st := &Stats{Hugetlb: map[string]Hugetlb{}}
	if m.Unified() {
		m.statsV2(st)
	} else {
		m.statsV1(st)
	}
	return st
}

const userHZ = 100 // USER_HZ: cpuacct.stat counts in these ticks

func (m *Manager) statsV1(st *Stats) {
	acct := m.dir("cpuacct")
	st.CPU.Usage.Total = readUint(acct, "cpuacct.usage")
	for _, f := range strings.Fields(readString(acct, "cpuacct.usage_percpu")) {
		v, _ := strconv.ParseUint(f, 10, 64)
		st.CPU.Usage.Percpu = append(st.CPU.Usage.Percpu, v)
	}
	as := readKV(acct, "cpuacct.stat")
	st.CPU.Usage.User = as["user"] * (1e9 / userHZ)
	st.CPU.Usage.Kernel = as["system"] * (1e9 / userHZ)
	cs := readKV(m.dir("cpu"), "cpu.stat")
	st.CPU.Throttling = Throttling{Periods: cs["nr_periods"], ThrottledPeriods: cs["nr_throttled"], ThrottledTime: cs["throttled_time"]}

	cpuset := m.dir("cpuset")
	st.CPUSet.CPUs = parseList(readString(cpuset, "cpuset.cpus"))
	st.CPUSet.Mems = parseList(readString(cpuset, "cpuset.mems"))

	mem := m.dir("memory")
	entry := func(prefix string) MemoryEntry {
		return MemoryEntry{
			Limit: readUint(mem, prefix+".limit_in_bytes"), Usage: readUint(mem, prefix+".usage_in_bytes"),
			Max: readUint(mem, prefix+".max_usage_in_bytes"), Failcnt: readUint(mem, prefix+".failcnt"),
		}
	}
	if mem != "" {
		st.Memory.Usage = entry("memory")
		st.Memory.Swap = entry("memory.memsw")
		st.Memory.Kernel = entry("memory.kmem")
		st.Memory.KernelTCP = entry("memory.kmem.tcp")
		st.Memory.Raw = readKV(mem, "memory.stat")
		st.Memory.Cache = st.Memory.Raw["cache"]
		st.Memory.EventCount.OOMKill = readKV(mem, "memory.oom_control")["oom_kill"]
	}
	pids := m.dir("pids")
	st.Pids = Pids{Current: readUint(pids, "pids.current"), Limit: readUint(pids, "pids.max")}

	blkio := m.dir("blkio")
	st.Blkio.IoServiceBytesRecursive = parseBlkio(readString(blkio, "blkio.throttle.io_service_bytes_recursive"))
	st.Blkio.IoServicedRecursive = parseBlkio(readString(blkio, "blkio.throttle.io_serviced_recursive"))

	if h := m.dir("hugetlb"); h != "" {
		ents, _ := os.ReadDir(h)
		for _, e := range ents {
			size, ok := strings.CutPrefix(e.Name(), "hugetlb.")
			if !ok || !strings.HasSuffix(size, ".usage_in_bytes") || strings.Contains(size, ".rsvd.") {
				continue
			}
			size = strings.TrimSuffix(size, ".usage_in_bytes")
			st.Hugetlb[size] = Hugetlb{
				Usage: readUint(h, "hugetlb."+size+".usage_in_bytes"), Max: readUint(h, "hugetlb."+size+".max_usage_in_bytes"),
				Failcnt: readUint(h, "hugetlb."+size+".failcnt"),
			}
		}
	}
}

// parseBlkio parses v1 "maj:min Op value" lines.
func parseBlkio(s string) []BlkioEntry {
	var out []BlkioEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		e := BlkioEntry{Op: f[1]}
		e.Major, _ = strconv.ParseUint(maj, 10, 64)
		e.Minor, _ = strconv.ParseUint(min, 10, 64)
		e.Value, _ = strconv.ParseUint(f[2], 10, 64)
		out = append(out, e)
	}
	return out
}

func (m *Manager) statsV2(st *Stats) {
	dir := m.Paths[""]
	cs := readKV(dir, "cpu.stat")
	st.CPU.Usage.Total = cs["usage_usec"] * 1000
	st.CPU.Usage.User = cs["user_usec"] * 1000
	st.CPU.Usage.Kernel = cs["system_usec"] * 1000
	st.CPU.Throttling = Throttling{Periods: cs["nr_periods"], ThrottledPeriods: cs["nr_throttled"], ThrottledTime: cs["throttled_usec"] * 1000}

	st.CPUSet.CPUs = parseList(readString(dir, "cpuset.cpus.effective"))
	st.CPUSet.Mems = parseList(readString(dir, "cpuset.mems.effective"))

	st.Memory.Raw = readKV(dir, "memory.stat")
	st.Memory.Cache = st.Memory.Raw["file"]
	ev := readKV(dir, "memory.events")
	st.Memory.Usage = MemoryEntry{Limit: readUint(dir, "memory.max"), Usage: readUint(dir, "memory.current"), Max: readUint(dir, "memory.peak"), Failcnt: ev["max"]}
	st.Memory.Swap = MemoryEntry{Limit: readUint(dir, "memory.swap.max"), Usage: readUint(dir, "memory.swap.current"), Max: readUint(dir, "memory.swap.peak")}
	st.Memory.EventCount = MemoryEventCount{Low: ev["low"], High: ev["high"], Max: ev["max"], OOM: ev["oom"], OOMKill: ev["oom_kill"]}

	st.Pids = Pids{Current: readUint(dir, "pids.current"), Limit: readUint(dir, "pids.max")}

	// io.stat: "maj:min rbytes=N wbytes=N rios=N wios=N ..."
	for _, line := range strings.Split(readString(dir, "io.stat"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		maj, min, _ := strings.Cut(f[0], ":")
		ma, _ := strconv.ParseUint(maj, 10, 64)
		mi, _ := strconv.ParseUint(min, 10, 64)
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			e := BlkioEntry{Major: ma, Minor: mi, Value: n}
			switch k {
			case "rbytes":
				e.Op = "Read"
				st.Blkio.IoServiceBytesRecursive = append(st.Blkio.IoServiceBytesRecursive, e)
			case "wbytes":
				e.Op = "Write"
				st.Blkio.IoServiceBytesRecursive = append(st.Blkio.IoServiceBytesRecursive, e)
			case "rios":
				e.Op = "Read"
				st.Blkio.IoServicedRecursive = append(st.Blkio.IoServicedRecursive, e)
			case "wios":
				e.Op = "Write"
				st.Blkio.IoServicedRecursive = append(st.Blkio.IoServicedRecursive, e)
			}
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		size, ok := strings.CutPrefix(e.Name(), "hugetlb.")
		if !ok || !strings.HasSuffix(size, ".current") || strings.Contains(size, ".rsvd.") {
			continue
		}
		size = strings.TrimSuffix(size, ".current")
		st.Hugetlb[size] = Hugetlb{Usage: readUint(dir, "hugetlb."+size+".current"), Max: readUint(dir, "hugetlb."+size+".max"),
			Failcnt: readKV(dir, "hugetlb."+size+".events")["max"]}
	}
}

// PidsLimitHits returns how many times a fork or clone in the container's
// cgroup failed on its pids limit (pids.events "max", v1 and v2).
func (m *Manager) PidsLimitHits() uint64 {
	if m.Unified() {
		return readKV(m.Paths[""], "pids.events")["max"]
	}
	return readKV(m.dir("pids"), "pids.events")["max"]
}

// OOMKillCount returns how many processes the OOM killer has killed in the
// container's cgroup (v2 memory.events, v1 memory.oom_control).
func (m *Manager) OOMKillCount() uint64 {
	if m.Unified() {
		return readKV(m.Paths[""], "memory.events")["oom_kill"]
	}
	return readKV(m.dir("memory"), "memory.oom_control")["oom_kill"]
}
