package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
	"github.com/warren-runtime/warren/internal/spec"
)

var execCommand = cli.Command{
	Name:  "exec",
	Usage: "execute new process inside the container",
	ArgsUsage: `<container-id> <command> [command options]  || -p process.json <container-id>

Where "<container-id>" is the name for the instance of the container and
"<command>" is the command to be executed in the container.

EXAMPLE:
For example, if the container is configured to run the linux ps command the
following will output a list of processes running in the container:

       # warren exec <container-id> ps`,
	Description: `The new process joins every namespace of the container (user and mount
included) and its cgroup. It gets the container's process settings (user,
environment, working directory, capabilities, no_new_privs, rlimits) unless
flags or --process override them; inheritable capabilities stay empty.`,
	Flags: []cli.Flag{
		cli.StringFlag{Name: "console-socket", Usage: "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"},
		cli.StringFlag{Name: "cwd", Usage: "current working directory in the container"},
		cli.StringSliceFlag{Name: "env, e", Usage: "set environment variables"},
		cli.BoolFlag{Name: "tty, t", Usage: "allocate a pseudo-TTY"},
		cli.StringFlag{Name: "user, u", Usage: "UID (format: <uid>[:<gid>])"},
		cli.StringSliceFlag{Name: "additional-gids, g", Usage: "additional gids"},
		cli.StringFlag{Name: "process, p", Usage: "path to the process.json"},
		cli.BoolFlag{Name: "detach, d", Usage: "detach from the container's process"},
		cli.StringFlag{Name: "pid-file", Usage: "specify the file to write the process id to"},
		cli.StringFlag{Name: "process-label", Usage: "set the asm process label for the process commonly used with selinux (not supported: this host has no SELinux)"},
		cli.StringFlag{Name: "apparmor", Usage: "set the apparmor profile for the process (not supported: this host has no AppArmor)"},
		cli.BoolFlag{Name: "no-new-privs", Usage: "set the no new privileges value for the process"},
		cli.StringSliceFlag{Name: "cap, c", Usage: "add a capability to the bounding set for the process"},
		cli.IntFlag{Name: "preserve-fds", Usage: "pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)"},
		cli.BoolFlag{Name: "ignore-paused", Usage: "allow exec in a paused container"},
	},
	SkipArgReorder: true,
	Action: func(c *cli.Context) error {
		min := 2
		if c.String("process") != "" {
			min = 1
		}
		id, err := requireID(c, min, -1)
		if err != nil {
			return err
		}
		for _, f := range []string{"apparmor", "process-label"} {
			if c.String(f) != "" {
				return fmt.Errorf("--%s: this host has no AppArmor or SELinux, so the process would run unconfined: %w", f, errdefs.ErrNotSupported)
			}
		}
		if c.Int("preserve-fds") < 0 {
			return fmt.Errorf("--preserve-fds: must not be negative: %w", errdefs.ErrInvalid)
		}
		ctr, err := runtime.Load(rootDir(c), id)
		if err != nil {
			return err
		}
		p, err := execProcess(c, ctr)
		if err != nil {
			ctr.Close()
			return err
		}
		detach := c.Bool("detach")
		cons, err := newConsole(c.String("console-socket"), p.Terminal, detach)
		if err != nil {
			ctr.Close()
			return err
		}
		defer cons.close()
		if sz := cons.size(); sz != nil {
			p.ConsoleSize = sz
		}
		var sigs chan os.Signal
		caught := func() {}
		if !detach {
			if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
				ctr.Close()
				return err
			}
			sigs = make(chan os.Signal, 64)
			caught = catchAll(sigs)
		}
		preserve := c.Int("preserve-fds")
		if v := os.Getenv("LISTEN_FDS"); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				preserve += n
				p.Env = append(p.Env, "LISTEN_FDS="+v, "LISTEN_PID=1")
			}
		}
		pid, err := ctr.Exec(runtime.ExecOpts{
			Process: p, PreserveFDs: preserve, ConsoleSocket: cons.send, IgnorePaused: c.Bool("ignore-paused"),
			Rootless: rootlessMode(c), Foreground: !detach,
		})
		ctr.Close()
		caught()
		if err != nil {
			return err
		}
		if f := c.String("pid-file"); f != "" {
			if err := runtime.WritePidFile(absOrEmpty(f), pid); err != nil {
				unix.Kill(pid, unix.SIGKILL)
				return err
			}
		}
		if detach {
			return nil
		}
		stop, err := cons.startRelay()
		if err != nil {
			unix.Kill(pid, unix.SIGKILL)
			return err
		}
		status := waitForeground(pid, sigs)
		stop()
		return &exitError{code: status}
	},
}

