// Package runtime is warren's container core: create, start, state, kill,
// delete, on top of the kernel concerns in internal/linux and the cgroup
// seam in internal/cgroups. Public methods take the container's lock and
// check the state machine; unexported helpers assume both.
package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	json "github.com/go-json-experiment/json/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/cgroups"
	"github.com/warren-runtime/warren/internal/errdefs"
)

// Container is a handle on one container's state directory. It holds the
// container's lock from Load/Create until Close.
type Container struct {
	root  string
	id    string
	dir   string
	lock  *os.File
	state *State
}

// Close releases the lock.
func (c *Container) Close() {
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
}

// lockDir locks the directory now at dir. The lock is on the directory,
// not its name: once it is held, dir must still name the same directory,
// or a lock that waited on a container deleted meanwhile would be taken for
// the lock of a new container created under the same id since.
func lockDir(dir, id string) (*os.File, error) {
	for {
		f, err := os.Open(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("container %s does not exist: %w", id, errdefs.ErrNotFound)
			}
			return nil, fmt.Errorf("open state of %s: %w", id, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock container %s: %w", id, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(dir, &now) == nil && held.Dev == now.Dev && held.Ino == now.Ino {
			return f, nil
		}
		f.Close() // gone or replaced while we waited: look again
	}
}

// Load opens an existing container and takes its lock.
func Load(root, id string) (*Container, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	lock, err := lockDir(dir, id)
	if err != nil {
		return nil, err
	}
	st, err := readStateFile(dir, id)
	if err != nil {
		lock.Close()
		return nil, err
	}
	refreshLocked(dir, st)
	return &Container{root: root, id: id, dir: dir, lock: lock, state: st}, nil
}

func (c *Container) refresh() { refreshLocked(c.dir, c.state) }

// State returns the container's state with its live status.
func (c *Container) State() State {
	c.refresh()
	return *c.state
}

func (c *Container) check(op string) error {
	c.refresh()
	if transitions[c.state.Status][op] {
		return nil
	}
	return fmt.Errorf("cannot %s container %s in state %s: %w", op, c.id, c.state.Status, errdefs.ErrState)
}

// List returns the state of every container under root, sorted by id.
// It never fails on one container: a state file that cannot be read is
// reported as a stopped container (with a warning naming the problem), so
// that it shows up and `delete --force` can remove it. Directories left by
// a create or delete that was killed midway are swept.
func List(root string) ([]State, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list containers in %s: %w", root, err)
	}
	var out []State
	for _, e := range entries {
		if isLeftover(e.Name()) {
			sweep(filepath.Join(root, e.Name()))
			continue
		}
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		dir := filepath.Join(root, e.Name())
		st, err := readStateFile(dir, e.Name())
		if errors.Is(err, errdefs.ErrNotFound) {
			// Deleted meanwhile, or not a container's directory at
			// all (--root pointed somewhere else): not listed, so
			// that nothing invites deleting it.
			continue
		}
		if err != nil {
			slog.Warn(err.Error())
			out = append(out, State{ID: e.Name(), Status: Stopped})
			continue
		}
		refresh(dir, st)
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func isLeftover(name string) bool {
	return strings.HasPrefix(name, stagingPrefix) || strings.HasPrefix(name, trashPrefix)
}

// sweep removes a staging or trash directory whose owner is gone: taking
// its lock without waiting proves no live warren is using it.
func sweep(dir string) {
	fd, err := tryLock(dir)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	os.RemoveAll(dir)
}

// Start releases a created container's init to exec the user process.
func (c *Container) Start() error {
	c.refresh()
	if !transitions[c.state.Status]["start"] {
		switch c.state.Status {
		case Stopped:
			return fmt.Errorf("cannot start a container that has stopped: %s: %w", c.id, errdefs.ErrState)
		case Running, Paused:
			return fmt.Errorf("cannot start an already running container: %s: %w", c.id, errdefs.ErrState)
		}
		return fmt.Errorf("cannot start container %s in state %s: %w", c.id, c.state.Status, errdefs.ErrState)
	}
	if c.state.NoProcess {
		// Allowed at create (the spec makes process OPTIONAL), but
		// REQUIRED when start is called; the container stays created.
		return fmt.Errorf("cannot start container %s: its config has no process (process is required to start a container): %w", c.id, errdefs.ErrInvalid)
	}
	fifo := filepath.Join(c.dir, fifoName)
	// The init holds the fifo open for reading, so a non-blocking open for
	// writing succeeds exactly when it is still waiting.
	fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if err == unix.ENXIO {
			return fmt.Errorf("cannot start container %s: its init process is no longer waiting: %w", c.id, errdefs.ErrState)
		}
		return fmt.Errorf("cannot start container %s: open %s: %w", c.id, fifo, err)
	}
	_, werr := unix.Write(fd, []byte{0})
	unix.Close(fd)
	if werr != nil {
		return fmt.Errorf("cannot start container %s: write %s: %w", c.id, fifo, werr)
	}
	hooks := c.state.hooks()
	if h := hooks; h != nil && len(h.Poststart) > 0 {
		// poststart hooks run after the user's program is executed: the
		// init's end of the fifo closes at execve (close-on-exec).
		waitNoReader(fifo)
	}
	// The status is derived (refresh): once the init has left the FIFO
	// the container is running, whether or not the FIFO is gone, so
	// there is no state to rewrite.
	if err := os.Remove(fifo); err != nil {
		return fmt.Errorf("start container %s: remove %s: %w", c.id, fifo, err)
	}
	c.state.Status = Running
	if h := hooks; h != nil && len(h.Poststart) > 0 {
		warnHooks("poststart", h.Poststart, c.hookState(Running))
	}
	return nil
}

