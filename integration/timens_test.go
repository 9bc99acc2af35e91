//go:build linux

package integration

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Time namespaces (time_namespaces(7)): CLOCK_MONOTONIC and CLOCK_BOOTTIME
// (and /proc/uptime, which follows boottime) read with per-namespace
// offsets, written to /proc/<pid>/timens_offsets by the runtime before the
// first process enters the namespace.

const (
	monoOffsetSecs = 10 * 86400 // linux.timeOffsets.monotonic.secs used below
	bootOffsetSecs = 20 * 86400 // linux.timeOffsets.boottime.secs used below
)

// clockReading is what `testinit clock` prints.
type clockReading struct {
	Monotonic   float64  `json:"monotonic"`
	Boottime    float64  `json:"boottime"`
	Uptime      float64  `json:"uptime"`
	MonotonicNs int64    `json:"monotonicNs"`
	BoottimeNs  int64    `json:"boottimeNs"`
	Errors      []string `json:"errors"`
}

// hostClocks is the test process's (the host time namespace's) reading of
// both clocks, in nanoseconds.
type hostClocks struct{ mono, boot int64 }

func readHostClocks(t *testing.T) hostClocks {
	t.Helper()
	var m, b unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &m); err != nil {
		t.Fatalf("clock_gettime(CLOCK_MONOTONIC): %v", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &b); err != nil {
		t.Fatalf("clock_gettime(CLOCK_BOOTTIME): %v", err)
	}
	return hostClocks{mono: m.Nano(), boot: b.Nano()}
}

// withTimeOffsets adds a new time namespace with the monotonic and boottime
// offsets above.
func withTimeOffsets(s *specs.Spec) {
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{
		"monotonic": {Secs: monoOffsetSecs},
		"boottime":  {Secs: bootOffsetSecs},
	}
}

// assertClock checks a reading taken inside a container between the host
// readings before and after: both clocks are system-wide, so the reading is
// the host's clock at some instant in [before, after] plus the namespace's
// offset. No timing assumption: the bracket is exact (/proc/uptime is
// truncated to centiseconds, hence its 10 ms allowance below the bracket).
func assertClock(t *testing.T, what string, c clockReading, before, after hostClocks, monoOff, bootOff int64) {
	t.Helper()
	if len(c.Errors) > 0 {
		t.Errorf("%s: testinit clock errors: %v", what, c.Errors)
	}
	const sec = int64(1e9)
	check := func(name string, got, hostBefore, hostAfter, off int64) {
		t.Helper()
		lo, hi := hostBefore+off*sec, hostAfter+off*sec
		if got < lo || got > hi {
			t.Errorf("%s: %s inside is %.3f s; want within [%.3f, %.3f] s (the host's before/after the container ran, plus an offset of %d s); inside minus host before is %.3f days",
				what, name, float64(got)/1e9, float64(lo)/1e9, float64(hi)/1e9, off, float64(got-hostBefore)/1e9/86400)
		}
	}
	check("CLOCK_MONOTONIC", c.MonotonicNs, before.mono, after.mono, monoOff)
	check("CLOCK_BOOTTIME", c.BoottimeNs, before.boot, after.boot, bootOff)
	lo := float64(before.boot)/1e9 + float64(bootOff) - 0.011
	hi := float64(after.boot)/1e9 + float64(bootOff) + 0.001
	if c.Uptime < lo || c.Uptime > hi {
		t.Errorf("%s: /proc/uptime inside is %.2f s; want within [%.3f, %.3f] s (the host's boottime before/after plus an offset of %d s); inside minus host boottime before is %.3f days",
			what, c.Uptime, lo, hi, bootOff, (c.Uptime-float64(before.boot)/1e9)/86400)
	}
}

// parseTimensOffsets parses /proc/<pid>/timens_offsets
// ("monotonic     864000         0") into clock -> [secs, nsecs].
func parseTimensOffsets(t *testing.T, s string) map[string][2]int64 {
	t.Helper()
	out := map[string][2]int64{}
	for _, l := range lines(s) {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("bad timens_offsets line %q in %q", l, s)
		}
		secs, err1 := strconv.ParseInt(f[1], 10, 64)
		nsecs, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad timens_offsets line %q in %q", l, s)
		}
		out[f[0]] = [2]int64{secs, nsecs}
	}
	return out
}

