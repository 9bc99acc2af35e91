package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	json "github.com/go-json-experiment/json/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/cgroups"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/linux"
	"github.com/warren-runtime/warren/internal/runtime/nsexec"
	"github.com/warren-runtime/warren/internal/spec"
)

// CreateOpts are the inputs of `warren create`.
type CreateOpts struct {
	Root   string
	ID     string
	Bundle string // absolute
	Spec   *specs.Spec
	// Config is Spec as JSON text: config.json's bytes when Spec is what
	// they decode to, or nil to have Spec encoded.
	Config       []byte
	PidFile      string
	NoPivot      bool
	NoNewKeyring bool
	PreserveFDs  int
	// Rootless: cgroup hierarchies not delegated to the caller are
	// skipped with a warning instead of failing (--rootless).
	Rootless bool
	// Foreground: the caller waits for the process (run without
	// --detach). See spawnOpts.holdExe.
	Foreground bool
	// Stdio for the container's init; nil means this process's.
	Stdin, Stdout, Stderr *os.File
	// ConsoleSocket is a connected unix socket that receives the pty
	// master when process.terminal is true (runc's --console-socket).
	ConsoleSocket *os.File
}

// initConfig is what the parent sends the Go part of init (msgConfig).
type initConfig struct {
	ID string `json:"id"`
	// Spec travels as SpecJSON (config.json's own bytes for a create),
	// decoded by the init.
	Spec         *specs.Spec     `json:"-"`
	SpecJSON     json.RawMessage `json:"spec"`
	Bundle       string          `json:"bundle"`
	Rootfs       string          `json:"rootfs"`
	NoPivot      bool            `json:"noPivot"`
	NoNewKeyring bool            `json:"noNewKeyring"`
	PreserveFDs  int             `json:"preserveFds"`
	FifoFd       int             `json:"fifoFd"`
	NewUserNS    bool            `json:"newUserns"`
	NewCgroupNS  bool            `json:"newCgroupns"`
	NewNetNS     bool            `json:"newNetns"`
	// ConsoleFd receives the pty master (process.terminal); 0 for none.
	ConsoleFd int `json:"consoleFd,omitempty"`
	// IDMapFds maps the index of an id-mapped bind mount to the fd of
	// its detached, already id-mapped clone (see idmappedMounts).
	IDMapFds map[int]int `json:"idmapFds,omitempty"`
	// Exec: join a running container (namespaces already joined by stage
	// 0) instead of setting one up.
	Exec bool `json:"exec,omitempty"`
	// HostPid is the init's pid as the runtime sees it (for hook state).
	HostPid int `json:"hostPid,omitempty"`
	// Cgroups lists the host's hierarchies and the container's directory in
	// each, for `type: cgroup` mounts.
	Cgroups []cgroupMount `json:"cgroups,omitempty"`

	// procCtx, when the runtime prepares the rootfs itself, is an
	// fsopen("proc") context the container's process opened in its pid
	// namespace, for the proc mount.
	procCtx *os.File
}

type cgroupMount struct {
	Mountpoint string `json:"mountpoint"`
	Key        string `json:"key"`
	V2         bool   `json:"v2"`
	Path       string `json:"path"` // container's cgroup dir on the host
}

// Create sets up a container up to the point where only the user process's
// execve is left, and records it as created. On failure nothing is left
// behind: no process, cgroup or state directory.
func Create(o CreateOpts) (_ *Container, _ int, err error) {
	if err := ValidateID(o.ID); err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return nil, 0, fmt.Errorf("create state root %s: %w", o.Root, err)
	}
	dir := filepath.Join(o.Root, o.ID)
	if fileExists(dir) {
		return nil, 0, fmt.Errorf("container with id exists: %s: %w", o.ID, errdefs.ErrExists)
	}
	mgr, err := cgroups.New(o.Spec.Linux.CgroupsPath, o.ID)
	if err != nil {
		return nil, 0, err
	}
	if o.Config == nil {
		if o.Config, err = json.Marshal(o.Spec); err != nil {
			return nil, 0, err
		}
	}
	h := o.Spec.Hooks
	st := &State{
		OCIVersion:  specs.Version,
		ID:          o.ID,
		Status:      Creating,
		Bundle:      o.Bundle,
		Rootfs:      spec.RootfsPath(o.Spec, o.Bundle),
		Created:     time.Now().UTC(),
		Owner:       owner(os.Geteuid()),
		Annotations: o.Spec.Annotations,
		// Intent: the cgroups are recorded before they are made.
		CgroupPaths: mgr.Paths,
		Config:      o.Config,
		NoProcess:   o.Spec.Process == nil,
		PostHooks:   h != nil && len(h.Poststart)+len(h.Poststop) > 0,
	}
	lock, err := stageDir(o.Root, dir, st)
	if err != nil {
		return nil, 0, err
	}
	c := &Container{root: o.Root, id: o.ID, dir: dir, lock: lock, state: st}
	defer func() {
		if err != nil {
			st.Status = Stopped
			c.destroy()
		}
	}()
	pid, err := c.startInit(o, mgr)
	if err != nil {
		return nil, 0, fmt.Errorf("create container %s: %w", o.ID, err)
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, pid); err != nil {
			return nil, 0, err
		}
	}
	return c, pid, nil
}

