//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	busyboxPath = "/bin/busybox"
	// How long a single warren invocation may take before the test gives up
	// on it. This is a hang guard, not a timing assertion.
	commandTimeout = 2 * time.Minute
	// Generous deadline for polled state changes (a process exiting, a
	// status flipping to "stopped").
	pollDeadline = 20 * time.Second
)

var (
	warrenBin   string // absolute path of the warren binary under test
	testinitBin string // absolute path of the static testinit helper
	// sharedWarrenBin is a root-owned copy of warrenBin that any user can
	// reach and execute (rootless tests).
	sharedWarrenBin string
	specTemplate    []byte // `warren spec` output, the base of every bundle

	// Inodes of the test process's (= the host's) namespaces, keyed by the
	// /proc/self/ns entry name.
	hostNS map[string]uint64

	// The test process's own cgroup directory in every mounted hierarchy;
	// warren places a container without linux.cgroupsPath at <dir>/<id>.
	ownCgroupDirs []string

	hostMntNS string // readlink /proc/self/ns/mnt

	// cgroupV2: the host is cgroup v2 only (a cgroup2 mount at /sys/fs/cgroup).
	cgroupV2 bool

	idCounter atomic.Int64
)

var busyboxApplets = []string{
	"sh", "ash", "cat", "echo", "env", "false", "grep", "hostname", "id", "kill",
	"ls", "mkdir", "ps", "rm", "sleep", "stat", "test", "touch", "true",
}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: warren integration tests must run as root (they create namespaces, cgroups and mounts); skipping all")
		os.Exit(0)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if _, err := os.Stat(busyboxPath); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %s is required (apt-get install busybox-static): %v\n", busyboxPath, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "warren-integration-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	if p := os.Getenv("WARREN_BINARY"); p != "" {
		if warrenBin, err = filepath.Abs(p); err == nil {
			_, err = os.Stat(warrenBin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "integration: WARREN_BINARY=%s: %v\n", p, err)
			return 1
		}
	} else {
		warrenBin = filepath.Join(dir, "warren")
		if err := goBuild(warrenBin, "github.com/warren-runtime/warren/cmd/warren", false); err != nil {
			fmt.Fprintln(os.Stderr, "integration: building warren:", err)
			return 1
		}
	}
	// WARREN_TESTINIT names a prebuilt static testinit (the cgroup v2 VM
	// has no Go toolchain).
	if p := os.Getenv("WARREN_TESTINIT"); p != "" {
		if testinitBin, err = filepath.Abs(p); err == nil {
			_, err = os.Stat(testinitBin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "integration: WARREN_TESTINIT=%s: %v\n", p, err)
			return 1
		}
	} else {
		testinitBin = filepath.Join(dir, "testinit")
		if err := goBuild(testinitBin, "github.com/warren-runtime/warren/tests/testinit", true); err != nil {
			fmt.Fprintln(os.Stderr, "integration: building testinit:", err)
			return 1
		}
	}

	// A root-owned copy of warren in a directory every user may traverse
	// (the checkout may live under /root), for the rootless tests. Made
	// here, before tests run in parallel: a copy written while another
	// test forks could fail to execute with ETXTBSY.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	sharedWarrenBin = filepath.Join(dir, "warren-shared")
	if err := copyExecutable(warrenBin, sharedWarrenBin); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}

	specDir := filepath.Join(dir, "spec")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	if out, err := exec.Command(warrenBin, "spec", "--bundle", specDir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: warren spec: %v\n%s", err, out)
		return 1
	}
	if specTemplate, err = os.ReadFile(filepath.Join(specDir, "config.json")); err != nil {
		fmt.Fprintln(os.Stderr, "integration: reading warren spec output:", err)
		return 1
	}
	if hostNS, err = readNamespaces("self"); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	if hostMntNS, err = os.Readlink("/proc/self/ns/mnt"); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	var sfs syscall.Statfs_t
	cgroupV2 = syscall.Statfs("/sys/fs/cgroup", &sfs) == nil && sfs.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
	if ownCgroupDirs, err = findOwnCgroupDirs(); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	code := m.Run()
	for i := len(packageCleanups) - 1; i >= 0; i-- {
		packageCleanups[i]()
	}
	return code
}

// packageCleanups run after every test (for fixtures shared between tests,
// such as the rootless test user), last registered first.
var packageCleanups []func()

