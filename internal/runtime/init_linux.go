package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"unsafe"

	json "github.com/go-json-experiment/json/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/linux"
	"github.com/warren-runtime/warren/internal/runtime/nsexec"
	"github.com/warren-runtime/warren/internal/spec"
)

func init() {
	// Credentials and capability sets are per thread, and the thread that
	// calls execve decides what the container gets: the init does all of
	// it on the main thread.
	if os.Getenv(nsexec.EnvInitPipe) != "" {
		goruntime.LockOSThread()
	}
}

// IsInit reports whether this process was started as a container's init.
func IsInit() bool { return os.Getenv(nsexec.EnvInitPipe) != "" }

// InitMain is the Go part of a container's init (stage 0 already ran in C).
// It never returns: it execs the user process or exits.
func InitMain() {
	fd, err := strconv.Atoi(os.Getenv(nsexec.EnvInitPipe))
	if err != nil {
		os.Exit(1)
	}
	os.Unsetenv(nsexec.EnvInitPipe)
	sock := os.NewFile(uintptr(fd), "sync")
	err = initContainer(sock)
	// Only errors get here.
	if err == nil {
		err = errors.New("init returned without exec")
	}
	writeMsg(sock, msgError, []byte(err.Error()))
	os.Exit(1)
}

func initContainer(sock *os.File) error {
	b, err := readMsg(sock, msgConfig)
	if err != nil {
		return err
	}
	var cfg initConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("decode init config: %w", err)
	}
	// As the runtime decoded it (spec.LoadRaw), without encoding/json's
	// cost of building encoders for every type it decodes into.
	if err := json.Unmarshal(cfg.SpecJSON, &cfg.Spec); err != nil {
		return fmt.Errorf("decode init config: spec: %w", err)
	}
	cfg.SpecJSON = nil
	// From here on no fd of ours but the ones passed on purpose may reach a
	// child: hooks run from this process (createContainer, startContainer)
	// must not inherit the sync socket, the exec fifo, the runtime binary
	// or anything the caller left open (CVE-2024-21626 class).
	if err := linux.CloseExecFrom(3 + cfg.PreserveFDs); err != nil {
		return err
	}
	if cfg.Exec {
		return initExec(sock, &cfg)
	}
	s := cfg.Spec
	fifo := os.NewFile(uintptr(cfg.FifoFd), "exec.fifo")

	// The init leads its own session, as in every runtime, so a terminal
	// and job control belong to the container.
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}

	if cfg.NewNetNS {
		if err := linux.LoopbackUp(); err != nil {
			return err
		}
	}
	proc, err := linux.OpenProc("/proc")
	if err != nil {
		return err
	}
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return fmt.Errorf("readlink /proc/self: %w", err)
	}

	if err := setupRootfs(&cfg); err != nil {
		proc.Close()
		return err
	}
	if h := s.Hooks; hasHooks(h, "prestart", "createRuntime", "createContainer") {
		// The parent runs prestart and createRuntime hooks now that the
		// namespaces and mounts exist; createContainer hooks run here, in
		// the container's namespaces, before pivot_root.
		if err := writeMsg(sock, msgHooks, nil); err != nil {
			return err
		}
		if _, err := readMsg(sock, msgHooksDone); err != nil {
			return err
		}
		state := ociState(cfg.ID, cfg.Bundle, Creating, cfg.HostPid, s.Annotations)
		if err := runHooks("createContainer", h.CreateContainer, state); err != nil {
			return err
		}
	}
	err = setNames(s, proc, self)
	proc.Close()
	if err != nil {
		return err
	}
	if !cfg.NoNewKeyring {
		if err := linux.JoinSessionKeyring("_ses." + cfg.ID); err != nil {
			return err
		}
	}
	if err := enterRootfs(&cfg); err != nil {
		return err
	}
	return finishAndExec(sock, &cfg, fifo)
}