// stageDir makes the container's state directory as a whole: prepared and
// locked under a name no id can have, with its first state.json, then
// renamed to the id without replacing anything. A create killed before the
// rename leaves a staging directory that holds nothing else (swept by
// list); after it, the state names every resource before it is made. The lock (on the directory, not its name) carries over.
func stageDir(root, dir string, st *State) (*os.File, error) {
	staging, err := os.MkdirTemp(root, stagingPrefix)
	if err != nil {
		return nil, fmt.Errorf("create state directory in %s: %w", root, err)
	}
	lock, err := lockDir(staging, st.ID)
	if err == nil {
		if err = writeStateFile(staging, st); err == nil {
			err = unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
			if err == unix.EEXIST {
				err = fmt.Errorf("container with id exists: %s: %w", st.ID, errdefs.ErrExists)
			} else if err != nil {
				err = fmt.Errorf("create state directory %s: %w", dir, err)
			}
		}
	}
	if err != nil {
		os.RemoveAll(staging)
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	return lock, nil
}

// WritePidFile writes pid to path atomically (a reader never sees a
// partial file), as engines expect of --pid-file.
func WritePidFile(path string, pid int) error { return writePidFile(path, pid) }

func writePidFile(path string, pid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	return nil
}

type nsJoin struct {
	flag uintptr
	path string
}

func namespacePlan(s *specs.Spec) (clone uintptr, joins []nsJoin) {
	for _, ns := range s.Linux.Namespaces {
		f, _ := spec.NamespaceFlag(ns.Type)
		if ns.Path == "" {
			clone |= f
		} else {
			joins = append(joins, nsJoin{f, ns.Path})
		}
	}
	// Join the user namespace first so the others are joined with its
	// privileges.
	sort.SliceStable(joins, func(i, j int) bool {
		return joins[i].flag == unix.CLONE_NEWUSER && joins[j].flag != unix.CLONE_NEWUSER
	})
	return clone, joins
}

// Bootstrap sync flags (see nsexec.c).
const (
	bootSyncMaps    = 1 << 0 // wait for the parent to write id maps / time offsets
	bootNonDumpable = 1 << 1 // PR_SET_DUMPABLE 0 before joining anything
	bootTail        = 1 << 2 // after the pid, the C tail applies a msgTail plan
)

// bootstrapMsg encodes stage 0's instructions (nsexec.c): clone flags, sync
// flags, the namespaces to join, and the cgroup v1 tasks files stage 0
// writes "0" to, moving itself in before anything else.
func bootstrapMsg(clone uintptr, sync, nonDumpable, tail bool, joins []nsJoin, tasks []string) []byte {
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b[0:], uint32(clone))
	var flags uint32
	if sync {
		flags |= bootSyncMaps
	}
	if nonDumpable {
		flags |= bootNonDumpable
	}
	if tail {
		flags |= bootTail
	}
	binary.LittleEndian.PutUint32(b[4:], flags)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(joins)))
	for _, j := range joins {
		b = binary.LittleEndian.AppendUint32(b, uint32(j.flag))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(j.path)))
		b = append(b, j.path...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(tasks)))
	for _, t := range tasks {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t)))
		b = append(b, t...)
	}
	return b
}