func goBuild(out, pkg string, static bool) error {
	goTool := "go"
	if _, err := exec.LookPath(goTool); err != nil {
		if root := os.Getenv("GOROOT"); root != "" {
			goTool = filepath.Join(root, "bin", "go")
		}
	}
	cmd := exec.Command(goTool, "build", "-o", out, pkg)
	cmd.Env = os.Environ()
	if static {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// readNamespaces returns the inode of every /proc/<pid>/ns entry.
func readNamespaces(pid string) (map[string]uint64, error) {
	dir := filepath.Join("/proc", pid, "ns")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for _, e := range ents {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
			return nil, fmt.Errorf("stat %s/%s: %w", dir, e.Name(), err)
		}
		m[e.Name()] = st.Ino
	}
	return m, nil
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// ---------------------------------------------------------------------------
// mountinfo

type mountEntry struct {
	ID, Parent   int
	Root         string
	Mountpoint   string
	Options      string
	FSType       string
	Source       string
	SuperOptions string
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func parseMountinfo(data string) []mountEntry {
	var out []mountEntry
	for _, line := range strings.Split(data, "\n") {
		f := strings.Split(line, " ")
		sep := slices.Index(f, "-")
		if len(f) < 10 || sep < 6 || len(f) < sep+4 {
			continue
		}
		id, _ := strconv.Atoi(f[0])
		parent, _ := strconv.Atoi(f[1])
		out = append(out, mountEntry{
			ID: id, Parent: parent,
			Root:         unescapeMount(f[3]),
			Mountpoint:   unescapeMount(f[4]),
			Options:      f[5],
			FSType:       f[sep+1],
			Source:       unescapeMount(f[sep+2]),
			SuperOptions: f[sep+3],
		})
	}
	return out
}

func readMountinfo(pid string) ([]mountEntry, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "mountinfo"))
	if err != nil {
		return nil, err
	}
	return parseMountinfo(string(b)), nil
}

func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// hostMountsUnder lists the host mounts (of the test process's mount
// namespace) that are mounted at, or bind-mounted from, a path under one of
// dirs. Mounts elsewhere are unrelated churn and ignored.
func hostMountsUnder(dirs ...string) (map[string]bool, error) {
	ms, err := readMountinfo("self")
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, m := range ms {
		for _, d := range dirs {
			if under(m.Mountpoint, d) || under(m.Root, d) {
				set[fmt.Sprintf("%s (fstype %s, root %s)", m.Mountpoint, m.FSType, m.Root)] = true
			}
		}
	}
	return set, nil
}

// ---------------------------------------------------------------------------
// cgroups

// findOwnCgroupDirs maps every line of /proc/self/cgroup to a directory
// through the mount of that hierarchy.
func findOwnCgroupDirs() ([]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mounts, err := readMountinfo("self")
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls, path := parts[1], parts[2]
		var mnt *mountEntry
		for i := range mounts {
			m := &mounts[i]
			if ctrls == "" {
				if m.FSType == "cgroup2" {
					mnt = m
					break
				}
				continue
			}
			if m.FSType != "cgroup" {
				continue
			}
			opts := strings.Split(m.SuperOptions, ",")
			all := true
			for _, c := range strings.Split(ctrls, ",") {
				if !slices.Contains(opts, c) {
					all = false
				}
			}
			if all {
				mnt = m
				break
			}
		}
		if mnt == nil {
			continue // hierarchy not mounted: nothing warren could create there
		}
		rel := path
		if mnt.Root != "/" {
			rel = strings.TrimPrefix(path, mnt.Root)
		}
		dirs = append(dirs, filepath.Join(mnt.Mountpoint, rel))
	}
	if len(dirs) == 0 {
		return nil, errors.New("no mounted cgroup hierarchy found for this process")
	}
	return dirs, nil
}

// containerCgroupDirs are the directories warren is expected to create for
// a container without linux.cgroupsPath.
func containerCgroupDirs(id string) []string {
	var out []string
	for _, d := range ownCgroupDirs {
		// On a cgroup v2-only host warren uses the parent of its own
		// cgroup (its own holds processes, so it cannot delegate).
		if cgroupV2 && d != "/sys/fs/cgroup" {
			d = filepath.Dir(d)
		}
		out = append(out, filepath.Join(d, id))
	}
	return out
}