// execProcess builds the process to exec: --process as given, or the
// container's process settings with the arguments and flags applied.
func execProcess(c *cli.Context, ctr *runtime.Container) (*specs.Process, error) {
	if path := c.String("process"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		var p specs.Process
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("--process %s: not a process JSON object: %v: %w", path, err, errdefs.ErrInvalid)
		}
		if len(p.Args) == 0 {
			return nil, fmt.Errorf("--process %s: args must not be empty: %w", path, errdefs.ErrInvalid)
		}
		if p.Cwd == "" {
			p.Cwd = "/"
		}
		return &p, nil
	}
	p, err := ctr.DefaultExecProcess(c.Args()[1:])
	if err != nil {
		return nil, err
	}
	p.Terminal = c.Bool("tty")
	if cwd := c.String("cwd"); cwd != "" {
		if !strings.HasPrefix(cwd, "/") {
			return nil, fmt.Errorf("--cwd %q: must be an absolute path: %w", cwd, errdefs.ErrInvalid)
		}
		p.Cwd = cwd
	}
	for _, e := range c.StringSlice("env") {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE: %w", e, errdefs.ErrInvalid)
		}
		p.Env = slices.DeleteFunc(slices.Clone(p.Env), func(old string) bool { return strings.HasPrefix(old, k+"=") })
		p.Env = append(p.Env, e)
	}
	if u := c.String("user"); u != "" {
		uidS, gidS, hasGid := strings.Cut(u, ":")
		uid, err := strconv.ParseUint(uidS, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: want <uid>[:<gid>] as numbers: %w", u, errdefs.ErrInvalid)
		}
		p.User.UID = uint32(uid)
		if hasGid {
			gid, err := strconv.ParseUint(gidS, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--user %q: want <uid>[:<gid>] as numbers: %w", u, errdefs.ErrInvalid)
			}
			p.User.GID = uint32(gid)
		}
	}
	for _, g := range c.StringSlice("additional-gids") {
		gid, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--additional-gids %q: not a number: %w", g, errdefs.ErrInvalid)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
	}
	if c.Bool("no-new-privs") {
		p.NoNewPrivileges = true
	}
	if caps := c.StringSlice("cap"); len(caps) > 0 {
		// Added to bounding, effective and permitted only: never to the
		// inheritable set, which would let them survive into programs the
		// process executes (CVE-2022-29162).
		cp := specs.LinuxCapabilities{}
		if p.Capabilities != nil {
			cp = *p.Capabilities
		}
		for _, name := range caps {
			name = strings.ToUpper(name)
			if !strings.HasPrefix(name, "CAP_") {
				name = "CAP_" + name
			}
			if _, ok := spec.CapabilityValue(name); !ok {
				return nil, fmt.Errorf("--cap %q: unknown capability: %w", name, errdefs.ErrInvalid)
			}
			cp.Bounding = append(slices.Clone(cp.Bounding), name)
			cp.Effective = append(slices.Clone(cp.Effective), name)
			cp.Permitted = append(slices.Clone(cp.Permitted), name)
		}
		p.Capabilities = &cp
	}
	return p, nil
}