// startInit creates the container's init: cgroup, exec fifo, namespaces,
// then the Go init's setup, and records the container as created.
func (c *Container) startInit(o CreateOpts, mgr *cgroups.Manager) (int, error) {
	s := o.Spec
	st := c.state

	fifo := filepath.Join(c.dir, fifoName)
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return 0, fmt.Errorf("create exec fifo %s: %w", fifo, err)
	}
	// Opened read-write so the open never blocks; the init keeps it and
	// blocks in read(2) until `start` writes.
	fifoFile, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open exec fifo %s: %w", fifo, err)
	}
	defer fifoFile.Close()
	extra := []*os.File{fifoFile}
	if o.ConsoleSocket != nil {
		extra = append(extra, o.ConsoleSocket)
	}

	clone, joins := namespacePlan(s)
	var idmaps *idMapPlan
	if clone&unix.CLONE_NEWUSER != 0 {
		if idmaps, err = planIDMaps(s); err != nil {
			return 0, err
		}
	}
	syncFd := 3 + o.PreserveFDs
	cfg := initConfig{
		ID: o.ID, SpecJSON: o.Config, Bundle: o.Bundle, Rootfs: st.Rootfs,
		NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring, PreserveFDs: o.PreserveFDs,
		FifoFd:      syncFd + 1,
		NewUserNS:   clone&unix.CLONE_NEWUSER != 0,
		NewCgroupNS: clone&unix.CLONE_NEWCGROUP != 0,
		NewNetNS:    clone&unix.CLONE_NEWNET != 0,
	}
	if o.ConsoleSocket != nil {
		cfg.ConsoleFd = syncFd + 2
	}
	idmapped, err := idmappedMounts(s, o.Bundle)
	if err != nil {
		return 0, err
	}
	for i, f := range idmapped {
		defer f.Close()
		if cfg.IDMapFds == nil {
			cfg.IDMapFds = map[int]int{}
		}
		cfg.IDMapFds[i] = syncFd + 1 + len(extra)
		extra = append(extra, f)
	}
	if needsCgroupMount(s) {
		hs, err := mgr.MountedHierarchies()
		if err != nil {
			return 0, fmt.Errorf("list cgroup hierarchies: %w", err)
		}
		for _, h := range hs {
			cfg.Cgroups = append(cfg.Cgroups, cgroupMount{Mountpoint: h.Mountpoint, Key: h.Key, V2: h.V2, Path: mgr.Paths[h.Key]})
		}
	}
	so := spawnOpts{
		preserveFDs: o.PreserveFDs, extra: extra,
		stdin: o.Stdin, stdout: o.Stdout, stderr: o.Stderr,
		cgroup: mgr, createCgroup: true, rootless: o.Rootless, resources: s.Linux.Resources, devices: s.Linux.Devices,
		clone: clone, joins: joins, holdExe: o.Foreground,
		needSync:  clone&unix.CLONE_NEWUSER != 0 || (clone&unix.CLONE_NEWTIME != 0 && len(s.Linux.TimeOffsets) > 0),
		writeMaps: func(stage0 int) error { return writeIDMaps(stage0, s, clone, idmaps) },
		onPid: func(pid int, start uint64) error {
			st.Pid, st.InitStartTime = pid, start
			// Recorded with "created" once the init is ready: until then
			// a create killed midway is cleaned up through the cgroup
			// (destroy kills what is in it), and each state rewrite on
			// a disk mounted with discard costs a synchronous discard of
			// the old file's block. Without a cgroup the pid is the only
			// way to the init, so it is written now.
			if mgr != nil && len(mgr.Paths) > 0 {
				return nil
			}
			return writeStateFile(c.dir, st)
		},
	}
	hooks := c.createHooks(o)
	if ok, why := canPrepareInRuntime(o, clone, joins, len(idmapped)); ok {
		// The usual case: this process makes the mounts and the C tail
		// applies the process settings (prepare_linux.go).
		cfg.Spec = s
		if so.tail, err = initPlan(s, &cfg); err != nil {
			return 0, err
		}
		for _, m := range s.Mounts {
			so.procContext = so.procContext || (m.Type == "proc" && !isBindMount(m))
		}
		so.prepare = func(parent *os.File, pid int) error {
			if so.procContext {
				ctx, err := requestProcContext(parent)
				if err != nil {
					return err
				}
				defer ctx.Close()
				cfg.procCtx = ctx
			}
			var h func() error
			if hooks != nil {
				h = func() error { return hooks(pid) }
			}
			return prepareRootfs(pid, &cfg, h)
		}
	} else {
		slog.Debug("container init: the Go init prepares the rootfs", "id", o.ID, "why", why)
		so.config = &cfg
		so.hooks = hooks
		so.notify = seccompNotify(s.Linux.Seccomp, o.ID, o.Bundle, Creating, s.Annotations)
	}
	pid, start, err := spawn(so)
	if err != nil {
		return 0, err
	}
	if skipped := mgr.Skipped(); len(skipped) > 0 {
		note := "rootless: the container runs outside these cgroup hierarchies, which are not delegated to this user (uid " + strconv.Itoa(os.Geteuid()) + "): no limits, stats or freezing there"
		if len(mgr.Paths) == 0 {
			note = "rootless: no cgroup is delegated to this user (uid " + strconv.Itoa(os.Geteuid()) + "), so the container runs without one: no resource limits, stats or pause"
		}
		slog.Warn(note, "id", o.ID, "skipped", strings.Join(skipped, " "))
	}
	st.CgroupPaths = mgr.Paths
	st.Pid = pid
	st.InitStartTime = start
	st.Status = Created
	slog.Debug("container created", "id", o.ID, "pid", pid, "cgroups", len(mgr.Paths))
	if err := writeStateFile(c.dir, st); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return 0, err
	}
	return pid, nil
}

