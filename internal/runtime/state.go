package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/cgroups"
	"github.com/warren-runtime/warren/internal/errdefs"
)

// DefaultRoot is where state lives unless --root says otherwise.
const DefaultRoot = "/run/warren"

const (
	stateFile = "state.json"
	fifoName  = "exec.fifo"
)

// Status values, as in the OCI runtime spec (plus "paused" as runc reports).
const (
	Creating = specs.StateCreating
	Created  = specs.StateCreated
	Running  = specs.StateRunning
	Stopped  = specs.StateStopped
	Paused   = specs.ContainerState("paused")
)

// transitions lists, for each status, the operations it allows. The stored
// status is only a hint: the live one is derived from the init process and
// the exec fifo by refresh.
var transitions = map[specs.ContainerState]map[string]bool{
	Creating: {"delete": true},
	Created:  {"start": true, "kill": true, "delete": true, "update": true},
	Running:  {"kill": true, "delete-force": true, "pause": true, "update": true},
	Paused:   {"kill": true, "delete-force": true, "resume": true, "update": true},
	Stopped:  {"delete": true},
}

// State is what state.json holds. The first fields are the output of
// `warren state` (runc's shape); the rest is private bookkeeping.
type State struct {
	OCIVersion  string               `json:"ociVersion"`
	ID          string               `json:"id"`
	Pid         int                  `json:"pid"`
	Status      specs.ContainerState `json:"status"`
	Bundle      string               `json:"bundle"`
	Rootfs      string               `json:"rootfs"`
	Created     time.Time            `json:"created"`
	Owner       string               `json:"owner"`
	Annotations map[string]string    `json:"annotations,omitempty"`

	// InitStartTime is the init's start time in clock ticks since boot
	// (/proc/<pid>/stat field 22); it tells the init from a later process
	// that reused its pid.
	InitStartTime uint64            `json:"initStartTime,omitempty"`
	CgroupPaths   map[string]string `json:"cgroupPaths,omitempty"`
	// Resources are the limits in force (config.json's, then `update`s);
	// Devices the config's linux.devices, which the device rules allow.
	Resources *specs.LinuxResources `json:"resources,omitempty"`
	Devices   []specs.LinuxDevice   `json:"devices,omitempty"`
	// Process is config.json's process: the defaults of `exec`.
	Process *specs.Process `json:"process,omitempty"`
	// Hooks are config.json's: poststart and poststop run from start and
	// delete.
	Hooks *specs.Hooks `json:"hooks,omitempty"`
	// Seccomp is config.json's profile: exec'd processes get it too.
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
}

// ValidateID rejects ids that are not safe as a directory name: the same
// set runc accepts, letters, digits, '_', '+', '-' and '.' (not "." or "..").
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("container id cannot be empty: %w", errdefs.ErrInvalid)
	}
	ok := id != "." && id != ".." && len(id) <= 1024
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '+' || c == '-' || c == '.'
	}
	if !ok {
		return fmt.Errorf("invalid container id format: %q: %w", id, errdefs.ErrInvalid)
	}
	return nil
}

func writeStateFile(dir string, st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state of %s: %w", st.ID, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("write state of %s: %w", st.ID, err)
	}
	return nil
}

func readStateFile(dir, id string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s does not exist: %w", id, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state of %s is corrupt (%s): %w", id, filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

// procStartTime returns field 22 of /proc/<pid>/stat, and whether the
// process is a zombie (dead, not yet reaped).
func procStartTime(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, false, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", err
}

// initAlive reports whether the recorded init process is still running.
func (st *State) initAlive() bool {
	if st.Pid <= 0 {
		return false
	}
	start, zombie, err := procStartTime(st.Pid)
	return err == nil && !zombie && start == st.InitStartTime
}

// refresh derives the live status.
func refresh(dir string, st *State) {
	if st.Status == Creating {
		return
	}
	switch {
	case !st.initAlive():
		st.Status = Stopped
	case fileExists(filepath.Join(dir, fifoName)):
		st.Status = Created
	case isFrozen(st):
		st.Status = Paused
	default:
		st.Status = Running
	}
}

func isFrozen(st *State) bool {
	if len(st.CgroupPaths) == 0 {
		return false
	}
	m := cgroups.Manager{Paths: st.CgroupPaths}
	return m.FreezerState() == cgroups.Frozen
}

func fileExists(p string) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil
}

// PublicState is the JSON of `warren state` and `warren list --format json`,
// the same shape runc prints.
type PublicState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Public converts a state for output; a stopped container has pid 0.
func Public(st *State) PublicState {
	pid := st.Pid
	if st.Status == Stopped {
		pid = 0
	}
	return PublicState{
		OCIVersion: st.OCIVersion, ID: st.ID, Pid: pid, Status: string(st.Status), Bundle: st.Bundle,
		Rootfs: st.Rootfs, Created: st.Created, Owner: st.Owner, Annotations: st.Annotations,
	}
}

// ReadState reads a container's state without taking its lock (state.json
// is replaced atomically) and derives its live status.
func ReadState(root, id string) (*State, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	st, err := readStateFile(dir, id)
	if err != nil {
		return nil, err
	}
	refresh(dir, st)
	return st, nil
}