func assertTimensOffsets(t *testing.T, what, content string, mono, boot int64) {
	t.Helper()
	got := parseTimensOffsets(t, content)
	want := map[string][2]int64{"monotonic": {mono, 0}, "boottime": {boot, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: timens_offsets %v (raw %q), want %v", what, got, content, want)
	}
}

// clockScript prints, from inside: the clocks, /proc/self/timens_offsets and
// the report (for the namespace inodes).
const clockScript = "/testinit clock && /testinit read /proc/self/timens_offsets && /testinit report"

// runClockScript runs clockScript as the container and decodes its output.
func runClockScript(b *bundle) (before, after hostClocks, c clockReading, offsets fileResult, r report) {
	b.t.Helper()
	b.setScript(clockScript)
	before = readHostClocks(b.t)
	out := b.runOK()
	after = readHostClocks(b.t)
	ls := jsonLines(b.t, out, 3)
	decodeJSON(b.t, ls[0], &c)
	decodeJSON(b.t, ls[1], &offsets)
	decodeJSON(b.t, ls[2], &r)
	if !offsets.OK {
		b.t.Fatalf("reading /proc/self/timens_offsets inside: %s", offsets.Error)
	}
	return
}

func TestTimeNamespaceOffsets(t *testing.T) {
	t.Parallel()
	if _, ok := hostNS["time"]; !ok {
		t.Skip("kernel without time namespaces (/proc/self/ns/time missing)")
	}

	// The container's process sees both clocks and /proc/uptime moved by
	// the configured offsets, and /proc/self/timens_offsets shows them.
	t.Run("Init", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		withTimeOffsets(b.spec)
		before, after, c, off, r := runClockScript(b)
		assertClock(t, "container with time offsets", c, before, after, monoOffsetSecs, bootOffsetSecs)
		assertTimensOffsets(t, "/proc/self/timens_offsets inside", off.Content, monoOffsetSecs, bootOffsetSecs)
		if r.Namespaces["time"] == hostNS["time"] {
			t.Errorf("time namespace inode %d equals the host's", r.Namespaces["time"])
		}
		if c, ok := r.Namespaces["time_for_children"]; ok && c != r.Namespaces["time"] {
			t.Errorf("time_for_children %d differs from time %d", c, r.Namespaces["time"])
		}
	})

	// The time namespace is owned by the container's user namespace; the
	// runtime still writes the offsets before the process starts.
	t.Run("WithUserNamespace", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		withUserNS(b.spec)
		withTimeOffsets(b.spec)
		before, after, c, off, r := runClockScript(b)
		assertClock(t, "container with user namespace and time offsets", c, before, after, monoOffsetSecs, bootOffsetSecs)
		assertTimensOffsets(t, "/proc/self/timens_offsets inside", off.Content, monoOffsetSecs, bootOffsetSecs)
		if r.Namespaces["time"] == hostNS["time"] || r.Namespaces["user"] == hostNS["user"] {
			t.Errorf("time/user namespace inodes %d/%d equal the host's", r.Namespaces["time"], r.Namespaces["user"])
		}
	})

	// A new time namespace without linux.timeOffsets starts with zero
	// offsets: the clocks read as the host's.
	t.Run("NewNamespaceNoOffsets", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		before, after, c, off, r := runClockScript(b)
		assertClock(t, "new time namespace without offsets", c, before, after, 0, 0)
		assertTimensOffsets(t, "/proc/self/timens_offsets inside", off.Content, 0, 0)
		if r.Namespaces["time"] == hostNS["time"] {
			t.Errorf("time namespace inode %d equals the host's; want a new one", r.Namespaces["time"])
		}
	})

	// Without a time namespace (the `warren spec` default) the container
	// is in the host's, with the host's clocks.
	t.Run("NoTimeNamespace", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		before, after, c, off, r := runClockScript(b)
		assertClock(t, "container without a time namespace", c, before, after, 0, 0)
		assertTimensOffsets(t, "/proc/self/timens_offsets inside", off.Content, 0, 0)
		if r.Namespaces["time"] != hostNS["time"] {
			t.Errorf("time namespace inode %d, host %d; not requested, so it must be the host's", r.Namespaces["time"], hostNS["time"])
		}
	})

	// `warren exec` joins the init's time namespace: same inode, same
	// offsets, same clocks.
	t.Run("Exec", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		withTimeOffsets(b.spec)
		b.setArgs("/testinit", "sleep", "1000")
		c := b.runDetached(newID(t))
		initTime := nsInode(t, fmt.Sprintf("/proc/%d/ns/time", c.pid))
		if initTime == hostNS["time"] {
			t.Fatalf("the init's time namespace (%d) is the host's", initTime)
		}
		// Seen from the host, the init's namespace carries the offsets.
		hostView, err := os.ReadFile(fmt.Sprintf("/proc/%d/timens_offsets", c.pid))
		if err != nil {
			t.Fatal(err)
		}
		assertTimensOffsets(t, "the init's /proc/<pid>/timens_offsets read from the host", string(hostView), monoOffsetSecs, bootOffsetSecs)

		before := readHostClocks(t)
		r := b.mustWarren("exec", c.id, "/bin/sh", "-c", clockScript)
		after := readHostClocks(t)
		ls := jsonLines(t, r.stdout, 3)
		var clk clockReading
		var off fileResult
		var rep report
		decodeJSON(t, ls[0], &clk)
		decodeJSON(t, ls[1], &off)
		decodeJSON(t, ls[2], &rep)
		assertClock(t, "exec'd process", clk, before, after, monoOffsetSecs, bootOffsetSecs)
		if !off.OK {
			t.Fatalf("reading /proc/self/timens_offsets in the exec'd process: %s", off.Error)
		}
		assertTimensOffsets(t, "/proc/self/timens_offsets in the exec'd process", off.Content, monoOffsetSecs, bootOffsetSecs)
		if rep.Namespaces["time"] != initTime {
			t.Errorf("exec'd process time namespace %d, the init's %d (host %d)", rep.Namespaces["time"], initTime, hostNS["time"])
		}
		if ch, ok := rep.Namespaces["time_for_children"]; ok && ch != initTime {
			t.Errorf("exec'd process time_for_children %d, the init's time %d", ch, initTime)
		}

		// The exec'd testinit itself (not only a child of sh) is in it.
		before = readHostClocks(t)
		r = b.mustWarren("exec", c.id, "/testinit", "clock")
		after = readHostClocks(t)
		clk = clockReading{}
		decodeJSON(t, strings.TrimSpace(r.stdout), &clk)
		assertClock(t, "exec'd testinit clock", clk, before, after, monoOffsetSecs, bootOffsetSecs)
	})
}

