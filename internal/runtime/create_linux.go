package runtime

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	Root         string
	ID           string
	Bundle       string // absolute
	Spec         *specs.Spec
	PidFile      string
	NoPivot      bool
	NoNewKeyring bool
	PreserveFDs  int
	// Stdio for the container's init; nil means this process's.
	Stdin, Stdout, Stderr *os.File
}

// initConfig is what the parent sends the Go part of init (msgConfig).
type initConfig struct {
	ID           string      `json:"id"`
	Spec         *specs.Spec `json:"spec"`
	Bundle       string      `json:"bundle"`
	Rootfs       string      `json:"rootfs"`
	NoPivot      bool        `json:"noPivot"`
	NoNewKeyring bool        `json:"noNewKeyring"`
	PreserveFDs  int         `json:"preserveFds"`
	FifoFd       int         `json:"fifoFd"`
	NewUserNS    bool        `json:"newUserns"`
	NewCgroupNS  bool        `json:"newCgroupns"`
	NewNetNS     bool        `json:"newNetns"`
	// Cgroups lists the host's hierarchies and the container's directory in
	// each, for `type: cgroup` mounts.
	Cgroups []cgroupMount `json:"cgroups,omitempty"`
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
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, 0, fmt.Errorf("container with id exists: %s: %w", o.ID, errdefs.ErrExists)
		}
		return nil, 0, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	lock, err := lockDir(dir, o.ID)
	if err != nil {
		os.RemoveAll(dir)
		return nil, 0, err
	}
	st := &State{
		OCIVersion:  specs.Version,
		ID:          o.ID,
		Status:      Creating,
		Bundle:      o.Bundle,
		Rootfs:      spec.RootfsPath(o.Spec, o.Bundle),
		Created:     time.Now().UTC(),
		Owner:       owner(os.Geteuid()),
		Annotations: o.Spec.Annotations,
	}
	c := &Container{root: o.Root, id: o.ID, dir: dir, lock: lock, state: st}
	defer func() {
		if err != nil {
			st.Status = Stopped
			c.destroy()
		}
	}()
	if err := writeStateFile(dir, st); err != nil {
		return nil, 0, err
	}
	pid, err := c.startInit(o)
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

func bootstrapMsg(clone uintptr, sync bool, joins []nsJoin) []byte {
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b[0:], uint32(clone))
	if sync {
		binary.LittleEndian.PutUint32(b[4:], 1)
	}
	binary.LittleEndian.PutUint32(b[8:], uint32(len(joins)))
	for _, j := range joins {
		b = binary.LittleEndian.AppendUint32(b, uint32(j.flag))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(j.path)))
		b = append(b, j.path...)
	}
	return b
}

