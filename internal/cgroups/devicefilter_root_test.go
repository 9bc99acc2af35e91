//go:build linux

package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// devProbeEnv makes the test binary a probe process: it waits for one byte
// on stdin (sent once the parent has moved it into the cgroup under test),
// then reports its cgroup v2 path and the result of opening each listed
// device, one "path result" line each, and exits.
const devProbeEnv = "WARREN_TEST_DEVICE_PROBE"

func init() {
	paths := os.Getenv(devProbeEnv)
	if paths == "" {
		return
	}
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		os.Stderr.WriteString("probe: read stdin: " + err.Error() + "\n")
		os.Exit(2)
	}
	var out strings.Builder
	data, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			out.WriteString("cgroup " + p + "\n")
		}
	}
	for _, p := range strings.Split(paths, ",") {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			out.WriteString(p + " " + errnoName(err) + "\n")
			continue
		}
		unix.Close(fd)
		out.WriteString(p + " ok\n")
	}
	os.Stdout.WriteString(out.String())
	os.Exit(0)
}

func errnoName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// cgroup2Root returns a cgroup2 mount in which we may create a cgroup, or
// skips the test saying why not.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads and attaches BPF programs and creates a cgroup")
	}
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return m
		}
	}
	t.Skip("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	return ""
}

func tempCgroup(t *testing.T, root string) string {
	t.Helper()
	dir, err := os.MkdirTemp(root, "warren-devfilter-test-")
	if err != nil {
		t.Skipf("cannot create a cgroup under %s: %v", root, err)
	}
	t.Cleanup(func() {
		// The probes have been reaped, but the cgroup may report populated
		// for a moment after the last exit.
		var err error
		for i := 0; i < 100; i++ {
			if err = unix.Rmdir(dir); err == nil || err == unix.ENOENT {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("remove cgroup %s: %v", dir, err)
	})
	return dir
}

// probeDevices runs a probe process inside the cgroup dir and returns what
// it saw: its cgroup path and, per device, "ok" or the errno name.
func probeDevices(t *testing.T, dir string, devs ...string) map[string]string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), devProbeEnv+"="+strings.Join(devs, ","))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Move the probe before it opens anything, as the runtime places the
	// container's init before it runs user code.
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatalf("move probe into %s: %v", dir, err)
	}
	if _, err := stdin.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("probe: %v; stderr: %s", err, stderr.String())
	}
	res := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		res[k] = v
	}
	return res
}

func attachedDeviceFilters(t *testing.T, dir string) []uint32 {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ids, _, err := deviceFilterIDs(fd)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestSetDevicesV2EnforcedAndReplaced(t *testing.T) {
	root := cgroup2Root(t)
	dir := tempCgroup(t, root)
	wantCgroup := "/" + strings.TrimPrefix(dir, root+"/")
	if ids := attachedDeviceFilters(t, dir); len(ids) != 0 {
		t.Fatalf("fresh cgroup already has device filters %v", ids)
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		var devs []string
		for d := range want {
			devs = append(devs, d)
		}
		got := probeDevices(t, dir, devs...)
		if got["cgroup"] != wantCgroup {
			t.Fatalf("%s: probe ran in cgroup %q, want %q (got %v)", step, got["cgroup"], wantCgroup, got)
		}
		for d, w := range want {
			if got[d] != w {
				t.Errorf("%s: open %s from inside the cgroup: %s, want %s", step, d, got[d], w)
			}
		}
	}

	// Sanity: without a filter both devices open, so a later EPERM is the
	// filter's doing.
	check("no filter", map[string]string{"/dev/null": "ok", "/dev/zero": "ok"})

	onlyNull := []specs.LinuxDeviceCgroup{
		devRuleOf(false, "", nil, nil, "rwm"),
		devRuleOf(true, "c", devNum(1), devNum(3), "rwm"),
	}
	if err := SetDevicesV2(dir, onlyNull); err != nil {
		t.Fatal(err)
	}
	first := attachedDeviceFilters(t, dir)
	if len(first) != 1 {
		t.Fatalf("after the first SetDevicesV2: %d device filters attached (%v), want 1", len(first), first)
	}
	check("deny all, allow c 1:3", map[string]string{"/dev/null": "ok", "/dev/zero": "EPERM", "/dev/full": "EPERM"})

	if err := SetDevicesV2(dir, []specs.LinuxDeviceCgroup{devRuleOf(true, "a", nil, nil, "rwm")}); err != nil {
		t.Fatal(err)
	}
	second := attachedDeviceFilters(t, dir)
	if len(second) != 1 || second[0] == first[0] {
		t.Fatalf("after update: device filters %v (before %v), want exactly one new one", second, first)
	}
	check("allow all (replaced, not stacked)", map[string]string{"/dev/null": "ok", "/dev/zero": "ok", "/dev/full": "ok"})

	// And back: an update can tighten as well as loosen.
	if err := SetDevicesV2(dir, []specs.LinuxDeviceCgroup{devRuleOf(false, "a", nil, nil, "rwm")}); err != nil {
		t.Fatal(err)
	}
	if ids := attachedDeviceFilters(t, dir); len(ids) != 1 {
		t.Fatalf("after second update: device filters %v, want one", ids)
	}
	check("deny all", map[string]string{"/dev/null": "EPERM", "/dev/zero": "EPERM"})
}

// The interpreter is not the verifier: every program the unit tests run must
// also load into the kernel.
func TestDeviceFilterLoadsIntoKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs")
	}
	load := func(name string, rules []specs.LinuxDeviceCgroup) {
		t.Helper()
		prog, err := DeviceFilter(rules)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fd, err := LoadDeviceFilter(prog)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, disasm(prog))
		}
		unix.Close(fd)
	}
	for _, c := range filterCases {
		load(c.name, c.rules)
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 50; i++ {
		rules := randomRules(rng)
		load(fmtRules(rules), rules)
	}
}

func TestLoadDeviceFilterReportsVerifierLog(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs")
	}
	// Exit without setting R0: the verifier refuses ("R0 !read_ok").
	_, err := LoadDeviceFilter([]Insn{exitInsn()})
	if err == nil {
		t.Fatal("program returning an unset R0 was loaded")
	}
	if !strings.Contains(err.Error(), "verifier log") || !strings.Contains(err.Error(), "R0") {
		t.Fatalf("error lacks the verifier log: %v", err)
	}
	if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EINVAL) {
		t.Errorf("error does not wrap the errno: %v", err)
	}
}