// ---------------------------------------------------------------------------
// bundles and running warren

type bundle struct {
	t      *testing.T
	base   string // per-test temp dir: everything of this test lives here
	dir    string // bundle directory
	rootfs string
	root   string // --root
	spec   *specs.Spec
	ids    []string // containers of this bundle (tracked for teardown)
	// asUser, when set, runs every warren command of this bundle as that
	// unprivileged user, with its default state root (root is then
	// $XDG_RUNTIME_DIR/warren), and bin instead of warrenBin if set.
	asUser *testUser
	bin    string
	// launchCgroup, when set, is the cgroup v2 directory warren is
	// started in (a leaf of a subtree delegated to asUser).
	launchCgroup string
	// env is added to the environment of every warren command of this
	// bundle (e.g. WARREN_GO_INIT=1).
	env []string

	mountsBefore map[string]bool
}

// newBundle makes a busybox bundle with testinit at /testinit, a config from
// `warren spec` with terminal off and `/testinit report` as the process, and
// its own --root directory.
func newBundle(t *testing.T) *bundle {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir makes its directories 0700; a container root mapped to an
	// unprivileged host uid (user namespace) must still traverse them.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := &bundle{t: t, base: base, dir: filepath.Join(base, "bundle"), root: filepath.Join(base, "state")}
	b.rootfs = filepath.Join(b.dir, "rootfs")
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(b.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(b.root, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, busyboxPath, filepath.Join(b.rootfs, "bin", "busybox"))
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(b.rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, testinitBin, filepath.Join(b.rootfs, "testinit"))
	var s specs.Spec
	if err := json.Unmarshal(specTemplate, &s); err != nil {
		t.Fatalf("decoding `warren spec` output: %v", err)
	}
	if s.Process == nil || s.Linux == nil || s.Root == nil {
		t.Fatalf("`warren spec` output lacks process, root or linux: %s", specTemplate)
	}
	s.Process.Terminal = false
	s.Process.Args = []string{"/testinit", "report"}
	b.spec = &s
	if b.mountsBefore, err = hostMountsUnder(b.base); err != nil {
		t.Fatal(err)
	}
	return b
}

func copyExecutable(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := copyExecutable(src, dst); err != nil {
		t.Fatal(err)
	}
}

// tempDir is a host directory for this test (watched for leaked mounts).
func (b *bundle) tempDir(name string) string {
	b.t.Helper()
	d := filepath.Join(b.base, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.t.Fatal(err)
	}
	return d
}

func (b *bundle) writeSpec() {
	b.t.Helper()
	data, err := json.MarshalIndent(b.spec, "", "\t")
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "config.json"), data, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// setArgs sets the container process's argv.
func (b *bundle) setArgs(args ...string) { b.spec.Process.Args = args }

// setScript makes the process `sh -c script`.
func (b *bundle) setScript(script string) { b.setArgs("/bin/sh", "-c", script) }

// newID returns a container id unique to this test run, with a hint of the
// test name so that leftovers can be traced back.
func newID(t *testing.T) string {
	var rb [3]byte
	_, _ = rand.Read(rb[:])
	hint := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return -1
	}, strings.TrimPrefix(t.Name(), "Test"))
	if len(hint) > 24 {
		hint = hint[len(hint)-24:]
	}
	return fmt.Sprintf("wit-%s-%d-%s", hint, idCounter.Add(1), hex.EncodeToString(rb[:]))
}

type result struct {
	args   []string
	code   int
	stdout string
	stderr string
	err    error // non-exit errors (could not start, killed by the hang guard)
}

func (r result) String() string {
	return fmt.Sprintf("`warren %s` exited %d (err %v)\n--- stdout ---\n%s\n--- stderr ---\n%s",
		strings.Join(r.args, " "), r.code, r.err, r.stdout, r.stderr)
}

type execOpts struct {
	stdin      *os.File
	extraFiles []*os.File
	// stdoutPath keeps the stdout file (the container's stdout, after
	// create or run -d) at a known path instead of a throw-away one.
	stdoutPath string
	stderrPath string
}

// proc is a running warren invocation.
type proc struct {
	b      *bundle
	cmd    *exec.Cmd
	ctx    context.Context
	cancel context.CancelFunc
	outF   *os.File
	errF   *os.File
	args   []string
}

