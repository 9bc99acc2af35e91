package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/errdefs"
)

func i64p(v int64) *int64   { return &v }
func u64p(v uint64) *uint64 { return &v }
func u16p(v uint16) *uint16 { return &v }

// fixture makes cgroup directories with empty files, like a cgroupfs whose
// controllers offer exactly those files.
func fixture(t *testing.T, files map[string][]string) map[string]string {
	t.Helper()
	root := t.TempDir()
	paths := map[string]string{}
	for key, names := range files {
		dir := filepath.Join(root, strings.ReplaceAll(key, ",", "_")+"x", "ctr")
		if key == "" {
			dir = filepath.Join(root, "unified", "ctr")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		paths[key] = dir
	}
	return paths
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSetV1(t *testing.T) {
	paths := fixture(t, map[string][]string{
		"cpu":     {"cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us", "cpu.idle"},
		"cpuset":  {"cpuset.cpus", "cpuset.mems"},
		"memory":  {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.swappiness", "memory.oom_control"},
		"pids":    {"pids.max"},
		"blkio":   {"blkio.weight", "blkio.weight_device", "blkio.throttle.read_bps_device"},
		"devices": {"devices.allow", "devices.deny"},
	})
	m := &Manager{Paths: paths}
	r := &specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Shares: u64p(512), Quota: i64p(50000), Period: u64p(100000), Burst: u64p(1000), Idle: i64p(1), Cpus: "0-1", Mems: "0"},
		Memory: &specs.LinuxMemory{Limit: i64p(64 << 20), Swap: i64p(128 << 20), Reservation: i64p(32 << 20), Swappiness: u64p(10), DisableOOMKiller: ptrBool(true)},
		Pids:   &specs.LinuxPids{Limit: i64p(0)},
		BlockIO: &specs.LinuxBlockIO{Weight: u16p(300),
			ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}}},
	}
	if err := m.Set(r, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, file, want string }{
		{"cpu", "cpu.shares", "512"}, {"cpu", "cpu.cfs_period_us", "100000"}, {"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_burst_us", "1000"}, {"cpu", "cpu.idle", "1"},
		{"cpuset", "cpuset.cpus", "0-1"}, {"cpuset", "cpuset.mems", "0"},
		{"memory", "memory.limit_in_bytes", "67108864"}, {"memory", "memory.memsw.limit_in_bytes", "134217728"},
		{"memory", "memory.soft_limit_in_bytes", "33554432"}, {"memory", "memory.swappiness", "10"}, {"memory", "memory.oom_control", "1"},
		{"pids", "pids.max", "max"},
		{"blkio", "blkio.weight", "300"}, {"blkio", "blkio.throttle.read_bps_device", "8:0 1048576"},
	} {
		if got := read(t, paths[c.key], c.file); got != c.want {
			t.Errorf("%s/%s = %q, want %q", c.key, c.file, got, c.want)
		}
	}
	// No device rules in r: the devices files stay untouched.
	if got := read(t, paths["devices"], "devices.deny"); got != "" {
		t.Errorf("devices.deny written without rules: %q", got)
	}
}

func ptrBool(b bool) *bool { return &b }

func TestSetV1MissingController(t *testing.T) {
	m := &Manager{Paths: fixture(t, map[string][]string{"memory": {"memory.limit_in_bytes"}})}
	err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}}}, nil)
	if !errors.Is(err, errdefs.ErrNotSupported) || !strings.Contains(err.Error(), "linux.resources.hugepageLimits[0]") || !strings.Contains(err.Error(), "hugetlb") {
		t.Errorf("hugetlb without the controller: %v", err)
	}
	// The controller is there but the file is not (e.g. no swap accounting).
	err = m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(1 << 20), Swap: i64p(2 << 20)}}, nil)
	if err == nil || !strings.Contains(err.Error(), "linux.resources.memory.swap") {
		t.Errorf("swap without memsw file: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(m.Paths["memory"], "memory.memsw.limit_in_bytes")); statErr == nil {
		t.Error("a missing cgroup file was created")
	}
	err = m.Set(&specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, nil)
	if !errors.Is(err, errdefs.ErrNotSupported) {
		t.Errorf("unified on v1: %v", err)
	}
}