// spawnOpts describes one run of the init protocol (see sync.go), for a
// container's init (create) or a process joining it (exec).
type spawnOpts struct {
	preserveFDs int
	// extra are runtime fds for the init, after the sync socket: the
	// child sees extra[i] as fd 3+preserveFDs+1+i.
	extra                 []*os.File
	stdin, stdout, stderr *os.File

	cgroup       *cgroups.Manager
	createCgroup bool // create it and write resources (create), or join it (exec)
	resources    *specs.LinuxResources
	devices      []specs.LinuxDevice

	// rootless: cgroups not delegated to the caller are skipped, not
	// fatal (--rootless, see cgroups.Manager.CreateDelegated).
	rootless bool

	clone       uintptr
	joins       []nsJoin
	needSync    bool // stage 0 waits for writeMaps
	nonDumpable bool // joining a live container: keep its processes out of ours
	writeMaps   func(stage0 int) error
	// Exactly one of config (the Go init) and tail (the C tail, see
	// tail_linux.go) is set.
	config *initConfig
	tail   []byte
	// holdExe keeps this process's reference to the sealed binary until
	// the container's process has executed its program (EOF on the sync
	// socket, whose end there is close-on-exec), then drops it on another
	// goroutine. The binary's private mount is unmounted when its last
	// reference goes, and that waits for an expedited RCU grace period
	// (namespace_unlock; ~1 ms on the benchmark VM): in the container's
	// execve, on the way to its program, unless this process holds one.
	// Only for a caller that stays (foreground run and exec): one that
	// exits at once would wait for the grace period at its exit instead.
	holdExe bool
	// prepare, with tail, runs after onPid and before the plan is sent:
	// the runtime's own part of the init's setup (prepare_linux.go).
	prepare func(parent *os.File, pid int) error
	// procContext: stage 0's process sends a proc fs context (see
	// requestProcContext) before it reads the plan.
	procContext bool
	// hooks, when set, runs when the init reports its mounts are done
	// (prestart and createRuntime hooks); the init waits for it.
	hooks func(pid int) error
	// notify, when set, receives the seccomp notify fd before ready.
	notify func(parent *os.File, pid int) error
	// onPid, when set, records the container process's pid and start
	// time as soon as they are known, before it is configured: a warren
	// killed from then on leaves a state that names the process.
	onPid func(pid int, start uint64) error
}