func (b *bundle) start(o execOpts, args ...string) *proc {
	b.t.Helper()
	full := append([]string{"--root", b.root}, args...)
	bin := warrenBin
	if b.bin != "" {
		bin = b.bin
	}
	if b.asUser != nil {
		full = args
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Dir = b.dir
	// Socket activation variables would make warren pass extra fds
	// (runc semantics); the fd tests need a known starting point.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "LISTEN_FDS=") || strings.HasPrefix(e, "LISTEN_PID=") || strings.HasPrefix(e, "LISTEN_FDNAMES=") ||
			strings.HasPrefix(e, "XDG_RUNTIME_DIR=")
	})
	cmd.Env = append(cmd.Env, b.env...)
	if u := b.asUser; u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}}
		cmd.Env = append(cmd.Env, "XDG_RUNTIME_DIR="+filepath.Dir(b.root))
	}
	if b.launchCgroup != "" {
		cg, err := os.Open(b.launchCgroup)
		if err != nil {
			cancel()
			b.t.Fatal(err)
		}
		defer cg.Close()
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cg.Fd())
	}
	cmd.Stdin = o.stdin
	cmd.ExtraFiles = o.extraFiles
	// Files, not pipes: a created or detached container keeps warren's
	// stdio open, and exec.Cmd would wait for a pipe's writers to close.
	mk := func(p, pattern string) *os.File {
		var f *os.File
		var err error
		if p != "" {
			f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		} else {
			f, err = os.CreateTemp(b.tempDir("io"), pattern)
		}
		if err != nil {
			b.t.Fatal(err)
		}
		return f
	}
	outF, errF := mk(o.stdoutPath, "stdout-*"), mk(o.stderrPath, "stderr-*")
	cmd.Stdout, cmd.Stderr = outF, errF
	p := &proc{b: b, cmd: cmd, ctx: ctx, cancel: cancel, outF: outF, errF: errF, args: full}
	if err := cmd.Start(); err != nil {
		cancel()
		b.t.Fatalf("starting warren %v: %v", full, err)
	}
	return p
}

func (p *proc) wait() result {
	err := p.cmd.Wait()
	timedOut := errors.Is(p.ctx.Err(), context.DeadlineExceeded)
	p.cancel()
	r := result{args: p.args, code: p.cmd.ProcessState.ExitCode()}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		r.err = err
	}
	if timedOut {
		r.err = fmt.Errorf("killed after %v (hang guard): %v", commandTimeout, err)
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.code = 128 + int(ws.Signal())
		if r.err == nil {
			r.err = fmt.Errorf("warren itself was killed by signal %v", ws.Signal())
		}
	}
	r.stdout = readAll(p.outF)
	r.stderr = readAll(p.errF)
	return r
}

func readAll(f *os.File) string {
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Sprintf("<seek: %v>", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("<read: %v>", err)
	}
	return string(b)
}

// warren runs warren with this bundle's --root and returns its result.
func (b *bundle) warren(args ...string) result {
	b.t.Helper()
	return b.start(execOpts{}, args...).wait()
}

func (b *bundle) warrenWith(o execOpts, args ...string) result {
	b.t.Helper()
	return b.start(o, args...).wait()
}

// mustWarren runs warren and fails the test unless it exits 0.
func (b *bundle) mustWarren(args ...string) result {
	b.t.Helper()
	r := b.warren(args...)
	if r.code != 0 || r.err != nil {
		b.t.Fatalf("expected success:\n%s", r)
	}
	return r
}

// track registers the teardown of container id: `delete --force`, then the
// host checks (state dir, cgroup dirs, processes, mounts).
func (b *bundle) track(id string) {
	b.ids = append(b.ids, id)
	b.t.Cleanup(func() {
		r := b.warren("delete", "--force", id)
		if r.code != 0 {
			if _, err := os.Stat(filepath.Join(b.root, id)); err == nil {
				b.t.Errorf("cleanup: delete --force of existing container failed:\n%s", r)
			}
		}
		b.assertNoLeftovers(id)
	})
}

// ctr is a container created by create or run -d.
type ctr struct {
	b       *bundle
	id      string
	outPath string // the container's stdout (inherited from create)
	errPath string
	pid     int
	start   uint64 // starttime of pid, to tell a reused pid apart
}

