package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
	"github.com/warren-runtime/warren/internal/spec"
)

var enterCommand = cli.Command{
	Name:  "enter",
	Usage: "run a program in the namespaces of a container or any process (nsenter-style debugging)",
	ArgsUsage: `[options] [-- <command> [args...]]

Joins the namespaces of --target (a warren container id, or any pid: also
containers made by other runtimes) and runs <command> there, /bin/sh by
default, as root with all capabilities, like nsenter. Without namespace flags
it joins every namespace that differs from warren's own. For a warren
container it also joins the container's cgroup.

EXAMPLE:
       # warren enter --target mycontainer -n -- ip addr
       # warren enter --target 4242 -m -p -- ps`,
	Flags: []cli.Flag{
		cli.StringFlag{Name: "target, t", Usage: "container id or pid whose namespaces to join"},
		cli.BoolFlag{Name: "mount, m", Usage: "join the mount namespace"},
		cli.BoolFlag{Name: "uts, u", Usage: "join the UTS namespace"},
		cli.BoolFlag{Name: "ipc, i", Usage: "join the IPC namespace"},
		cli.BoolFlag{Name: "net, n", Usage: "join the network namespace"},
		cli.BoolFlag{Name: "pid, p", Usage: "join the pid namespace"},
		cli.BoolFlag{Name: "user, U", Usage: "join the user namespace"},
		cli.BoolFlag{Name: "cgroup, C", Usage: "join the cgroup namespace"},
		cli.BoolFlag{Name: "time, T", Usage: "join the time namespace"},
	},
	Action: func(c *cli.Context) error {
		target := c.String("target")
		if target == "" {
			return fmt.Errorf("enter: --target is required: %w", errdefs.ErrInvalid)
		}
		o := runtime.EnterOpts{}
		if pid, err := strconv.Atoi(target); err == nil && pid > 0 {
			o.Pid = pid
		} else {
			ctr, err := runtime.Load(rootDir(c), target)
			if err != nil {
				return fmt.Errorf("--target %s: %w", target, err)
			}
			o.Pid, err = ctr.InitPid()
			o.CgroupPaths = ctr.CgroupPaths()
			ctr.Close()
			if err != nil {
				return err
			}
		}
		for flag, ns := range map[string]string{"mount": "mnt", "uts": "uts", "ipc": "ipc", "net": "net", "pid": "pid", "user": "user", "cgroup": "cgroup", "time": "time"} {
			if c.Bool(flag) {
				o.Namespaces = append(o.Namespaces, ns)
			}
		}
		args := []string(c.Args())
		if len(args) == 0 {
			args = []string{"/bin/sh"}
		}
		// As nsenter: keep the capabilities warren has (root here may lack
		// some, e.g. CAP_SYS_RESOURCE), none more.
		all, err := currentCapabilities()
		if err != nil {
			return err
		}
		env := os.Environ()
		if os.Getenv("PATH") == "" {
			env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
		}
		o.Process = &specs.Process{
			Args: args, Env: env, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all},
		}
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return err
		}
		sigs := make(chan os.Signal, 64)
		signal.Notify(sigs)
		pid, err := runtime.Enter(o)
		if err != nil {
			return err
		}
		return &exitError{code: waitForeground(pid, sigs)}
	},
}

// currentCapabilities names the capabilities in this process's permitted set.
func currentCapabilities() ([]string, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("read own capabilities: %w", err)
	}
	perm := uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	var names []string
	for _, n := range spec.KnownCapabilities() {
		if v, ok := spec.CapabilityValue(n); ok && perm&(1<<uint(v)) != 0 {
			names = append(names, n)
		}
	}
	return names, nil
}
