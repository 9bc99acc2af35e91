package runtime

import (
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/linux"
)

// ExecOpts are the inputs of `warren exec`.
type ExecOpts struct {
	Process       *specs.Process
	PreserveFDs   int
	ConsoleSocket *os.File // receives the pty master when Process.Terminal
	IgnorePaused  bool
	// Rootless: a cgroup the caller may not join is skipped (--rootless).
	Rootless              bool
	Stdin, Stdout, Stderr *os.File
	// Foreground: the caller waits for the process (exec without
	// --detach). See spawnOpts.holdExe.
	Foreground bool
}

// nsOrder lists the namespace files of /proc/PID/ns that exec joins; the
// user namespace first so the rest are joined with its privileges.
var nsOrder = []struct {
	file string
	flag uintptr
}{
	{"user", unix.CLONE_NEWUSER}, {"mnt", unix.CLONE_NEWNS}, {"pid", unix.CLONE_NEWPID},
	{"net", unix.CLONE_NEWNET}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"cgroup", unix.CLONE_NEWCGROUP}, {"time", unix.CLONE_NEWTIME},
}

// DefaultExecProcess is the process `exec` runs when no --process is given:
// the container's own process settings (user, env, cwd, capabilities,
// no_new_privs, rlimits) with other args and no terminal.
func (c *Container) DefaultExecProcess(args []string) (*specs.Process, error) {
	p, _, err := c.state.process()
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = &specs.Process{Cwd: "/"}
	}
	p.Args = args
	p.Terminal = false
	p.ConsoleSize = nil
	return p, nil
}

// Exec starts a process inside the running container: it joins every
// namespace of the container's init that differs from ours (user and mount
// included) and its cgroup, then gets the process settings. It returns the
// host pid once the process is about to exec its program.
func (c *Container) Exec(o ExecOpts) (int, error) {
	refresh(c.dir, c.state)
	switch c.state.Status {
	case Running, Created:
	case Paused:
		if !o.IgnorePaused {
			return 0, fmt.Errorf("cannot exec in a paused container %s (use --ignore-paused to override): %w", c.id, errdefs.ErrState)
		}
	default:
		return 0, fmt.Errorf("cannot exec in container %s: it is %s: %w", c.id, c.state.Status, errdefs.ErrState)
	}
	p := o.Process
	if p == nil || len(p.Args) == 0 {
		return 0, fmt.Errorf("process.args: the command to run must not be empty: %w", errdefs.ErrInvalid)
	}
	if p.Terminal && o.ConsoleSocket == nil {
		return 0, fmt.Errorf("process.terminal: a terminal needs a console socket: %w", errdefs.ErrInvalid)
	}
	// nil for a rootless container that got no cgroup: nothing to join.
	m := c.cgroup()
	var joins []nsJoin
	initNS := "/proc/" + strconv.Itoa(c.state.Pid) + "/ns/"
	for _, ns := range nsOrder {
		var theirs, ours unix.Stat_t
		if err := unix.Stat(initNS+ns.file, &theirs); err != nil {
			if os.IsNotExist(err) && ns.file == "time" {
				continue // kernel without time namespaces
			}
			return 0, fmt.Errorf("container %s: stat %s%s: %w", c.id, initNS, ns.file, err)
		}
		if err := unix.Stat("/proc/self/ns/"+ns.file, &ours); err == nil && ours.Ino == theirs.Ino && ours.Dev == theirs.Dev {
			continue // shared with us: nothing to join (and joining our own user ns is EINVAL)
		}
		joins = append(joins, nsJoin{ns.flag, initNS + ns.file})
	}
	_, seccomp, err := c.state.process()
	if err != nil {
		return 0, err
	}
	so := spawnOpts{
		preserveFDs: o.PreserveFDs,
		stdin:       o.Stdin, stdout: o.Stdout, stderr: o.Stderr,
		cgroup: m, rootless: o.Rootless, joins: joins, nonDumpable: true,
		holdExe: o.Foreground,
	}
	if useTail(p, seccomp) {
		// The usual case: stage 0's C tail applies the settings and
		// execs, and no Go runtime starts in the container.
		if so.tail, err = tailPlan(p, seccomp, 3+o.PreserveFDs, linux.LastCap(), tailInit{}); err != nil {
			return 0, err
		}
	} else {
		cfg := initConfig{
			ID:          c.id,
			Spec:        &specs.Spec{Process: p, Linux: &specs.Linux{Seccomp: seccomp}},
			PreserveFDs: o.PreserveFDs,
			Exec:        true,
		}
		if p.Terminal {
			so.extra = append(so.extra, o.ConsoleSocket)
			cfg.ConsoleFd = 3 + o.PreserveFDs + 1
		}
		so.config = &cfg
		so.notify = seccompNotify(seccomp, c.id, c.state.Bundle, Running, c.state.Annotations)
	}
	pid, _, err := spawn(so)
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", c.id, err)
	}
	if !c.state.initAlive() {
		unix.Kill(pid, unix.SIGKILL)
		return 0, fmt.Errorf("exec in container %s: its init exited meanwhile: %w", c.id, errdefs.ErrState)
	}
	return pid, nil
}