// spawn starts `warren init` from the sealed binary, runs the protocol and
// returns the host pid of the process that will exec the user's program,
// and its start time, once it reports ready. On error nothing it started
// is left running.
func spawn(o spawnOpts) (int, uint64, error) {
	pid, start, err := spawnInit(o)
	if err != nil && o.createCgroup && o.cgroup != nil {
		// A new cgroup: any OOM kill or pids-limit hit in it was our
		// init's, which then dies without a useful word.
		switch {
		case o.cgroup.OOMKillCount() > 0:
			need := "a few hundred KiB"
			if o.config != nil {
				need = "about 2 MiB with this config (the Go init)"
			}
			err = fmt.Errorf("%w: the container's init was killed by the OOM killer while setting up: linux.resources.memory.limit is too small (warren's init needs %s before it executes the process)", err, need)
		case o.cgroup.PidsLimitHits() > 0:
			if r := o.resources; r != nil && r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0 {
				need := 2
				if o.config != nil {
					need = 5 // the Go init's threads
				}
				err = fmt.Errorf("%w: the container's init could not start a process or thread: linux.resources.pids.limit is too small (warren's init needs %d tasks before it executes the process)", err, need)
			} else {
				err = fmt.Errorf("%w: the container's init could not start a process or thread: the pids limit of a cgroup above the container's is exhausted", err)
			}
		}
	}
	return pid, start, err
}

