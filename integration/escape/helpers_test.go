//go:build linux

package escape

// The harness: adapted from integration/helpers_test.go (busybox bundles with
// tests/testinit at /testinit, a --root per test, a leftovers check after
// every container), plus what the escape tests need on top: a createContainer
// hook that records the container's mount table before pivot_root, running
// warren in a private mount namespace, and victims under the test's temp dir.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
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
	// Hang guard for one warren invocation, not a timing assertion.
	commandTimeout = time.Minute
	// Deadline for polled state changes.
	pollDeadline = 20 * time.Second

	// The test binary re-executes itself with this variable set to run
	// warren in a private mount namespace (see helperMain).
	helperEnv      = "WARREN_ESCAPE_HELPER"
	helperBindsEnv = "WARREN_ESCAPE_BINDS"
	helperExeEnv   = "WARREN_ESCAPE_WARREN"
)

var (
	warrenBin    string // absolute path of the warren binary under test
	testinitBin  string // static testinit helper
	specTemplate []byte // `warren spec` output

	hostMntNS     string
	cgroupV2      bool
	ownCgroupDirs []string

	idCounter atomic.Int64
)

var busyboxApplets = []string{
	"sh", "cat", "echo", "id", "ls", "sleep", "stat", "test", "true", "false",
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: warren escape tests must run as root (they create namespaces, cgroups and mounts); skipping all")
		os.Exit(0)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if _, err := os.Stat(busyboxPath); err != nil {
		fmt.Fprintf(os.Stderr, "escape: %s is required (apt-get install busybox-static): %v\n", busyboxPath, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "warren-escape-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "escape:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if p := os.Getenv("WARREN_BINARY"); p != "" {
		if warrenBin, err = filepath.Abs(p); err == nil {
			_, err = os.Stat(warrenBin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "escape: WARREN_BINARY=%s: %v\n", p, err)
			return 1
		}
	} else {
		warrenBin = filepath.Join(dir, "warren")
		if err := goBuild(warrenBin, "github.com/warren-runtime/warren/cmd/warren", false); err != nil {
			fmt.Fprintln(os.Stderr, "escape: building warren:", err)
			return 1
		}
	}
	if p := os.Getenv("WARREN_TESTINIT"); p != "" {
		if testinitBin, err = filepath.Abs(p); err == nil {
			_, err = os.Stat(testinitBin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "escape: WARREN_TESTINIT=%s: %v\n", p, err)
			return 1
		}
	} else {
		testinitBin = filepath.Join(dir, "testinit")
		if err := goBuild(testinitBin, "github.com/warren-runtime/warren/tests/testinit", true); err != nil {
			fmt.Fprintln(os.Stderr, "escape: building testinit:", err)
			return 1
		}
	}
	specDir := filepath.Join(dir, "spec")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "escape:", err)
		return 1
	}
	if out, err := exec.Command(warrenBin, "spec", "--bundle", specDir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "escape: warren spec: %v\n%s", err, out)
		return 1
	}
	if specTemplate, err = os.ReadFile(filepath.Join(specDir, "config.json")); err != nil {
		fmt.Fprintln(os.Stderr, "escape:", err)
		return 1
	}
	if hostMntNS, err = os.Readlink("/proc/self/ns/mnt"); err != nil {
		fmt.Fprintln(os.Stderr, "escape:", err)
		return 1
	}
	var sfs unix.Statfs_t
	cgroupV2 = unix.Statfs("/sys/fs/cgroup", &sfs) == nil && sfs.Type == unix.CGROUP2_SUPER_MAGIC
	if ownCgroupDirs, err = findOwnCgroupDirs(); err != nil {
		fmt.Fprintln(os.Stderr, "escape:", err)
		return 1
	}
	return m.Run()
}