// setNames sets what the container's namespaces hold besides mounts:
// hostname, domainname, sysctls (written through proc, the host's procfs
// opened before the mounts, in the caller's network and IPC namespaces)
// and the init's oom_score_adj (self: its pid in that procfs).
func setNames(s *specs.Spec, proc *linux.Proc, self string) error {
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("hostname: set %q: %w", s.Hostname, err)
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return fmt.Errorf("domainname: set %q: %w", s.Domainname, err)
		}
	}
	for _, key := range sortedKeys(s.Linux.Sysctl) {
		path := "sys/" + strings.ReplaceAll(strings.ReplaceAll(key, ".", "/"), "//", "/")
		if strings.Contains(key, "/") {
			path = "sys/" + key
		}
		if err := proc.Write(path, s.Linux.Sysctl[key]); err != nil {
			return fmt.Errorf("linux.sysctl[%q]: %w", key, err)
		}
	}
	if p := s.Process; p != nil && p.OOMScoreAdj != nil {
		if err := proc.Write(self+"/oom_score_adj", strconv.Itoa(*p.OOMScoreAdj)); err != nil {
			return fmt.Errorf("process.oomScoreAdj: %w", err)
		}
	}
	return nil
}

// initExec is the Go part of `warren exec`: stage 0 already joined every
// namespace of the container (so / is the container's root) and the parent
// put this process in its cgroup; only the process settings are left.
func initExec(sock *os.File, cfg *initConfig) error {
	p := cfg.Spec.Process
	if p.Terminal {
		if _, err := unix.Setsid(); err != nil {
			return fmt.Errorf("setsid: %w", err)
		}
	}
	return finishAndExec(sock, cfg, nil)
}

// setupTerminal gives the process a new pty from the container's devpts:
// the master goes to the caller through the console socket, the peer
// becomes stdio and controlling terminal and, for a container's init,
// /dev/console. The process must already lead its session.
func setupTerminal(cfg *initConfig) error {
	sock := os.NewFile(uintptr(cfg.ConsoleFd), "console-socket")
	defer sock.Close()
	root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	h, err := linux.OpenInRoot(root, "/dev/pts/ptmx")
	if err != nil {
		return fmt.Errorf("process.terminal: open /dev/pts/ptmx in the container (is devpts mounted on /dev/pts?): %w", err)
	}
	ptmx, err := linux.Reopen(h, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	h.Close()
	if err != nil {
		return fmt.Errorf("process.terminal: open /dev/pts/ptmx: %w", err)
	}
	master, peer, err := linux.OpenPty(ptmx)
	if err != nil {
		ptmx.Close()
		return fmt.Errorf("process.terminal: %w", err)
	}
	defer master.Close()
	defer peer.Close()
	if !cfg.Exec {
		// /dev/console is the container's terminal too: bind the peer
		// there, on a node checked to be a plain file or character device
		// in /dev itself, never through a symlink the image planted.
		target, err := consoleTarget(root)
		if err != nil {
			return fmt.Errorf("process.terminal: /dev/console: %w", err)
		}
		err = linux.BindMountFile(peer, target, linux.MountOptions{Flags: unix.MS_BIND})
		target.Close()
		if err != nil {
			return fmt.Errorf("process.terminal: bind the pty on /dev/console: %w", err)
		}
	}
	if sz := cfg.Spec.Process.ConsoleSize; sz != nil {
		ws := &unix.Winsize{Row: uint16(sz.Height), Col: uint16(sz.Width)}
		if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("process.consoleSize: %w", err)
		}
	}
	if err := linux.SendFd(sock, "/dev/ptmx", master); err != nil {
		return err
	}
	return linux.SetControllingTerminal(peer)
}

// loadSeccomp loads the filter; a notify listener fd goes to the parent,
// which hands it to linux.seccomp.listenerPath.
func loadSeccomp(sock *os.File, f *linux.Seccomp) error {
	notify, err := f.Load()
	if err != nil {
		return err
	}
	if notify == nil {
		return nil
	}
	defer notify.Close()
	if err := unix.Sendmsg(int(sock.Fd()), []byte{msgSeccompFd}, unix.UnixRights(int(notify.Fd())), nil, 0); err != nil {
		return fmt.Errorf("linux.seccomp: pass the notify fd to the runtime: %w", err)
	}
	_, err = readMsg(sock, msgSeccompDone)
	return err
}

