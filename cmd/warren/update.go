package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
)

var updateCommand = cli.Command{
	Name:  "update",
	Usage: "update container resource constraints",
	ArgsUsage: `<container-id>

Where "<container-id>" is the name for the instance of the container.`,
	Description: `The update command changes the cgroup limits of a created, running or paused
container. Values come from --resources (a JSON object shaped like
config.json's linux.resources, "-" for stdin) and then from the flags; what
neither names keeps its current value. Memory values take a unit suffix
(k, m, g, t; powers of 1024). Device rules cannot be updated.`,
	Flags: []cli.Flag{
		cli.StringFlag{Name: "resources, r", Usage: "path to a file with the resources to update, or '-' to read them from stdin"},
		cli.StringFlag{Name: "blkio-weight", Usage: "per-cgroup block IO weight, 10 to 1000"},
		cli.StringFlag{Name: "cpu-period", Usage: "CPU CFS period in microseconds (0: system default)"},
		cli.StringFlag{Name: "cpu-quota", Usage: "CPU CFS quota in microseconds per period (-1: no limit)"},
		cli.StringFlag{Name: "cpu-burst", Usage: "CPU CFS burst in microseconds"},
		cli.StringFlag{Name: "cpu-share", Usage: "CPU shares (relative weight against other containers)"},
		cli.StringFlag{Name: "cpu-rt-period", Usage: "CPU realtime period in microseconds (cgroup v1 only)"},
		cli.StringFlag{Name: "cpu-rt-runtime", Usage: "CPU realtime runtime in microseconds per period (cgroup v1 only)"},
		cli.StringFlag{Name: "cpu-idle", Usage: "1 to give the container SCHED_IDLE priority, 0 to clear it"},
		cli.StringFlag{Name: "cpuset-cpus", Usage: "CPUs the container may use (e.g. 0-2,4)"},
		cli.StringFlag{Name: "cpuset-mems", Usage: "memory nodes the container may use"},
		cli.StringFlag{Name: "memory", Usage: "memory limit in bytes (-1: no limit)"},
		cli.StringFlag{Name: "memory-reservation", Usage: "memory reservation (soft limit) in bytes"},
		cli.StringFlag{Name: "memory-swap", Usage: "memory plus swap limit in bytes (-1: unlimited swap)"},
		cli.StringFlag{Name: "pids-limit", Usage: "maximum number of processes (0 or -1: no limit)"},
		cli.StringFlag{Name: "l3-cache-schema", Usage: "Intel RDT L3 cache schema (not supported)"},
		cli.StringFlag{Name: "mem-bw-schema", Usage: "Intel RDT memory bandwidth schema (not supported)"},
	},
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, 1)
		if err != nil {
			return err
		}
		r, err := updateResources(c)
		if err != nil {
			return err
		}
		ctr, err := runtime.Load(rootDir(c), id)
		if err != nil {
			return err
		}
		defer ctr.Close()
		return ctr.Update(r)
	},
}