// waitNoReader waits (bounded) until nobody holds fifo open for reading.
func waitNoReader(fifo string) {
	delay := 50 * time.Microsecond
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == unix.ENXIO {
			return
		}
		if err == nil {
			unix.Close(fd)
		}
		time.Sleep(delay)
		if delay < 5*time.Millisecond {
			delay *= 2
		}
	}
}

// Kill sends sig to the init, or with all to every process of the container.
//
// As runc (and containerd's shim, which matches the text): a stopped
// container gives "container not running", except with all, where there is
// nothing left to signal and that is success.
func (c *Container) Kill(sig unix.Signal, all bool) error {
	if err := c.check("kill"); err != nil {
		if c.state.Status == Stopped {
			if all {
				return nil
			}
			return fmt.Errorf("container not running: %s: %w", c.id, errdefs.ErrState)
		}
		return err
	}
	if all {
		if m := c.cgroup(); m != nil {
			if err := m.Signal(sig); err != nil {
				return fmt.Errorf("signal processes of %s: %w", c.id, err)
			}
			return nil
		}
	}
	return c.signalInit(sig)
}

func (c *Container) cgroup() *cgroups.Manager {
	if len(c.state.CgroupPaths) == 0 {
		return nil
	}
	return &cgroups.Manager{Paths: c.state.CgroupPaths}
}

// signalInit signals the init through a pidfd checked against the recorded
// start time, so a recycled pid is never signalled.
func (c *Container) signalInit(sig unix.Signal) error {
	pfd, err := unix.PidfdOpen(c.state.Pid, 0)
	if err != nil {
		if err == unix.ESRCH {
			return fmt.Errorf("container not running: %s: %w", c.id, errdefs.ErrState)
		}
		return fmt.Errorf("open init of %s (pid %d): %w", c.id, c.state.Pid, err)
	}
	defer unix.Close(pfd)
	if !c.state.initAlive() {
		return fmt.Errorf("container not running: %s: %w", c.id, errdefs.ErrState)
	}
	if err := unix.PidfdSendSignal(pfd, sig, nil, 0); err != nil {
		if err == unix.ESRCH {
			return fmt.Errorf("container not running: %s: %w", c.id, errdefs.ErrState)
		}
		return fmt.Errorf("signal init of %s (pid %d): %w", c.id, c.state.Pid, err)
	}
	return nil
}

func (c *Container) hookState(status specs.ContainerState) []byte {
	return ociState(c.id, c.state.Bundle, status, c.state.Pid, c.state.Annotations)
}

// Pids lists the host pids of the container's processes.
func (c *Container) Pids() ([]int, error) {
	if m := c.cgroup(); m != nil {
		return m.Pids()
	}
	if c.state.initAlive() {
		return []int{c.state.Pid}, nil
	}
	return nil, nil
}

// Delete removes a stopped or created container; with force it kills a
// running one first. It leaves no process, cgroup or state behind.
func (c *Container) Delete(force bool) error {
	c.refresh()
	ok := transitions[c.state.Status]["delete"] || force && transitions[c.state.Status]["delete-force"]
	if !ok {
		return fmt.Errorf("cannot delete container %s that is not stopped: %s: %w", c.id, c.state.Status, errdefs.ErrState)
	}
	return c.destroy()
}

// destroy kills whatever is left, waits for it, removes cgroups and state.
// It is safe to repeat after being interrupted at any point: the state
// directory goes last, first renamed out of the way (so the id is free and
// no half-removed directory is ever read as a container), then removed.
func (c *Container) destroy() error {
	m := c.cgroup()
	var left []int
	if m != nil {
		left, _ = m.Pids()
		if len(left) > 0 {
			_ = m.Signal(unix.SIGKILL)
		}
	}
	if c.state.initAlive() {
		_ = c.signalInit(unix.SIGKILL)
		waitGone(c.state.Pid, c.state.InitStartTime)
	}
	if m != nil {
		if len(left) > 0 {
			waitCgroupEmpty(m)
		}
		if err := m.Destroy(); err != nil {
			c.Close()
			return fmt.Errorf("delete container %s: %w", c.id, err)
		}
	}
	err := c.removeDir()
	c.Close()
	// poststop: after the container is gone, before delete returns; only
	// for a container that was fully created.
	if h := c.state.hooks(); h != nil && len(h.Poststop) > 0 && c.state.InitStartTime != 0 {
		warnHooks("poststop", h.Poststop, c.hookState(Stopped))
	}
	return err
}