func goBuild(out, pkg string, static bool) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = os.Environ()
	if static {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// helperMain runs in a copy of the test binary started in a new, private
// mount namespace (Unshareflags CLONE_NEWNS: Go makes / recursively private
// in the child before exec, so nothing here propagates to the host). It
// makes the bind mounts listed in $WARREN_ESCAPE_BINDS (JSON: [[src, dst],
// ...]) and then executes warren with its own arguments.
func helperMain() int {
	var binds [][2]string
	if err := json.Unmarshal([]byte(os.Getenv(helperBindsEnv)), &binds); err != nil {
		fmt.Fprintf(os.Stderr, "escape helper: bad %s: %v\n", helperBindsEnv, err)
		return 1
	}
	for _, m := range binds {
		src, dst := m[0], m[1]
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			fmt.Fprintf(os.Stderr, "escape helper: bind %s on %s: %v\n", src, dst, err)
			return 1
		}
	}
	exe := os.Getenv(helperExeEnv)
	env := slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "WARREN_ESCAPE_")
	})
	err := syscall.Exec(exe, append([]string{exe}, os.Args[1:]...), env)
	fmt.Fprintf(os.Stderr, "escape helper: exec %s: %v\n", exe, err)
	return 1
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

// hostMountsUnder lists the host's mounts at, or bind-mounted from, a path
// under one of dirs.
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
// cgroups (for the leftovers check)

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
			continue
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

func containerCgroupDirs(id string) []string {
	var out []string
	for _, d := range ownCgroupDirs {
		if cgroupV2 && d != "/sys/fs/cgroup" {
			d = filepath.Dir(d)
		}
		out = append(out, filepath.Join(d, id))
	}
	return out
}

// ---------------------------------------------------------------------------
// bundles

type bundle struct {
	t      *testing.T
	base   string // per-test temp dir: everything of this test lives here
	dir    string // bundle directory
	rootfs string
	root   string // --root
	spec   *specs.Spec
	ids    []string

	mountsBefore map[string]bool
}