// consoleTarget returns an O_PATH handle on /dev/console in the container,
// replacing whatever is there unless it is a regular file or a character
// device (CVE-2025-52565 class: a symlink would make the bind land on a
// file of the image's choosing).
func consoleTarget(root *os.File) (*os.File, error) {
	dev, err := linux.OpenInRoot(root, "/dev")
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	dfd := int(dev.Fd())
	var st unix.Stat_t
	err = unix.Fstatat(dfd, "console", &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFCHR {
		if err := unix.Unlinkat(dfd, "console", 0); err != nil {
			return nil, fmt.Errorf("remove the %#o node at /dev/console: %w", st.Mode&unix.S_IFMT, err)
		}
		err = unix.ENOENT
	}
	if err == unix.ENOENT {
		if err := unix.Mknodat(dfd, "console", unix.S_IFREG|0o600, 0); err != nil && err != unix.EEXIST {
			return nil, fmt.Errorf("create: %w", err)
		}
	} else if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(dfd, "console", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Fstat(fd, &st); err != nil || (st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFCHR) {
		unix.Close(fd)
		return nil, fmt.Errorf("not a regular file or character device")
	}
	return os.NewFile(uintptr(fd), "/dev/console"), nil
}

// finishAndExec applies the process settings every container process gets
// (terminal, cwd, umask, env, user, capabilities, no_new_privs), reports
// ready, waits on the exec fifo if there is one, and execs.
func finishAndExec(sock *os.File, cfg *initConfig, fifo *os.File) error {
	p := cfg.Spec.Process
	if p == nil {
		return waitWithoutProcess(sock, fifo)
	}
	if p.Terminal && cfg.ConsoleFd > 0 {
		if err := setupTerminal(cfg); err != nil {
			return err
		}
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.Chdir(cwd); err != nil {
		return fmt.Errorf("process.cwd: chdir to %s: %w", cwd, err)
	}
	// A cwd reached through a leaked host fd would be outside the root
	// (CVE-2024-21626): getcwd then reports it as unreachable.
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("process.cwd: %s is outside the container's root", cwd)
	}
	umask := 0o022
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	env := p.Env
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+homeDir(p.User.UID))
	}
	path, err := lookPath(p.Args[0], env)
	if err != nil {
		return err
	}
	// seccomp: compiled now, so a bad profile fails create; loaded as late
	// as possible, so that the user's program and little else runs under
	// it. Without no_new_privs loading needs CAP_SYS_ADMIN, so then it
	// happens before the capabilities are dropped (as in runc); with a
	// notify action it must happen before ready, for the listener to get
	// its fd while the runtime is still there.
	var filter *linux.Seccomp
	var sc *specs.LinuxSeccomp
	if cfg.Spec.Linux != nil {
		sc = cfg.Spec.Linux.Seccomp
	}
	if sc != nil {
		if filter, err = linux.CompileSeccomp(sc); err != nil {
			return err
		}
	}
	// rlimits now, after everything that allocates much (the seccomp
	// compiler above): a low RLIMIT_AS would otherwise starve the runtime
	// itself; still before the capabilities are dropped.
	for i, rl := range p.Rlimits {
		res, ok := spec.RlimitResource(rl.Type)
		if !ok {
			return fmt.Errorf("process.rlimits[%d].type: unknown rlimit %q", i, rl.Type)
		}
		if err := linux.SetRlimit(rl.Type, res, rl.Soft, rl.Hard); err != nil {
			return fmt.Errorf("process.rlimits[%d]: %w", i, err)
		}
	}
	loadEarly := filter != nil && (!p.NoNewPrivileges || linux.HasNotify(sc))
	if loadEarly && !p.NoNewPrivileges {
		if err := loadSeccomp(sock, filter); err != nil {
			return err
		}
	}
	if err := setUserAndCaps(p); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("process.noNewPrivileges: %w", err)
		}
		if loadEarly {
			if err := loadSeccomp(sock, filter); err != nil {
				return err
			}
		}
	}
	if err := writeMsg(sock, msgReady, nil); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	if fifo != nil {
		// Block until `warren start` writes the fifo.
		var one [1]byte
		for {
			n, err := unix.Read(int(fifo.Fd()), one[:])
			if err == unix.EINTR {
				continue
			}
			if err != nil || n != 1 {
				return fmt.Errorf("wait for start on exec fifo: %v", err)
			}
			break
		}
	}
	if h := cfg.Spec.Hooks; h != nil && len(h.StartContainer) > 0 && !cfg.Exec {
		state := ociState(cfg.ID, cfg.Bundle, Running, cfg.HostPid, cfg.Spec.Annotations)
		if err := runHooks("startContainer", h.StartContainer, state); err != nil {
			return err
		}
	}
	if err := linux.CloseExecFrom(3 + cfg.PreserveFDs); err != nil {
		return err
	}
	if filter != nil && !loadEarly {
		if _, err := filter.Load(); err != nil {
			return err
		}
	}
	if err := unix.Exec(path, p.Args, env); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// waitWithoutProcess is the init of a container created without a process