// removeDir renames the (locked) state directory to a trash name, then
// removes it; a trash directory left by a kill is swept later.
func (c *Container) removeDir() error {
	var trash string
	for i := 0; ; i++ {
		// Unique enough with RENAME_NOREPLACE to retry (crypto/rand
		// would add its package initialisation to every warren start).
		trash = filepath.Join(c.root, fmt.Sprintf("%s%d-%d-%d", trashPrefix, os.Getpid(), time.Now().UnixNano(), i))
		err := unix.Renameat2(unix.AT_FDCWD, c.dir, unix.AT_FDCWD, trash, unix.RENAME_NOREPLACE)
		if err == nil {
			break
		}
		if err == unix.ENOENT {
			return nil
		}
		if err != unix.EEXIST {
			return fmt.Errorf("remove state of %s: rename %s: %w", c.id, c.dir, err)
		}
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove state of %s: %w", c.id, err)
	}
	return nil
}

// waitGone waits until pid has exited (it may not be our child).
func waitGone(pid int, start uint64) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(pfd)
		fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
		for i := 0; i < 100; i++ {
			if n, err := unix.Poll(fds, 100); err == nil && n > 0 {
				return
			}
		}
		return
	}
	for i := 0; i < 1000; i++ {
		s, zombie, err := procStartTime(pid)
		if err != nil || zombie || s != start {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitCgroupEmpty(m *cgroups.Manager) {
	for i := 0; i < 200; i++ {
		pids, err := m.Pids()
		if err != nil || len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ForceDeleteMissing is what `delete --force` does for an id whose state
// cannot be loaded: a directory without a state file, or with a corrupt
// one. Whatever the file still names (init pid and start time, cgroups) is
// killed and removed first.
func ForceDeleteMissing(root, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	dir := filepath.Join(root, id)
	if !fileExists(dir) {
		return nil
	}
	lock, err := lockDir(dir, id)
	if err != nil {
		return err
	}
	// Only what warren puts there: a --root pointing at some other
	// directory must not make `delete --force` remove a user's data.
	entries, err := os.ReadDir(dir)
	if err != nil {
		lock.Close()
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	for _, e := range entries {
		switch e.Name() {
		case stateFile, stateFile + ".tmp", fifoName:
		default:
			lock.Close()
			return fmt.Errorf("delete container %s: %s is not a container's state directory (it holds %q); not removed: %w", id, dir, e.Name(), errdefs.ErrInvalid)
		}
	}
	// A container created under this id since the caller found none has
	// a good state: delete it with that.
	st, err := readStateFile(dir, id)
	if err != nil {
		st = salvageState(dir, id)
	}
	c := &Container{root: root, id: id, dir: dir, lock: lock, state: st}
	return c.destroy()
}

// salvageState recovers what it can from a state file that does not parse
// as a whole: the pid, its start time and cgroup paths, read value by value
// up to where the file stops making sense (a truncated file keeps them:
// they come before the large config). Hooks are not run for such a
// container.
func salvageState(dir, id string) *State {
	st := &State{ID: id, Status: Stopped}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st
	}
	var pid int
	var start uint64
	var paths map[string]string
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err == nil && t == json.Delim('{') {
	fields:
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				break
			}
			var v any
			switch t {
			case "pid":
				v = &pid
			case "initStartTime":
				v = &start
			case "cgroupPaths":
				v = &paths
			default:
				v = new(json.RawMessage)
			}
			if dec.Decode(v) != nil {
				break fields
			}
		}
	}
	if pid > 0 && start > 0 {
		st.Pid, st.InitStartTime = pid, start
	}
	for k, p := range paths {
		if filepath.IsAbs(p) && filepath.Clean(p) == p && p != "/" {
			if st.CgroupPaths == nil {
				st.CgroupPaths = map[string]string{}
			}
			st.CgroupPaths[k] = p
		}
	}
	if st.Pid == 0 && len(st.CgroupPaths) == 0 {
		slog.Warn("the state of container " + id + " names no process or cgroup that could be recovered; if the container still runs, its processes and cgroups are not removed")
	}
	return st
}

func owner(uid int) string {
	if uid == 0 {
		return "root"
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "#" + strconv.Itoa(uid) // runc's form for a uid without a name
}