// Offsets need a new time namespace and a known clock; a bad config fails
// before anything is set up, names the field, and leaves nothing behind.
func TestTimeNamespaceOffsetErrors(t *testing.T) {
	t.Parallel()
	if _, ok := hostNS["time"]; !ok {
		t.Skip("kernel without time namespaces (/proc/self/ns/time missing)")
	}
	offsets := map[string]specs.LinuxTimeOffset{"monotonic": {Secs: monoOffsetSecs}}
	for _, tc := range []struct {
		name  string
		edit  func(s *specs.Spec)
		wants []string
	}{
		{"WithoutTimeNamespace", func(s *specs.Spec) {
			s.Linux.TimeOffsets = offsets
		}, []string{"linux.timeOffsets", "time"}},
		{"JoinedTimeNamespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace, Path: "/proc/self/ns/time"})
			s.Linux.TimeOffsets = offsets
		}, []string{"linux.timeOffsets"}},
		{"UnknownClock", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}
		}, []string{"linux.timeOffsets.realtime"}},
		{"NanosecsTooBig", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1, Nanosecs: 1e9}}
		}, []string{"linux.timeOffsets.boottime.nanosecs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			tc.edit(b.spec)
			b.failCreate(newID(t), tc.wants...)
			// `run` goes through the same validation and cleans up too.
			_, r := b.run(execOpts{})
			expectFailure(t, r, tc.wants...)
			b.assertRootEmpty()
		})
	}
}