func TestSetV2(t *testing.T) {
	paths := fixture(t, map[string][]string{"": {
		"cpu.weight", "cpu.max", "cpu.max.burst", "cpuset.cpus", "memory.max", "memory.swap.max", "memory.low",
		"pids.max", "io.weight", "io.max", "hugetlb.2MB.max", "memory.high",
	}})
	m := &Manager{Paths: paths}
	dir := paths[""]
	r := &specs.LinuxResources{
		CPU:            &specs.LinuxCPU{Shares: u64p(1024), Quota: i64p(-1), Burst: u64p(500), Cpus: "0"},
		Memory:         &specs.LinuxMemory{Limit: i64p(64 << 20), Swap: i64p(96 << 20), Reservation: i64p(-1)},
		Pids:           &specs.LinuxPids{Limit: i64p(42)},
		BlockIO:        &specs.LinuxBlockIO{Weight: u16p(1000)},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		Unified:        map[string]string{"memory.high": "50M"},
	}
	if err := m.Set(r, nil); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"cpu.weight": "39", "cpu.max": "max 100000", "cpu.max.burst": "500", "cpuset.cpus": "0",
		"memory.max": "67108864", "memory.swap.max": "33554432", "memory.low": "max",
		"pids.max": "42", "io.weight": "default 10000", "hugetlb.2MB.max": "4194304", "memory.high": "50M",
	} {
		if got := read(t, dir, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	for name, bad := range map[string]*specs.LinuxResources{
		"linux.resources.memory.swappiness":       {Memory: &specs.LinuxMemory{Swappiness: u64p(5)}},
		"linux.resources.memory.disableOOMKiller": {Memory: &specs.LinuxMemory{DisableOOMKiller: ptrBool(true)}},
		"linux.resources.cpu.realtimeRuntime":     {CPU: &specs.LinuxCPU{RealtimeRuntime: i64p(1000)}},
		"linux.resources.network":                 {Network: &specs.LinuxNetwork{ClassID: func() *uint32 { v := uint32(1); return &v }()}},
		`linux.resources.unified["../x"]`:         {Unified: map[string]string{"../x": "1"}},
		`linux.resources.unified["cgroup.procs"]`: {Unified: map[string]string{"cgroup.procs": "1"}},
		`linux.resources.unified["io.latency"]`:   {Unified: map[string]string{"io.latency": "1"}},
	} {
		if err := m.Set(bad, nil); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want an error naming it", name, err)
		}
	}
}

func TestConversions(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 0, 2: 1, 1024: 39, 262144: 10000, 500000: 10000} {
		if got := CPUSharesToWeight(shares); got != want {
			t.Errorf("CPUSharesToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	for w, want := range map[uint16]uint64{0: 0, 10: 1, 1000: 10000, 500: 4950} {
		if got := BlkioWeightToIOWeight(w); got != want {
			t.Errorf("BlkioWeightToIOWeight(%d) = %d, want %d", w, got, want)
		}
	}
}

func TestFreezerFixtureV1(t *testing.T) {
	paths := fixture(t, map[string][]string{"freezer": {"freezer.state"}})
	m := &Manager{Paths: paths}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if m.FreezerState() != Frozen {
		t.Errorf("state after Freeze: %q", m.FreezerState())
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if m.FreezerState() != Thawed {
		t.Errorf("state after Thaw: %q", m.FreezerState())
	}
	if err := (&Manager{Paths: fixture(t, map[string][]string{"pids": {"pids.max"}})}).Freeze(); !errors.Is(err, ErrNoFreezer) {
		t.Errorf("Freeze without freezer: %v", err)
	}
}

func TestStatsFixtureV2(t *testing.T) {
	paths := fixture(t, map[string][]string{"": {}})
	dir := paths[""]
	for name, content := range map[string]string{
		"cpu.stat":       "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 2\nthrottled_usec 30\n",
		"memory.current": "4096\n", "memory.max": "max\n", "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
		"memory.stat": "anon 100\nfile 200\n", "pids.current": "3\n", "pids.max": "10\n",
		"io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n", "cpuset.cpus.effective": "0-2,5\n",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	m := &Manager{Paths: paths}
	st := m.Stats()
	if st.CPU.Usage.Total != 1500000 || st.CPU.Usage.User != 1000000 || st.CPU.Throttling.ThrottledTime != 30000 {
		t.Errorf("cpu %+v", st.CPU)
	}
	if st.Memory.Usage.Usage != 4096 || st.Memory.Cache != 200 || st.Memory.EventCount.OOMKill != 1 || st.Memory.Usage.Limit != ^uint64(0) {
		t.Errorf("memory %+v", st.Memory)
	}
	if st.Pids.Current != 3 || st.Pids.Limit != 10 {
		t.Errorf("pids %+v", st.Pids)
	}
	if len(st.Blkio.IoServiceBytesRecursive) != 2 || st.Blkio.IoServiceBytesRecursive[1].Value != 20 || st.Blkio.IoServiceBytesRecursive[1].Op != "Write" {
		t.Errorf("blkio %+v", st.Blkio)
	}
	if got := st.CPUSet.CPUs; len(got) != 4 || got[3] != 5 {
		t.Errorf("cpuset cpus %v", got)
	}
	if m.OOMKillCount() != 1 {
		t.Errorf("OOMKillCount = %d", m.OOMKillCount())
	}
}