// newBundle makes a busybox bundle with testinit at /testinit, `warren
// spec`'s config with the terminal off, and its own --root.
func newBundle(t *testing.T) *bundle {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir makes 0700 directories; a user namespace's root must
	// still traverse them.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := &bundle{t: t, base: base, dir: filepath.Join(base, "bundle"), root: filepath.Join(base, "state")}
	b.rootfs = filepath.Join(b.dir, "rootfs")
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "mnt"} {
		if err := os.MkdirAll(filepath.Join(b.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(b.root, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, busyboxPath, filepath.Join(b.rootfs, "bin", "busybox"), 0o755)
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(b.rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, testinitBin, filepath.Join(b.rootfs, "testinit"), 0o755)
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

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// tempDir is a host directory of this test, outside the bundle.
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

func (b *bundle) setArgs(args ...string) { b.spec.Process.Args = args }

// removeMount drops the config's mounts at dest.
func (b *bundle) removeMount(dest string) {
	b.spec.Mounts = slices.DeleteFunc(b.spec.Mounts, func(m specs.Mount) bool { return m.Destination == dest })
}

// symlink plants link -> target in the rootfs (link relative to it),
// replacing what is there.
func (b *bundle) symlink(target, link string) {
	b.t.Helper()
	p := filepath.Join(b.rootfs, link)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.RemoveAll(p); err != nil {
		b.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		b.t.Fatal(err)
	}
}

// mirror creates, inside the rootfs, the directory that a symlink at link
// with the given target resolves to when resolved inside the rootfs (an
// absolute target is taken relative to the rootfs, ".." stops at its
// root). With it, a runtime that resolves in the rootfs can mount there,
// while one that follows the symlink on the host reaches the victim.
func (b *bundle) mirror(target, link string) {
	b.t.Helper()
	in := target
	if !filepath.IsAbs(target) {
		in = filepath.Join("/", filepath.Dir(link), target)
	}
	if err := os.MkdirAll(filepath.Join(b.rootfs, in), 0o755); err != nil {
		b.t.Fatal(err)
	}
}

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
	return fmt.Sprintf("wesc-%s-%d-%s", hint, idCounter.Add(1), hex.EncodeToString(rb[:]))
}

// ---------------------------------------------------------------------------
// running warren

type result struct {
	args   []string
	code   int
	stdout string
	stderr string
	err    error // could not start, or killed by the hang guard
}

func (r result) ok() bool { return r.code == 0 && r.err == nil }

func (r result) String() string {
	return fmt.Sprintf("`warren %s` exited %d (err %v)\n--- stdout ---\n%s\n--- stderr ---\n%s",
		strings.Join(r.args, " "), r.code, r.err, r.stdout, r.stderr)
}

type runOpts struct {
	stdin      *os.File
	extraFiles []*os.File // become fds 3, 4, ... of warren
	// stdoutPath/stderrPath keep warren's (and so a created container's)
	// stdout/stderr at known paths.
	stdoutPath, stderrPath string
	// overmounts: run warren in a private mount namespace in which each
	// [src, dst] is bind-mounted first (dst may be a host path such as
	// /proc/sys/kernel: the bind exists only in that namespace).
	overmounts [][2]string
}

func (b *bundle) ioFile(kind string) string {
	return filepath.Join(b.tempDir("io"), fmt.Sprintf("%d.%s", idCounter.Add(1), kind))
}

func (b *bundle) warrenWith(o runOpts, args ...string) result {
	b.t.Helper()
	full := append([]string{"--root", b.root}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, warrenBin, full...)
	cmd.Dir = b.dir
	// Socket activation variables would make warren pass extra fds.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "LISTEN_") || strings.HasPrefix(e, "NOTIFY_SOCKET=")
	})
	if len(o.overmounts) > 0 {
		self, err := os.Executable()
		if err != nil {
			b.t.Fatal(err)
		}
		binds, err := json.Marshal(o.overmounts)
		if err != nil {
			b.t.Fatal(err)
		}
		cmd = exec.CommandContext(ctx, self, full...)
		cmd.Dir = b.dir
		cmd.Env = append(slices.DeleteFunc(os.Environ(), func(e string) bool {
			return strings.HasPrefix(e, "LISTEN_") || strings.HasPrefix(e, "NOTIFY_SOCKET=")
		}), helperEnv+"=overmount", helperBindsEnv+"="+string(binds), helperExeEnv+"="+warrenBin)
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS}
	}
	if o.stdoutPath == "" {
		o.stdoutPath = b.ioFile("out")
	}
	if o.stderrPath == "" {
		o.stderrPath = b.ioFile("err")
	}
	outF, err := os.OpenFile(o.stdoutPath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	defer outF.Close()
	errF, err := os.OpenFile(o.stderrPath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	defer errF.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.stdin, outF, errF
	cmd.ExtraFiles = o.extraFiles
	// The container's processes may keep our stdio; never wait for them.
	cmd.WaitDelay = time.Second
	r := result{args: full}
	if err := cmd.Start(); err != nil {
		r.err, r.code = err, -1
		return r
	}
	err = cmd.Wait()
	r.code = cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		r.err = err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		r.err = fmt.Errorf("killed after %v (hang guard): %v", commandTimeout, err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.code = 128 + int(ws.Signal())
	}
	r.stdout = readString(o.stdoutPath)
	r.stderr = readString(o.stderrPath)
	return r
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func (b *bundle) warren(args ...string) result {
	b.t.Helper()
	return b.warrenWith(runOpts{}, args...)
}

func (b *bundle) mustWarren(args ...string) result {
	b.t.Helper()
	r := b.warren(args...)
	if !r.ok() {
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

// ctr is a container made by create.
type ctr struct {
	b       *bundle
	id      string
	outPath string // the container's stdout (inherited from create)
	errPath string
	pid     int
}

// tryCreate writes the spec and runs `warren create`; the container's
// stdout/stderr go to files.
func (b *bundle) tryCreate(o runOpts, extra ...string) (*ctr, result) {
	b.t.Helper()
	b.writeSpec()
	id := newID(b.t)
	c := &ctr{b: b, id: id, outPath: b.ioFile("ctr-out"), errPath: b.ioFile("ctr-err")}
	b.track(id)
	o.stdoutPath, o.stderrPath = c.outPath, c.errPath
	args := append([]string{"create", "--bundle", b.dir}, extra...)
	r := b.warrenWith(o, append(args, id)...)
	if r.ok() {
		c.pid = b.statePid(id)
	}
	return c, r
}

func (b *bundle) create(o runOpts, extra ...string) *ctr {
	b.t.Helper()
	c, r := b.tryCreate(o, extra...)
	if !r.ok() {
		b.t.Fatalf("create failed:\n%s", r)
	}
	return c
}

func (c *ctr) start() {
	c.b.t.Helper()
	c.b.mustWarren("start", c.id)
}

func (c *ctr) output() string { return readString(c.outPath) }
func (c *ctr) stderr() string { return readString(c.errPath) }

// waitOutput polls until the container's stdout contains s.
func (c *ctr) waitOutput(s string) {
	c.b.t.Helper()
	waitFor(c.b.t, fmt.Sprintf("container %s to print %q", c.id, s), func() bool {
		return strings.Contains(c.output(), s)
	}, func() string { return "stdout: " + c.output() + "\nstderr: " + c.stderr() })
}

// exec runs `warren exec [flags...] id args...` with the given options.
func (c *ctr) exec(o runOpts, flags []string, args ...string) result {
	c.b.t.Helper()
	full := append([]string{"exec"}, flags...)
	full = append(full, c.id)
	return c.b.warrenWith(o, append(full, args...)...)
}

// run runs `warren run` in the foreground; the container's output is the
// result's stdout.
func (b *bundle) run(o runOpts, extra ...string) result {
	b.t.Helper()
	b.writeSpec()
	id := newID(b.t)
	b.track(id)
	args := append([]string{"run", "--bundle", b.dir}, extra...)
	return b.warrenWith(o, append(args, id)...)
}

// startSleeper creates and starts a container whose init sleeps.
func startSleeper(t *testing.T, b *bundle) *ctr {
	t.Helper()
	b.setArgs("/testinit", "sleep", "60")
	c := b.create(runOpts{})
	c.start()
	c.waitOutputErr("sleep: ready")
	return c
}

func (c *ctr) waitOutputErr(s string) {
	c.b.t.Helper()
	waitFor(c.b.t, fmt.Sprintf("container %s to print %q on stderr", c.id, s), func() bool {
		return strings.Contains(c.stderr(), s)
	}, func() string { return "stdout: " + c.output() + "\nstderr: " + c.stderr() })
}

// ---------------------------------------------------------------------------
// state

type publicState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func (b *bundle) state(id string) publicState {
	b.t.Helper()
	r := b.mustWarren("state", id)
	var st publicState
	decodeJSON(b.t, r.stdout, &st)
	return st
}

func (b *bundle) statePid(id string) int {
	b.t.Helper()
	st := b.state(id)
	if st.Pid <= 0 {
		b.t.Fatalf("state %s: pid %d (status %q)", id, st.Pid, st.Status)
	}
	return st.Pid
}

func (b *bundle) waitStatus(id, want string) {
	b.t.Helper()
	var last string
	waitFor(b.t, fmt.Sprintf("container %s to be %q", id, want), func() bool {
		r := b.warren("state", id)
		var st publicState
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
			last = r.String()
			return false
		}
		last = st.Status
		return st.Status == want
	}, func() string { return "last: " + last })
}

func waitFor(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			d := ""
			if detail != nil {
				d = "\n" + detail()
			}
			t.Fatalf("gave up after %v waiting for %s%s", pollDeadline, what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// leftovers

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

// procsOf lists host pids of container id: in one of its cgroups, or in a
// mount namespace rooted in this bundle's rootfs.
func (b *bundle) procsOf(id string) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	inCgroupOf := func(pid, cid string) bool {
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
	var out []string
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' || pid == self {
			continue
		}
		n, _ := strconv.Atoi(pid)
		if inCgroupOf(pid, id) {
			if procAlive(n) {
				out = append(out, pid+" (cgroup)")
			}
			continue
		}
		if slices.ContainsFunc(b.ids, func(o string) bool { return o != id && inCgroupOf(pid, o) }) {
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
				if procAlive(n) {
					out = append(out, pid+" (mount namespace rooted in the bundle)")
				}
				break
			}
		}
	}
	return out
}

// assertNoLeftovers checks the host after container id is gone.
func (b *bundle) assertNoLeftovers(id string) {
	b.t.Helper()
	t := b.t
	if _, err := os.Lstat(filepath.Join(b.root, id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover: state directory of %s still exists (lstat err %v)", id, err)
	}
	for _, d := range containerCgroupDirs(id) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("leftover: cgroup directory %s still exists (lstat err %v)", d, err)
		}
	}
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
	b.assertNoNewHostMounts()
}

// assertNoNewHostMounts: no mount appeared in the host's mount table under
// this test's directory.
func (b *bundle) assertNoNewHostMounts() {
	b.t.Helper()
	after, err := hostMountsUnder(b.base)
	if err != nil {
		b.t.Fatal(err)
	}
	var leaked []string
	for m := range after {
		if !b.mountsBefore[m] {
			leaked = append(leaked, m)
		}
	}
	sort.Strings(leaked)
	if len(leaked) > 0 {
		b.t.Errorf("ESCAPE: new host mounts under %s: %v", b.base, leaked)
	}
}

// ---------------------------------------------------------------------------
// victims and the pre-pivot mount table

// victimDir makes a directory outside the rootfs holding one file with known
// content; victimUnchanged checks it still holds exactly that.
func (b *bundle) victimDir(name string) string {
	b.t.Helper()
	d := b.tempDir(name)
	writeFile(b.t, filepath.Join(d, "canary"), "canary of "+filepath.Base(d)+"\n")
	return d
}

func (b *bundle) victimFile(name string) string {
	b.t.Helper()
	p := filepath.Join(b.tempDir("victims"), name)
	writeFile(b.t, p, "victim "+name+"\n")
	return p
}

// assertVictimDirUnchanged: the directory still holds only its canary,
// unchanged, and nothing is mounted on it in the host's mount table.
func assertVictimDirUnchanged(t *testing.T, d string) {
	t.Helper()
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Errorf("ESCAPE: victim directory %s: %v", d, err)
		return
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "canary" {
		t.Errorf("ESCAPE: victim directory %s outside the rootfs was written to: it holds %v, want only [canary]", d, names)
	}
	if got := readString(filepath.Join(d, "canary")); got != "canary of "+filepath.Base(d)+"\n" {
		t.Errorf("ESCAPE: victim %s/canary changed: %q", d, got)
	}
}

func assertVictimFileUnchanged(t *testing.T, p string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("ESCAPE: victim file %s is no longer a regular file (lstat err %v, mode %#o)", p, err, st.Mode)
		return
	}
	if got, want := readString(p), "victim "+filepath.Base(p)+"\n"; got != want {
		t.Errorf("ESCAPE: victim file %s outside the rootfs changed: %q, want %q", p, got, want)
	}
}