func updateResources(c *cli.Context) (*specs.LinuxResources, error) {
	for _, f := range []string{"l3-cache-schema", "mem-bw-schema"} {
		if c.IsSet(f) {
			return nil, fmt.Errorf("--%s: Intel RDT is not supported: %w", f, errdefs.ErrNotSupported)
		}
	}
	r := &specs.LinuxResources{}
	if p := c.String("resources"); p != "" {
		var in io.Reader = os.Stdin
		if p != "-" {
			f, err := os.Open(p)
			if err != nil {
				return nil, fmt.Errorf("--resources: %w", err)
			}
			defer f.Close()
			in = f
		}
		dec := json.NewDecoder(in)
		if err := dec.Decode(r); err != nil {
			return nil, fmt.Errorf("--resources %s: not a linux.resources JSON object: %v: %w", p, err, errdefs.ErrInvalid)
		}
	}
	var err error
	u64 := func(flag string, dst **uint64) {
		if err != nil || !c.IsSet(flag) {
			return
		}
		v, perr := strconv.ParseUint(c.String(flag), 10, 64)
		if perr != nil {
			err = fmt.Errorf("--%s: %q is not a non-negative integer: %w", flag, c.String(flag), errdefs.ErrInvalid)
			return
		}
		*dst = &v
	}
	i64 := func(flag string, dst **int64, units bool) {
		if err != nil || !c.IsSet(flag) {
			return
		}
		v, perr := parseInt(c.String(flag), units)
		if perr != nil {
			err = fmt.Errorf("--%s: %q: %v: %w", flag, c.String(flag), perr, errdefs.ErrInvalid)
			return
		}
		*dst = &v
	}
	cpu := func() *specs.LinuxCPU {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		return r.CPU
	}
	mem := func() *specs.LinuxMemory {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		return r.Memory
	}
	if anySet(c, "cpu-period", "cpu-quota", "cpu-burst", "cpu-share", "cpu-rt-period", "cpu-rt-runtime", "cpu-idle", "cpuset-cpus", "cpuset-mems") {
		u64("cpu-period", &cpu().Period)
		i64("cpu-quota", &cpu().Quota, false)
		u64("cpu-burst", &cpu().Burst)
		u64("cpu-share", &cpu().Shares)
		u64("cpu-rt-period", &cpu().RealtimePeriod)
		i64("cpu-rt-runtime", &cpu().RealtimeRuntime, false)
		i64("cpu-idle", &cpu().Idle, false)
		if c.IsSet("cpuset-cpus") {
			cpu().Cpus = c.String("cpuset-cpus")
		}
		if c.IsSet("cpuset-mems") {
			cpu().Mems = c.String("cpuset-mems")
		}
	}
	if anySet(c, "memory", "memory-reservation", "memory-swap") {
		i64("memory", &mem().Limit, true)
		i64("memory-reservation", &mem().Reservation, true)
		i64("memory-swap", &mem().Swap, true)
	}
	if c.IsSet("pids-limit") {
		r.Pids = &specs.LinuxPids{}
		i64("pids-limit", &r.Pids.Limit, false)
	}
	if c.IsSet("blkio-weight") {
		v, perr := strconv.ParseUint(c.String("blkio-weight"), 10, 16)
		if perr != nil || v < 10 || v > 1000 {
			return nil, fmt.Errorf("--blkio-weight: %q is not a weight from 10 to 1000: %w", c.String("blkio-weight"), errdefs.ErrInvalid)
		}
		w := uint16(v)
		r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	}
	return r, err
}

func anySet(c *cli.Context, flags ...string) bool {
	for _, f := range flags {
		if c.IsSet(f) {
			return true
		}
	}
	return false
}

// parseInt parses an integer; with units it accepts a k/m/g/t suffix
// (optionally followed by "b"), in powers of 1024, as runc's memory flags.
func parseInt(s string, units bool) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	if !units {
		return 0, fmt.Errorf("not an integer")
	}
	l := strings.TrimSuffix(strings.ToLower(s), "b")
	mult := int64(1)
	switch {
	case strings.HasSuffix(l, "k"):
		mult = 1 << 10
	case strings.HasSuffix(l, "m"):
		mult = 1 << 20
	case strings.HasSuffix(l, "g"):
		mult = 1 << 30
	case strings.HasSuffix(l, "t"):
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("not a size (want a number with an optional k, m, g or t suffix)")
	}
	v, err := strconv.ParseFloat(l[:len(l)-1], 64)
	if err != nil || v < 0 || math.IsNaN(v) {
		return 0, fmt.Errorf("not a size (want a number with an optional k, m, g or t suffix)")
	}
	// 2^63 is exact as a float64: anything from it up does not fit.
	if v*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("too large (the limit is 8 EiB)")
	}
	return int64(v * float64(mult)), nil
}
