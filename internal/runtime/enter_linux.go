package runtime

import (
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/cgroups"
	"github.com/warren-runtime/warren/internal/errdefs"
)

// EnterOpts are the inputs of `warren enter`, nsenter-style debugging of any
// process: the namespaces to join (by /proc/PID/ns file name; empty means
// all that differ from ours) and the program to run there.
type EnterOpts struct {
	Pid        int
	Namespaces []string
	Process    *specs.Process
	// CgroupPaths, when set, also puts the process in that cgroup (a warren
	// container's).
	CgroupPaths map[string]string
}

// NamespaceFiles are the /proc/PID/ns names enter understands.
var NamespaceFiles = []string{"user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"}

// Enter starts o.Process in the namespaces of o.Pid and returns its pid.
// Like nsenter it keeps root's privileges: it is a debugging tool for the
// host's administrator, not a way into a container for its users.
func Enter(o EnterOpts) (int, error) {
	want := map[string]bool{}
	for _, n := range o.Namespaces {
		want[n] = true
	}
	base := "/proc/" + strconv.Itoa(o.Pid) + "/ns/"
	if _, err := os.Stat(base); err != nil {
		return 0, fmt.Errorf("--target %d: no such process: %w", o.Pid, errdefs.ErrNotFound)
	}
	var joins []nsJoin
	for _, ns := range nsOrder {
		if len(want) > 0 && !want[ns.file] {
			continue
		}
		var theirs, ours unix.Stat_t
		if err := unix.Stat(base+ns.file, &theirs); err != nil {
			if len(want) == 0 && os.IsNotExist(err) {
				continue
			}
			return 0, fmt.Errorf("--target %d: %s namespace: %w", o.Pid, ns.file, err)
		}
		if unix.Stat("/proc/self/ns/"+ns.file, &ours) == nil && ours.Ino == theirs.Ino && ours.Dev == theirs.Dev {
			continue
		}
		joins = append(joins, nsJoin{ns.flag, base + ns.file})
	}
	var m *cgroups.Manager
	if len(o.CgroupPaths) > 0 {
		m = &cgroups.Manager{Paths: o.CgroupPaths}
	}
	cfg := initConfig{Spec: &specs.Spec{Process: o.Process}, Exec: true}
	pid, _, err := spawn(spawnOpts{cgroup: m, joins: joins, nonDumpable: true, config: &cfg})
	if err != nil {
		return 0, fmt.Errorf("enter the namespaces of pid %d: %w", o.Pid, err)
	}
	return pid, nil
}

// InitPid returns the host pid of the container's init if it is alive.
func (c *Container) InitPid() (int, error) {
	refresh(c.dir, c.state)
	if !c.state.initAlive() {
		return 0, fmt.Errorf("container %s is not running: %w", c.id, errdefs.ErrState)
	}
	return c.state.Pid, nil
}

// CgroupPaths returns the container's cgroup directories.
func (c *Container) CgroupPaths() map[string]string { return c.state.CgroupPaths }
