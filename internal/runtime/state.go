package runtime

import (
	"bytes"
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
	// stateVersion is the layout of state.json this build writes; a file
	// with a larger one is refused rather than misread.
	stateVersion = 1
	// Names under the root that ValidateID rejects ('#'), so no container
	// id can collide with them: a container being created is prepared in
	// a "#new-" directory and renamed to its id; one being deleted is
	// renamed to "#old-" first, then removed. Either left by a killed
	// warren holds nothing else and is swept once its lock is free.
	stagingPrefix = "#new-"
	trashPrefix   = "#old-"
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
	// Version is stateVersion when written (0 in files of older builds,
	// read as 1).
	Version     int                  `json:"warrenStateVersion,omitempty"`
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

// writeStateFile replaces state.json atomically and durably: a temporary
// file, fsync'd, renamed over it, then the directory fsync'd. A reader (or
// a warren killed at any instant) sees the old file or the new one.
func writeStateFile(dir string, st *State) error {
	st.Version = stateVersion
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir, stateFile, b); err != nil {
		return fmt.Errorf("write state of %s: %w", st.ID, err)
	}
	return nil
}

func writeFileAtomic(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readStateFile(dir, id string) (*State, error) {
	p := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s does not exist: %w", id, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	return parseState(b, p, id)
}

// parseState decodes a state file; every way it can be bad is an
// ErrCorrupt naming the file and what is wrong.
func parseState(b []byte, path, id string) (*State, error) {
	corrupt := func(format string, a ...any) error {
		return fmt.Errorf("state of container %s is corrupt (%s): %s (`warren delete --force %s` removes it): %w", id, path, fmt.Sprintf(format, a...), id, errdefs.ErrCorrupt)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, corrupt("the file is empty")
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, corrupt("%v", err)
	}
	switch {
	case st.Version > stateVersion:
		return nil, corrupt("written by a newer warren (state version %d, this one reads up to %d)", st.Version, stateVersion)
	case st.Version < 0:
		return nil, corrupt("bad state version %d", st.Version)
	case st.ID != id:
		return nil, corrupt("it names container %q", st.ID)
	case st.Pid < 0:
		return nil, corrupt("bad pid %d", st.Pid)
	}
	switch st.Status {
	case Creating, Created, Running, Paused, Stopped:
	default:
		return nil, corrupt("unknown status %q", st.Status)
	}
	for k, p := range st.CgroupPaths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return nil, corrupt("cgroupPaths[%q]: %q is not a clean absolute path", k, p)
		}
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

// refresh derives the live status, for a reader that does not hold the
// container's lock. A container recorded as creating is being created only
// while its creator holds the lock; once the lock is free, the create was
// interrupted (warren killed) and the container is reported stopped, so
// that `delete` removes whatever the create had made.
func refresh(dir string, st *State) {
	if st.Status == Creating && lockHeld(dir) {
		return
	}
	refreshLocked(dir, st)
}

// refreshLocked derives the live status for the holder of the lock (Load):
// no create can be in progress then, so creating means interrupted.
func refreshLocked(dir string, st *State) {
	switch {
	case st.Status == Creating:
		st.Status = Stopped
	case !st.initAlive():
		st.Status = Stopped
	case initWaiting(filepath.Join(dir, fifoName)):
		st.Status = Created
	case isFrozen(st):
		st.Status = Paused
	default:
		st.Status = Running
	}
}

// lockHeld reports whether some process holds dir's lock (a probe that
// takes and drops it; a lock of a dead process is gone with it).
func lockHeld(dir string) bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == unix.EWOULDBLOCK
}

// initWaiting reports whether the init still waits on the exec FIFO: it
// holds the FIFO open (read-write, close-on-exec) until it executes the
// user's program, so a non-blocking open for writing succeeds exactly
// while it waits. The FIFO can outlive that by a `start` killed between
// releasing the init and removing it.
func initWaiting(fifo string) bool {
	fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
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