// startInit runs the init through the sync protocol (see sync.go) and
// returns its host pid once it reports ready.
func (c *Container) startInit(o CreateOpts) (int, error) {
	s := o.Spec
	st := c.state
	var mgr *cgroups.Manager
	mgr, err := cgroups.New(s.Linux.CgroupsPath, o.ID)
	if err != nil {
		return 0, err
	}
	st.CgroupPaths = mgr.Paths
	st.Resources = s.Linux.Resources
	st.Devices = s.Linux.Devices
	if err := writeStateFile(c.dir, st); err != nil {
		return 0, err
	}

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

	exe, err := linux.SealedSelfExe()
	if err != nil {
		return 0, err
	}
	defer exe.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("create sync socket: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "sync-parent")
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	defer parent.Close()

	var extra []*os.File
	for i := 0; i < o.PreserveFDs; i++ {
		extra = append(extra, os.NewFile(uintptr(3+i), "preserved-fd-"+strconv.Itoa(3+i)))
	}
	syncFd := 3 + len(extra)
	extra = append(extra, child, fifoFile, exe)
	exeFd := 3 + len(extra) - 1

	// On cgroup v2 the init is born in its cgroup (clone3
	// CLONE_INTO_CGROUP); on v1 it is moved in right after it starts.
	var cgFile *os.File
	if mgr.Unified() {
		if err := mgr.Create(); err != nil {
			return 0, err
		}
		if cgFile, err = mgr.OpenV2(); err != nil {
			return 0, fmt.Errorf("open cgroup %s: %w", mgr.Paths[""], err)
		}
		defer cgFile.Close()
	}
	cmd := &exec.Cmd{
		Path:       "/proc/self/fd/" + strconv.Itoa(exeFd),
		Args:       []string{"warren", "init"},
		Env:        []string{nsexec.EnvInitPipe + "=" + strconv.Itoa(syncFd)},
		Stdin:      orStd(o.Stdin, os.Stdin),
		Stdout:     orStd(o.Stdout, os.Stdout),
		Stderr:     orStd(o.Stderr, os.Stderr),
		ExtraFiles: extra,
	}
	if cgFile != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgFile.Fd())}
	}
	if err := cmd.Start(); err != nil {
		child.Close()
		return 0, fmt.Errorf("start container init: %w", err)
	}
	child.Close()
	stage0 := cmd.Process.Pid
	initPid := 0
	ok := false
	defer func() {
		if !ok {
			if initPid > 0 && initPid != stage0 {
				unix.Kill(initPid, unix.SIGKILL)
			}
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	// Into the cgroup, with its limits, before any namespace is created
	// and before any user code runs: a new cgroup namespace is rooted at
	// the cgroup its creator is in.
	if cgFile == nil {
		if err := mgr.Apply(stage0); err != nil {
			return 0, err
		}
	}
	if err := mgr.Set(s.Linux.Resources, s.Linux.Devices); err != nil {
		return 0, err
	}

	clone, joins := namespacePlan(s)
	needSync := clone&unix.CLONE_NEWUSER != 0 || (clone&unix.CLONE_NEWTIME != 0 && len(s.Linux.TimeOffsets) > 0)
	if err := writeMsg(parent, msgBootstrap, bootstrapMsg(clone, needSync, joins)); err != nil {
		return 0, fmt.Errorf("send bootstrap to init: %w", err)
	}
	if needSync {
		if _, err := readMsg(parent, msgIDMapReq); err != nil {
			return 0, err
		}
		if err := writeIDMaps(stage0, s, clone); err != nil {
			return 0, err
		}
		if err := writeMsg(parent, msgIDMapAck, nil); err != nil {
			return 0, fmt.Errorf("sync with init: %w", err)
		}
	}
	p, err := readMsg(parent, msgPid)
	if err != nil {
		return 0, err
	}
	if len(p) != 4 {
		return 0, fmt.Errorf("sync protocol: bad pid message")
	}
	initPid = int(int32(binary.LittleEndian.Uint32(p)))
	if initPid != stage0 {
		// Stage 0 forked the init into the new pid namespace and exits.
		if err := cmd.Wait(); err != nil {
			return 0, fmt.Errorf("container init stage 0: %w", err)
		}
	}
	start, _, err := procStartTime(initPid)
	if err != nil {
		return 0, fmt.Errorf("container init (pid %d) exited during setup", initPid)
	}

	cfg := initConfig{
		ID: o.ID, Spec: s, Bundle: o.Bundle, Rootfs: st.Rootfs,
		NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring, PreserveFDs: o.PreserveFDs,
		FifoFd:      syncFd + 1,
		NewUserNS:   clone&unix.CLONE_NEWUSER != 0,
		NewCgroupNS: clone&unix.CLONE_NEWCGROUP != 0,
		NewNetNS:    clone&unix.CLONE_NEWNET != 0,
	}
	if needsCgroupMount(s) {
		hs, err := cgroups.Hierarchies()
		if err != nil {
			return 0, fmt.Errorf("list cgroup hierarchies: %w", err)
		}
		for _, h := range hs {
			cfg.Cgroups = append(cfg.Cgroups, cgroupMount{Mountpoint: h.Mountpoint, Key: h.Key, V2: h.V2, Path: mgr.Paths[h.Key]})
		}
	}
	b, err := json.Marshal(&cfg)
	if err != nil {
		return 0, err
	}
	if err := writeMsg(parent, msgConfig, b); err != nil {
		return 0, fmt.Errorf("send config to init: %w", err)
	}
	if _, err := readMsg(parent, msgReady); err != nil {
		return 0, err
	}
	st.Pid = initPid
	st.InitStartTime = start
	st.Status = Created
	slog.Debug("container created", "id", o.ID, "pid", initPid, "cgroups", len(mgr.Paths))
	if err := writeStateFile(c.dir, st); err != nil {
		return 0, err
	}
	ok = true
	return initPid, nil
}

func needsCgroupMount(s *specs.Spec) bool {
	for _, m := range s.Mounts {
		if m.Type == "cgroup" || m.Type == "cgroup2" {
			return true
		}
	}
	return false
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
func writeIDMaps(pid int, s *specs.Spec, clone uintptr) error {
	proc, err := linux.OpenProc("/proc")
	if err != nil {
		return err
	}
	defer proc.Close()
	p := strconv.Itoa(pid)
	if clone&unix.CLONE_NEWUSER != 0 {
		if err := proc.Write(p+"/uid_map", formatMap(s.Linux.UIDMappings)); err != nil {
			return fmt.Errorf("linux.uidMappings: %w", err)
		}
		if err := proc.Write(p+"/gid_map", formatMap(s.Linux.GIDMappings)); err != nil {
			return fmt.Errorf("linux.gidMappings: %w", err)
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