// create writes the spec and runs `warren create`; it fails the test on
// error. The container's stdout/stderr go to files (see ctr.output).
func (b *bundle) create(id string, extra ...string) *ctr {
	b.t.Helper()
	c, r := b.tryCreate(id, extra...)
	if r.code != 0 || r.err != nil {
		b.t.Fatalf("create %s failed:\n%s", id, r)
	}
	c.pid = b.statePid(id)
	return c
}

func (b *bundle) tryCreate(id string, extra ...string) (*ctr, result) {
	b.t.Helper()
	b.writeSpec()
	ioDir := b.tempDir("io")
	n := idCounter.Add(1) // ids may be invalid on purpose: not a file name
	c := &ctr{b: b, id: id, outPath: filepath.Join(ioDir, fmt.Sprintf("ctr-%d.out", n)), errPath: filepath.Join(ioDir, fmt.Sprintf("ctr-%d.err", n))}
	b.track(id)
	args := append([]string{"create", "--bundle", b.dir}, extra...)
	args = append(args, id)
	r := b.warrenWith(execOpts{stdoutPath: c.outPath, stderrPath: c.errPath}, args...)
	return c, r
}

// runDetached runs `warren run -d`.
func (b *bundle) runDetached(id string) *ctr {
	b.t.Helper()
	b.writeSpec()
	ioDir := b.tempDir("io")
	n := idCounter.Add(1) // ids may be invalid on purpose: not a file name
	c := &ctr{b: b, id: id, outPath: filepath.Join(ioDir, fmt.Sprintf("ctr-%d.out", n)), errPath: filepath.Join(ioDir, fmt.Sprintf("ctr-%d.err", n))}
	b.track(id)
	r := b.warrenWith(execOpts{stdoutPath: c.outPath, stderrPath: c.errPath}, "run", "-d", "--bundle", b.dir, id)
	if r.code != 0 || r.err != nil {
		b.t.Fatalf("run -d %s failed:\n%s", id, r)
	}
	c.pid = b.statePid(id)
	return c
}

func (c *ctr) startIt() {
	c.b.t.Helper()
	c.b.mustWarren("start", c.id)
}

// output is what the container wrote to its stdout so far.
func (c *ctr) output() string {
	b, _ := os.ReadFile(c.outPath)
	return string(b)
}

func (c *ctr) stderr() string {
	b, _ := os.ReadFile(c.errPath)
	return string(b)
}

// waitOutput polls until the container's stdout contains s.
func (c *ctr) waitOutput(s string) {
	c.b.t.Helper()
	waitFor(c.b.t, fmt.Sprintf("container %s to print %q", c.id, s), func() bool {
		return strings.Contains(c.output(), s)
	}, func() string { return "stdout: " + c.output() + "\nstderr: " + c.stderr() })
}

// run runs `warren run` in the foreground with the current spec; it returns
// the result and, since run deletes the container, checks that nothing was
// left behind.
func (b *bundle) run(o execOpts, extra ...string) (string, result) {
	b.t.Helper()
	b.writeSpec()
	id := newID(b.t)
	b.track(id)
	args := append([]string{"run", "--bundle", b.dir}, extra...)
	args = append(args, id)
	r := b.warrenWith(o, args...)
	b.assertNoLeftovers(id)
	return id, r
}

// runOK runs the container in the foreground and requires exit status 0.
func (b *bundle) runOK(extra ...string) string {
	b.t.Helper()
	_, r := b.run(execOpts{}, extra...)
	if r.code != 0 || r.err != nil {
		b.t.Fatalf("expected the container to run and exit 0:\n%s", r)
	}
	return r.stdout
}

// report runs `/testinit report` as the container process.
func (b *bundle) report(extra ...string) *report {
	b.t.Helper()
	b.setArgs("/testinit", "report")
	out := b.runOK(extra...)
	var r report
	decodeJSON(b.t, strings.TrimSpace(out), &r)
	return &r
}

// jsonLines splits the output of several testinit invocations.
func jsonLines(t *testing.T, out string, want int) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	if len(lines) != want {
		t.Fatalf("want %d JSON lines from the container, got %d; output:\n%s", want, len(lines), out)
	}
	return lines
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decoding %T from %q: %v", v, s, err)
	}
}

// ---------------------------------------------------------------------------
// state