func spawnInit(o spawnOpts) (int, uint64, error) {
	exe, err := linux.SealedSelfExe()
	if err != nil {
		return 0, 0, err
	}
	held := false
	defer func() {
		if !held {
			exe.Close()
		}
	}()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("create sync socket: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "sync-parent")
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	defer func() {
		if !held {
			parent.Close()
		}
	}()

	var files []*os.File
	for i := 0; i < o.preserveFDs; i++ {
		files = append(files, os.NewFile(uintptr(3+i), "preserved-fd-"+strconv.Itoa(3+i)))
	}
	syncFd := 3 + len(files)
	files = append(files, child)
	files = append(files, o.extra...)
	files = append(files, exe)
	exeFd := 3 + len(files) - 1

	mgr := o.cgroup
	// On cgroup v2 the process is born in its cgroup (clone3
	// CLONE_INTO_CGROUP). On v1 stage 0 moves itself in, first thing
	// (selfJoin: "0" written to each hierarchy's tasks file): a process
	// moved in by another one takes the kernel's global cgroup
	// threadgroup lock, and the first writer waits for an expedited RCU
	// grace period (1.2-1.7 ms on the benchmark VM); a single-threaded
	// process moving its own thread does not take it. The v2 part of a
	// hybrid layout is joined by CLONE_INTO_CGROUP. Rootless mode still
	// moves it from here: there a hierarchy the caller may not write to is
	// dropped instead of failing (AddPidDelegated).
	selfJoin := mgr != nil && !o.rootless && !mgr.Unified() && len(mgr.Paths) > 0
	var tasks []string
	if selfJoin {
		if o.createCgroup {
			if err := mgr.Create(); err != nil {
				return 0, 0, err
			}
			// Limits apply to the cgroup, so they can be set before
			// anything is in it.
			if err := mgr.Set(o.resources, o.devices); err != nil {
				return 0, 0, err
			}
		}
		tasks = mgr.V1TasksFiles()
	}
	if mgr != nil && o.rootless && o.createCgroup {
		if err := mgr.CreateDelegated(); err != nil {
			return 0, 0, err
		}
	}
	var cgFile *os.File
	if mgr != nil && (mgr.Unified() || selfJoin && mgr.Paths[""] != "") {
		if o.createCgroup && !selfJoin {
			if err := mgr.Create(); err != nil {
				return 0, 0, err
			}
		}
		if cgFile, err = mgr.OpenV2(); err != nil {
			return 0, 0, fmt.Errorf("open cgroup %s: %w", mgr.Paths[""], err)
		}
		defer cgFile.Close()
	}
	// syscall.ForkExec, not os/exec: os.StartProcess first checks, once per
	// process, that pidfds work by cloning and reaping a throw-away child
	// (~0.4 ms), and warren waits for its children with wait4 anyway.
	fdList := []uintptr{orStd(o.stdin, os.Stdin).Fd(), orStd(o.stdout, os.Stdout).Fd(), orStd(o.stderr, os.Stderr).Fd()}
	for _, f := range files {
		fdList = append(fdList, f.Fd())
	}
	exePath := "/proc/self/fd/" + strconv.Itoa(exeFd)
	startChild := func(cgFile *os.File) (int, error) {
		attr := &syscall.ProcAttr{
			Env:   []string{nsexec.EnvInitPipe + "=" + strconv.Itoa(syncFd), "GOMAXPROCS=1"},
			Files: fdList,
		}
		if e := nsexec.SigmaskEnv(); e != "" {
			attr.Env = append(attr.Env, e)
		}
		if cgFile != nil {
			attr.Sys = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgFile.Fd())}
		}
		return syscall.ForkExec(exePath, []string{"warren", "init"}, attr)
	}
	stage0, err := startChild(cgFile)
	if err != nil && cgFile != nil && o.rootless && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
		// Born into a cgroup needs write access to the cgroup.procs of
		// its and our common ancestor: without it the cgroup is not
		// really delegated to us.
		if o.createCgroup {
			slog.Debug("rootless: cannot start in the container's cgroup; going without", "cgroup", mgr.Paths[""], "err", err)
			mgr.Drop()
		} else {
			// exec: the container keeps its cgroup; this process
			// stays outside it.
			slog.Warn("rootless: cannot join the container's cgroup (not delegated to this user from here); the process runs outside it", "cgroup", mgr.Paths[""])
		}
		stage0, err = startChild(nil)
	}
	goruntime.KeepAlive(files) // their finalizers would close the fds
	if err != nil {
		child.Close()
		if errors.Is(err, unix.EAGAIN) {
			// warren itself could not fork: the init is not in the
			// container's cgroup yet, so the limit hit is warren's.
			return 0, 0, fmt.Errorf("start container init: %w (warren could not create a process: the pids limit of the cgroup warren runs in, or its RLIMIT_NPROC, is exhausted)", err)
		}
		return 0, 0, fmt.Errorf("start container init: %w", err)
	}
	child.Close()
	pid := 0
	ok := false
	defer func() {
		if !ok {
			if pid > 0 && pid != stage0 {
				unix.Kill(pid, unix.SIGKILL)
			}
			unix.Kill(stage0, unix.SIGKILL)
			waitChild(stage0)
		}
	}()

	// Into the cgroup, with its limits, before any namespace is created
	// and before any user code runs: a new cgroup namespace is rooted at
	// the cgroup its creator is in. Only rootless mode on v1 is left to
	// move stage 0 from here (selfJoin and CLONE_INTO_CGROUP cover the
	// rest).
	if o.rootless && cgFile == nil && mgr != nil && len(mgr.Paths) > 0 {
		if err := mgr.AddPidDelegated(stage0); err != nil {
			return 0, 0, err
		}
	}
	if o.createCgroup && !selfJoin {
		if err := mgr.Set(o.resources, o.devices); err != nil {
			return 0, 0, err
		}
	}

	boot := bootstrapMsg(o.clone, o.needSync, o.nonDumpable, o.tail != nil, o.joins, tasks)
	if o.procContext {
		binary.LittleEndian.PutUint32(boot[4:], binary.LittleEndian.Uint32(boot[4:])|bootProcCtx)
	}
	if err := writeMsg(parent, msgBootstrap, boot); err != nil {
		return 0, 0, fmt.Errorf("send bootstrap to init: %w", err)
	}
	if o.needSync {
		if _, err := readMsg(parent, msgIDMapReq); err != nil {
			return 0, 0, err
		}
		if err := o.writeMaps(stage0); err != nil {
			return 0, 0, err
		}
		if err := writeMsg(parent, msgIDMapAck, nil); err != nil {
			return 0, 0, fmt.Errorf("sync with init: %w", err)
		}
	}
	p, err := readMsg(parent, msgPid)
	if err != nil {
		return 0, 0, err
	}
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("sync protocol: bad pid message")
	}
	pid = int(int32(binary.LittleEndian.Uint32(p)))
	if pid != stage0 {
		// Stage 0 forked into the pid namespace and exits.
		if err := waitChild(stage0); err != nil {
			return 0, 0, fmt.Errorf("container init stage 0: %w", err)
		}
	}
	start, _, err := procStartTime(pid)
	if err != nil {
		return 0, 0, fmt.Errorf("container process (pid %d) exited during setup", pid)
	}
	if o.onPid != nil {
		if err := o.onPid(pid, start); err != nil {
			return 0, 0, err
		}
	}
	if o.tail != nil {
		if o.prepare != nil {
			if err := o.prepare(parent, pid); err != nil {
				return 0, 0, err
			}
		}
		if err := writeMsg(parent, msgTail, o.tail); err != nil {
			return 0, 0, fmt.Errorf("send the process plan to init: %w", err)
		}
	} else {
		o.config.HostPid = pid
		if o.config.SpecJSON == nil {
			if o.config.SpecJSON, err = json.Marshal(o.config.Spec); err != nil {
				return 0, 0, err
			}
		}
		b, err := json.Marshal(o.config)
		if err != nil {
			return 0, 0, err
		}
		if err := writeMsg(parent, msgConfig, b); err != nil {
			return 0, 0, fmt.Errorf("send config to init: %w", err)
		}
	}
	if o.hooks != nil {
		if _, err := readMsg(parent, msgHooks); err != nil {
			return 0, 0, err
		}
		if err := o.hooks(pid); err != nil {
			return 0, 0, err
		}
		if err := writeMsg(parent, msgHooksDone, nil); err != nil {
			return 0, 0, fmt.Errorf("sync with init: %w", err)
		}
	}
	if o.notify != nil {
		if err := o.notify(parent, pid); err != nil {
			return 0, 0, err
		}
	}
	if _, err := readMsg(parent, msgReady); err != nil {
		return 0, 0, err
	}
	ok = true
	if o.holdExe {
		held = true
		go func() {
			var b [64]byte
			for {
				if _, err := parent.Read(b[:]); err != nil {
					break
				}
			}
			parent.Close()
			exe.Close()
		}()
	}
	return pid, start, nil
}