// (allowed: process is OPTIONAL until start, which refuses it). It reports
// ready and waits; delete ends it.
func waitWithoutProcess(sock *os.File, fifo *os.File) error {
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := writeMsg(sock, msgReady, nil); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	var one [1]byte
	for {
		_, err := unix.Read(int(fifo.Fd()), one[:])
		if err != unix.EINTR {
			break
		}
	}
	return errors.New("process: the config has no process to start")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func hasEnv(env []string, name string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, name+"=") {
			return true
		}
	}
	return false
}

// homeDir looks uid up in the container's /etc/passwd, as runc does when
// process.env has no HOME.
func homeDir(uid uint32) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "/"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) >= 6 && parts[2] == strconv.FormatUint(uint64(uid), 10) && parts[5] != "" {
			return parts[5]
		}
	}
	return "/"
}

// lookPath finds the executable inside the container using process.env's
// PATH, so a missing binary fails `create`, not `start`.
func lookPath(file string, env []string) (string, error) {
	check := func(p string) error {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return unix.EISDIR
		}
		if st.Mode&0o111 == 0 {
			return unix.EACCES
		}
		return nil
	}
	if strings.Contains(file, "/") {
		if err := check(file); err != nil {
			return "", fmt.Errorf("process.args[0]: exec %q: %w", file, err)
		}
		return file, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("process.args[0]: exec: %q: executable file not found in $PATH", file)
}

// capSets turns process.capabilities into masks (all empty without it),
// for the Go init and the C tail's plan alike.
func capSets(p *specs.Process) linux.CapSets {
	c := p.Capabilities
	if c == nil {
		return linux.CapSets{}
	}
	return linux.CapSets{
		Bounding: capMask(c.Bounding), Effective: capMask(c.Effective), Permitted: capMask(c.Permitted),
		Inheritable: capMask(c.Inheritable), Ambient: capMask(c.Ambient),
	}
}

func capMask(names []string) uint64 {
	var m uint64
	for _, n := range names {
		if v, ok := spec.CapabilityValue(n); ok {
			m |= 1 << uint(v)
		}
	}
	return m
}

// setUserAndCaps switches to process.user and sets the five capability sets.
// Order matters: the bounding set is reduced while CAP_SETPCAP is still
// effective, the uid changes with PR_SET_KEEPCAPS so permitted survives,
// then capset and ambient. All raw syscalls on this (locked) thread.
func setUserAndCaps(p *specs.Process) error {
	caps := capSets(p)
	last := linux.LastCap()
	if err := linux.DropBounding(caps.Bounding, last); err != nil {
		return fmt.Errorf("process.capabilities.bounding: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keepcaps: %w", err)
	}
	u := p.User
	groups := make([]uint32, 0, len(u.AdditionalGids))
	groups = append(groups, u.AdditionalGids...)
	var gp unsafe.Pointer
	if len(groups) > 0 {
		gp = unsafe.Pointer(&groups[0])
	}
	_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(gp), 0)
	goruntime.KeepAlive(groups)
	if e == unix.EPERM && setgroupsDenied() {
		// A rootless container mapping only its creator's gid: setgroups
		// is denied in its user namespace, and there are no groups.
		if len(groups) > 0 {
			return fmt.Errorf("process.user.additionalGids %v: setgroups(2) is denied in this user namespace (linux.gidMappings maps only the caller's own gid; map a range from /etc/subgid to use supplementary groups)", u.AdditionalGids)
		}
		e = 0
	}
	if e != 0 {
		return fmt.Errorf("process.user.additionalGids %v: setgroups: %w", u.AdditionalGids, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("process.user.gid %d: setresgid: %w (is it mapped in the user namespace?)", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("process.user.uid %d: setresuid: %w (is it mapped in the user namespace?)", u.UID, e)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	if err := linux.SetCaps(caps, last); err != nil {
		return fmt.Errorf("process.capabilities: %w", err)
	}
	return nil
}

func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}
