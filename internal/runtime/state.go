package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	json "github.com/go-json-experiment/json/v1"
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
	// with a larger one is refused rather than misread. 2: the config is
	// kept whole (Config); 1 and unversioned files had its parts as fields
	// of their own, and are still read.
	stateVersion = 2
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
	// Version is stateVersion when written (0 in files of older builds).
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
	// Config is the container's config.json as created from (amended
	// only where the runtime must: LISTEN_FDS, the console size): exec's
	// defaults, the seccomp profile exec'd processes get, the hooks that
	// start and delete run. It stays JSON text, decoded only by the
	// commands that need a part of it (configPart), so that reading and
	// writing the state costs no decoding of the spec's types.
	Config json.RawMessage `json:"config,omitempty"`
	// NoProcess: the config has no process (start refuses it).
	NoProcess bool `json:"noProcess,omitempty"`
	// PostHooks: the config has poststart or poststop hooks.
	PostHooks bool `json:"postHooks,omitempty"`
	// Resources are the limits `update` set, merged over the config's;
	// empty until the first update.
	Resources json.RawMessage `json:"resources,omitempty"`

	// The config's process and seccomp profile, once decoded (process).
	procDecoded bool
	proc        *specs.Process
	seccomp     *specs.LinuxSeccomp
}

// configPart decodes the parts of the container's config that v's type
// names (e.g. a struct with only a process field); the others are skipped
// unread. Decoding into the same field types as the container's init does
// keeps what every command sees of the config identical.
func (st *State) configPart(v any) error {
	if len(st.Config) == 0 {
		return nil
	}
	if err := json.Unmarshal(st.Config, v); err != nil {
		return fmt.Errorf("config of container %s in its state: %w", st.ID, errdefs.ErrCorrupt)
	}
	return nil
}

// process is the config's process (nil without one), a copy the caller may
// change, and its seccomp profile. The config is decoded once per State:
// exec asks for both, first for its defaults, then for the profile.
func (st *State) process() (*specs.Process, *specs.LinuxSeccomp, error) {
	if !st.procDecoded {
		var c struct {
			Process *specs.Process `json:"process"`
			Linux   *struct {
				Seccomp *specs.LinuxSeccomp `json:"seccomp"`
			} `json:"linux"`
		}
		if err := st.configPart(&c); err != nil {
			return nil, nil, err
		}
		st.proc = c.Process
		if c.Linux != nil {
			st.seccomp = c.Linux.Seccomp
		}
		st.procDecoded = true
	}
	if st.proc == nil {
		return nil, st.seccomp, nil
	}
	cp := *st.proc
	return &cp, st.seccomp, nil
}

// hooks is the config's hooks, decoded only when there are post hooks.
func (st *State) hooks() *specs.Hooks {
	if !st.PostHooks {
		return nil
	}
	var c struct {
		Hooks *specs.Hooks `json:"hooks"`
	}
	if st.configPart(&c) != nil {
		return nil
	}
	return c.Hooks
}

// resources are the limits in force: the last update's, or the config's.
func (st *State) resources() (*specs.LinuxResources, error) {
	if len(st.Resources) > 0 {
		var r specs.LinuxResources
		if err := json.Unmarshal(st.Resources, &r); err != nil {
			return nil, fmt.Errorf("resources of container %s in its state: %w", st.ID, errdefs.ErrCorrupt)
		}
		return &r, nil
	}
	var c struct {
		Linux *struct {
			Resources *specs.LinuxResources `json:"resources"`
		} `json:"linux"`
	}
	if err := st.configPart(&c); err != nil || c.Linux == nil {
		return nil, err
	}
	return c.Linux.Resources, nil
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

// writeStateFile replaces state.json atomically: a temporary file renamed
// over it, so a reader, or a warren killed at any instant, sees the old file
// or the new one. Nothing is fsync'd (runc and crun do not either): a state
// describes processes, and a power loss or kernel crash ends every one of
// them, so a durable record would only describe a dead container; a file
// such a crash did tear is reported as corrupt and removed by
// `delete --force`. On a disk-backed root the three fsyncs of a durable
// first write cost ~1.5 ms of a 29 ms `run` on the benchmark VM.
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
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// Swapped with the old file (RENAME_EXCHANGE, as atomic for readers
	// as a rename over it), which is then unlinked: ext4 (auto_da_alloc)
	// answers a rename over an existing file by allocating and writing
	// out the new one at once, and on a disk mounted with discard its
	// blocks are then discarded synchronously when the container is
	// deleted (~1 ms a run on the benchmark VM). A file that is swapped
	// and unlinked before writeback never gets blocks at all.
	final := filepath.Join(dir, name)
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		os.Remove(tmp)
		return nil
	case err == unix.ENOENT || err == unix.EINVAL || err == unix.ENOSYS:
		// No old file yet, or a filesystem without exchange.
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
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
	if st.Version < 2 && len(st.Config) == 0 {
		// Written before the config was kept whole: the parts were
		// fields of their own.
		var old struct {
			Process, Hooks, Seccomp, Resources json.RawMessage
		}
		if err := json.Unmarshal(b, &old); err != nil {
			return nil, corrupt("%v", err)
		}
		st.Config = legacyConfig(old.Process, old.Hooks, old.Seccomp)
		st.NoProcess = len(old.Process) == 0 || string(old.Process) == "null"
		st.PostHooks = len(old.Hooks) > 0 && string(old.Hooks) != "null"
		st.Resources = old.Resources
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

// legacyConfig assembles a config document from the separately stored
// parts of an older state file.
func legacyConfig(process, hooks, seccomp json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteString("{")
	sep := ""
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"process", process}, {"hooks", hooks}} {
		if len(f.v) > 0 {
			b.WriteString(sep + `"` + f.name + `":`)
			b.Write(f.v)
			sep = ","
		}
	}
	if len(seccomp) > 0 {
		b.WriteString(sep + `"linux":{"seccomp":`)
		b.Write(seccomp)
		b.WriteString("}")
	}
	b.WriteString("}")
	return b.Bytes()
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
	fd, err := tryLock(dir)
	if err == nil {
		unix.Close(fd)
	}
	return err == unix.EWOULDBLOCK
}

// tryLock takes dir's lock without waiting; the caller closes the fd to
// release it. EWOULDBLOCK: someone holds it.
func tryLock(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
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