// seccompNotify returns the parent's part of a profile with notify actions.
func seccompNotify(sc *specs.LinuxSeccomp, id, bundle string, status specs.ContainerState, ann map[string]string) func(*os.File, int) error {
	if sc == nil || !linux.HasNotify(sc) {
		return nil
	}
	return func(parent *os.File, pid int) error {
		st := specs.State{Version: specs.Version, ID: id, Status: status, Pid: pid, Bundle: bundle, Annotations: ann}
		return recvSeccompFd(parent, sc, st, pid)
	}
}

// createHooks returns the parent's part of the create-time hooks, or nil
// when the config has none (then the init does not stop for them).
func (c *Container) createHooks(o CreateOpts) func(int) error {
	h := o.Spec.Hooks
	if !hasHooks(h, "prestart", "createRuntime", "createContainer") {
		return nil
	}
	return func(pid int) error {
		state := ociState(o.ID, o.Bundle, Creating, pid, o.Spec.Annotations)
		if err := runHooks("prestart", h.Prestart, state); err != nil {
			return err
		}
		return runHooks("createRuntime", h.CreateRuntime, state)
	}
}

func needsCgroupMount(s *specs.Spec) bool {
	for _, m := range s.Mounts {
		if m.Type == "cgroup" || m.Type == "cgroup2" {
			return true
		}
	}
	return false
}

// waitChild reaps the child pid and reports how it ended, as os/exec would.
func waitChild(pid int) error {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		break
	}
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("signal: %v", ws.Signal())
	}
	return fmt.Errorf("wait status %#x", uint32(ws))
}

func orStd(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

func formatMap(m []specs.LinuxIDMapping) string {
	var b strings.Builder
	for _, e := range m {
		fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
	}
	return b.String()
}

// writeIDMaps writes the new user namespace's maps and the new time
// namespace's offsets for stage 0 (pid), through a verified procfs handle.
func writeIDMaps(pid int, s *specs.Spec, clone uintptr, plan *idMapPlan) error {
	proc, err := linux.OpenProc("/proc")
	if err != nil {
		return err
	}
	defer proc.Close()
	p := strconv.Itoa(pid)
	if clone&unix.CLONE_NEWUSER != 0 {
		if err := plan.write(proc, pid, s); err != nil {
			return err
		}
	}
	if clone&unix.CLONE_NEWTIME != 0 && len(s.Linux.TimeOffsets) > 0 {
		var b strings.Builder
		for _, clock := range []string{"monotonic", "boottime"} {
			if off, ok := s.Linux.TimeOffsets[clock]; ok {
				fmt.Fprintf(&b, "%s %d %d\n", clock, off.Secs, off.Nanosecs)
			}
		}
		if err := proc.Write(p+"/timens_offsets", b.String()); err != nil {
			return fmt.Errorf("linux.timeOffsets: %w", err)
		}
	}
	return nil
}