type publicState struct {
	OCIVersion string `json:"ociVersion"`
	ID         string `json:"id"`
	Pid        int    `json:"pid"`
	Status     string `json:"status"`
	Bundle     string `json:"bundle"`
}

func (b *bundle) state(id string) publicState {
	b.t.Helper()
	r := b.mustWarren("state", id)
	var st publicState
	decodeJSON(b.t, r.stdout, &st)
	if st.ID != id {
		b.t.Fatalf("state %s: id is %q", id, st.ID)
	}
	return st
}

func (b *bundle) statePid(id string) int {
	b.t.Helper()
	st := b.state(id)
	if st.Pid <= 0 {
		b.t.Fatalf("state %s: pid %d, want > 0 (status %q)", id, st.Pid, st.Status)
	}
	return st.Pid
}

func (b *bundle) waitStatus(id, want string) {
	b.t.Helper()
	var last string
	waitFor(b.t, fmt.Sprintf("container %s to be %q", id, want), func() bool {
		r := b.warren("state", id)
		if r.code != 0 {
			last = r.String()
			return false
		}
		var st publicState
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			last = r.String()
			return false
		}
		last = st.Status
		return st.Status == want
	}, func() string { return "last status: " + last })
}

// waitFor polls cond until it holds or pollDeadline passes.
func waitFor(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			d := ""
			if detail != nil {
				d = "\n" + detail()
			}
			t.Fatalf("gave up after %v waiting for %s%s", pollDeadline, what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// leftovers

// procAlive reports whether pid exists and is not a zombie.
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// procsOf lists host pids that belong to container id: in one of its
// cgroups, or in a mount namespace whose root is this bundle's rootfs.
func (b *bundle) procsOf(id string) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	var out []string
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' || pid == self {
			continue
		}
		inCgroupOf := func(cid string) bool {
			cg, err := os.ReadFile("/proc/" + pid + "/cgroup")
			if err != nil {
				return false
			}
			for _, line := range strings.Split(string(cg), "\n") {
				if strings.HasSuffix(line, "/"+cid) || strings.Contains(line, "/"+cid+"/") {
					return true
				}
			}
			return false
		}
		if inCgroupOf(id) {
			if n, _ := strconv.Atoi(pid); procAlive(n) {
				out = append(out, pid+" (cgroup)")
			}
			continue
		}
		// Another container of the same bundle shares the rootfs.
		if slices.ContainsFunc(b.ids, func(o string) bool { return o != id && inCgroupOf(o) }) {
			continue
		}
		mnt, err := os.Readlink("/proc/" + pid + "/ns/mnt")
		if err != nil || mnt == hostMntNS {
			continue
		}
		ms, err := readMountinfo(pid)
		if err != nil {
			continue
		}
		for _, m := range ms {
			if under(m.Root, b.rootfs) && m.Mountpoint == "/" {
				if n, _ := strconv.Atoi(pid); procAlive(n) {
					out = append(out, pid+" (mount namespace rooted in the bundle)")
				}
				break
			}
		}
	}
	return out
}