// mountinfoHook adds a createContainer hook that saves the mount table of
// the container's mount namespace to a host file. createContainer hooks run
// after every mount of the rootfs is made and before pivot_root, while the
// host's tree is still in that namespace: a mount that landed outside the
// rootfs is visible there (after pivot_root it would be detached with the
// old root, and invisible to the host since the namespace is a slave).
func (b *bundle) mountinfoHook() string {
	b.t.Helper()
	dump := filepath.Join(b.tempDir("hook"), fmt.Sprintf("mountinfo-%d", idCounter.Add(1)))
	if b.spec.Hooks == nil {
		b.spec.Hooks = &specs.Hooks{}
	}
	b.spec.Hooks.CreateContainer = []specs.Hook{{
		Path: busyboxPath,
		Args: []string{"sh", "-c", "exec /bin/busybox cat /proc/self/mountinfo > '" + dump + "'"},
	}}
	return dump
}

// assertNoMountsOn reads a mountinfoHook dump and fails for every mount on,
// or of, a path under one of victims. created says whether create succeeded
// (then the hook must have run).
func assertNoMountsOn(t *testing.T, dump string, created bool, victims ...string) {
	t.Helper()
	data, err := os.ReadFile(dump)
	if err != nil {
		if created {
			t.Errorf("the createContainer hook did not record the mount table (%v): cannot check where mounts landed", err)
		}
		return
	}
	ms := parseMountinfo(string(data))
	if len(ms) == 0 {
		t.Errorf("empty mount table from the createContainer hook: %q", data)
	}
	for _, m := range ms {
		for _, v := range victims {
			if under(m.Mountpoint, v) {
				t.Errorf("ESCAPE: a %s mount (source %s) landed on %s, outside the rootfs (victim %s)", m.FSType, m.Source, m.Mountpoint, v)
			}
			if m.Root != "/" && under(m.Root, v) {
				t.Errorf("ESCAPE: victim %s was bind-mounted into the container's tree at %s", v, m.Mountpoint)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// what the container reports

type report struct {
	PID         int               `json:"pid"`
	UID         int               `json:"uid"`
	EUID        int               `json:"euid"`
	GID         int               `json:"gid"`
	EGID        int               `json:"egid"`
	Domainname  string            `json:"domainname"`
	Cwd         string            `json:"cwd"`
	Caps        map[string]string `json:"caps"`
	NoNewPrivs  int               `json:"noNewPrivs"`
	FDs         []int             `json:"fds"`
	FDTargets   map[int]string    `json:"fdTargets"`
	OOMScoreAdj int               `json:"oomScoreAdj"`
	Errors      []string          `json:"errors"`
}

type try struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Errno int    `json:"errno"`
}

type statInfo struct {
	Exists     bool   `json:"exists"`
	Errno      int    `json:"errno"`
	Type       string `json:"type"`
	Major      uint32 `json:"major"`
	Minor      uint32 `json:"minor"`
	LinkTarget string `json:"linkTarget"`
}

// pathProbe is testinit probe's entry for one path.
type pathProbe struct {
	Path      string   `json:"path"`
	Lstat     statInfo `json:"lstat"`
	Stat      statInfo `json:"stat"`
	FsType    int64    `json:"fsType"`
	Read      try      `json:"read"`
	Bytes     int      `json:"bytes"`
	Head      string   `json:"head"`
	Entries   int      `json:"entries"`
	WriteOpen try      `json:"writeOpen"`
}

// lastJSON decodes the last line of out that starts with '{'.
func lastJSON(t *testing.T, out string, v any) {
	t.Helper()
	ls := strings.Split(strings.ReplaceAll(out, "\r", ""), "\n")
	for i := len(ls) - 1; i >= 0; i-- {
		if strings.HasPrefix(strings.TrimSpace(ls[i]), "{") {
			decodeJSON(t, strings.TrimSpace(ls[i]), v)
			return
		}
	}
	t.Fatalf("no JSON object in the container's output:\n%s", out)
}

func decodeProbes(t *testing.T, out string) map[string]pathProbe {
	t.Helper()
	var p struct {
		Probes []pathProbe `json:"probes"`
	}
	lastJSON(t, out, &p)
	m := map[string]pathProbe{}
	for _, e := range p.Probes {
		m[e.Path] = e
	}
	return m
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decoding %T from %q: %v", v, s, err)
	}
}

// ---------------------------------------------------------------------------
// misc

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func capBit(c int) uint64 { return 1 << uint(c) }

func parseCapMask(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatalf("bad capability mask %q: %v", s, err)
	}
	return v
}

func ptr[T any](v T) *T { return &v }