// assertNoLeftovers checks the host after container id is gone: no state
// directory under --root, no cgroup directory, no process, no new mount
// under the test's directories.
func (b *bundle) assertNoLeftovers(id string) {
	b.t.Helper()
	t := b.t
	stateDir := filepath.Join(b.root, id)
	if _, err := os.Lstat(stateDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover: state directory %s still exists (lstat err %v)", stateDir, err)
	}
	for _, d := range containerCgroupDirs(id) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("leftover: cgroup directory %s still exists (lstat err %v)", d, err)
		}
	}
	// The init is reaped asynchronously when its parent is not warren.
	var procs []string
	deadline := time.Now().Add(pollDeadline)
	for {
		procs = b.procsOf(id)
		if len(procs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(procs) > 0 {
		t.Errorf("leftover: processes of container %s still alive: %v", id, procs)
	}
	after, err := hostMountsUnder(b.base)
	if err != nil {
		t.Fatal(err)
	}
	var leaked []string
	for m := range after {
		if !b.mountsBefore[m] {
			leaked = append(leaked, m)
		}
	}
	sort.Strings(leaked)
	if len(leaked) > 0 {
		t.Errorf("leftover: new host mounts under %s after container %s: %v", b.base, id, leaked)
	}
}

// assertGone checks that a known pid no longer runs (allowing for the
// asynchronous reaping of an orphaned init).
func assertGone(t *testing.T, pid int, what string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s (pid %d) to be gone", what, pid), func() bool { return !procAlive(pid) }, nil)
}

// ---------------------------------------------------------------------------
// testinit output

type report struct {
	PID        int               `json:"pid"`
	UID        int               `json:"uid"`
	EUID       int               `json:"euid"`
	GID        int               `json:"gid"`
	EGID       int               `json:"egid"`
	Groups     []int             `json:"groups"`
	Hostname   string            `json:"hostname"`
	Domainname string            `json:"domainname"`
	Cwd        string            `json:"cwd"`
	Env        []string          `json:"env"`
	Umask      int               `json:"umask"`
	Namespaces map[string]uint64 `json:"namespaces"`
	Caps       map[string]string `json:"caps"`
	NoNewPrivs int               `json:"noNewPrivs"`
	Rlimits    map[string]struct {
		Soft uint64 `json:"soft"`
		Hard uint64 `json:"hard"`
	} `json:"rlimits"`
	FDs         []int          `json:"fds"`
	FDTargets   map[int]string `json:"fdTargets"`
	UIDMap      string         `json:"uidMap"`
	GIDMap      string         `json:"gidMap"`
	Setgroups   string         `json:"setgroups"`
	OOMScoreAdj int            `json:"oomScoreAdj"`
	Cgroup      string         `json:"cgroup"`
	Mounts      []struct {
		Mountpoint   string   `json:"mountpoint"`
		Root         string   `json:"root"`
		Options      string   `json:"options"`
		FSType       string   `json:"fstype"`
		Source       string   `json:"source"`
		SuperOptions string   `json:"superOptions"`
		Optional     []string `json:"optional"`
	} `json:"mounts"`
	Interfaces []struct {
		Name string `json:"name"`
		Up   bool   `json:"up"`
	} `json:"interfaces"`
	Errors []string `json:"errors"`
}

// mountAt returns the last (topmost) mount at mountpoint p, or nil.
func (r *report) mountAt(p string) *struct {
	Mountpoint   string   `json:"mountpoint"`
	Root         string   `json:"root"`
	Options      string   `json:"options"`
	FSType       string   `json:"fstype"`
	Source       string   `json:"source"`
	SuperOptions string   `json:"superOptions"`
	Optional     []string `json:"optional"`
} {
	for i := len(r.Mounts) - 1; i >= 0; i-- {
		if r.Mounts[i].Mountpoint == p {
			return &r.Mounts[i]
		}
	}
	return nil
}

type fileResult struct {
	Path    string `json:"path"`
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Errno   int    `json:"errno"`
	Bytes   int64  `json:"bytes"`
	Content string `json:"content"`
}

type statResult struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	Error  string `json:"error"`
	Perm   uint32 `json:"perm"`
	Type   string `json:"type"`
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Major  uint32 `json:"major"`
	Minor  uint32 `json:"minor"`
}

func hasOpt(list, opt string) bool {
	return slices.Contains(strings.Split(list, ","), opt)
}

// ---------------------------------------------------------------------------
// capabilities

var capNumbers = map[string]int{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
	"CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_FOWNER": unix.CAP_FOWNER,
	"CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP,
	"CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
	"CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN,
	"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_IPC_OWNER": unix.CAP_IPC_OWNER,
	"CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"CAP_SYS_PACCT": unix.CAP_SYS_PACCT, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
	"CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_SYS_TIME": unix.CAP_SYS_TIME,
	"CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG, "CAP_MKNOD": unix.CAP_MKNOD, "CAP_LEASE": unix.CAP_LEASE,
	"CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE, "CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL,
	"CAP_SETFCAP": unix.CAP_SETFCAP, "CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE,
	"CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN, "CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ,
	"CAP_PERFMON": unix.CAP_PERFMON, "CAP_BPF": unix.CAP_BPF,
	"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// capMask renders a list of capability names the way /proc/self/status does.
func capMask(t *testing.T, names []string) string {
	t.Helper()
	var m uint64
	for _, n := range names {
		bit, ok := capNumbers[n]
		if !ok {
			t.Fatalf("unknown capability %q in test config", n)
		}
		m |= 1 << uint(bit)
	}
	return fmt.Sprintf("%016x", m)
}

// ---------------------------------------------------------------------------
// misc

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewBufferString(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
