//go:build linux

package escape

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CVE-2019-5736: a process in the container gets a handle on the runtime's
// own binary through /proc/<pid>/exe of a runtime process that is (or was
// started as) the runtime, and once no process executes the binary any more
// (no ETXTBSY), reopens that handle for writing through /proc/self/fd/N and
// replaces the host's runtime. warren executes every process it starts in a
// container from a private, detached, read-only bind mount of itself
// (linux.SealedSelfExe), so such a handle can never be opened for writing.
//
// These tests are not parallel: any warren process running at the same time
// executes the same inode and turns a successful open into ETXTBSY, which
// would hide a vulnerable runtime. They therefore also assert that the
// handle is on a read-only mount, which does not depend on timing.

type exeProbe struct {
	Target            int            `json:"target"`
	Found             bool           `json:"found"`
	Open              try            `json:"open"`
	Link              string         `json:"link"`
	FsType            int64          `json:"fsType"`
	FsFlags           int64          `json:"fsFlags"`
	ReadOnly          bool           `json:"readOnly"`
	WriteWhileRunning try            `json:"writeWhileRunning"`
	TargetChanged     bool           `json:"targetChanged"`
	WriteAfter        try            `json:"writeAfter"`
	WriteAfterTries   int            `json:"writeAfterTries"`
	WriteAfterErrnos  map[string]int `json:"writeAfterErrnos"`
	Errors            []string       `json:"errors"`
}

// waitExeProbe waits for testinit exeprobe's final line in path.
func waitExeProbe(t *testing.T, path string) exeProbe {
	t.Helper()
	waitFor(t, "the exeprobe attacker to finish", func() bool {
		return strings.Contains(readString(path), `"writeAfter"`)
	}, func() string { return "attacker output: " + readString(path) })
	var p exeProbe
	lastJSON(t, readString(path), &p)
	return p
}

// assertExeProbe judges what the in-container attacker achieved. Against a
// vulnerable runtime (one that runs its init or exec process from the host
// binary's own path, as runc < 1.0.0-rc6 did) the handle is on the host's
// writable file system (ReadOnly false) and, once the runtime processes
// have exec'd or exited, WriteAfter.OK is true: the test fails.
func assertExeProbe(t *testing.T, what string, p exeProbe) {
	t.Helper()
	t.Logf("%s: attacker result %+v", what, p)
	if !p.Found {
		// The kernel refused the handle (ptrace access check): the
		// vector is closed as well.
		t.Logf("%s: the container could not open /proc/%d/exe at all (%s)", what, p.Target, p.Open.Error)
		return
	}
	if !p.ReadOnly {
		t.Errorf("ESCAPE (CVE-2019-5736, %s): /proc/%d/exe is the runtime binary on a writable mount (statfs flags %#x): a container process can keep a handle and rewrite it", what, p.Target, p.FsFlags)
	}
	if p.WriteWhileRunning.OK {
		t.Errorf("ESCAPE (CVE-2019-5736, %s): opened the runtime binary for writing through /proc/%d/exe while it ran", what, p.Target)
	}
	if !p.TargetChanged {
		t.Errorf("%s: the target never stopped executing the runtime binary; the test did not exercise the attack (errors %v)", what, p.Errors)
	}
	if p.WriteAfter.OK {
		t.Errorf("ESCAPE (CVE-2019-5736, %s): after the runtime process exec'd/exited, reopening its /proc/<pid>/exe handle O_WRONLY succeeded: the host's runtime binary could be overwritten", what)
	}
}

func assertBinaryUnchanged(t *testing.T, before string) {
	t.Helper()
	if after := fileSHA256(t, warrenBin); after != before {
		t.Errorf("ESCAPE (CVE-2019-5736): the warren binary %s changed: sha256 %s, was %s", warrenBin, after, before)
	}
}

// The created (not yet started) container's init is warren itself. A
// process exec'd into the container holds /proc/1/exe, the container is
// started (the init execs the user program and every warren CLI has
// exited), then the attacker reopens its handle for writing.
func TestEscapeRuntimeExeViaCreatedInit(t *testing.T) {
	sum := fileSHA256(t, warrenBin)
	b := newBundle(t)
	b.setArgs("/testinit", "sleep", "30")
	c := b.create(runOpts{})
	out := b.ioFile("attacker")
	if r := c.exec(runOpts{stdoutPath: out}, []string{"-d"}, "/testinit", "exeprobe", "1"); !r.ok() {
		t.Fatalf("exec of the attacker failed:\n%s", r)
	}
	waitFor(t, "the attacker to hold /proc/1/exe", func() bool {
		return strings.Contains(readString(out), `"event":"holding"`)
	}, func() string { return readString(out) })
	c.start()
	assertExeProbe(t, "created init", waitExeProbe(t, out))
	assertBinaryUnchanged(t, sum)
}

// The container's entrypoint is /proc/self/exe: the init, which is warren,
// executes itself as the container's program (here `warren update -r -`,
// which blocks reading the container's stdin). The host holds that
// process's /proc/<pid>/exe, exactly the handle a container process would
// get, lets it exit, and tries to reopen the handle for writing.
func TestEscapeRuntimeExeAsEntrypoint(t *testing.T) {
	sum := fileSHA256(t, warrenBin)
	b := newBundle(t)
	b.setArgs("/proc/self/exe", "update", "--resources", "-", "no-such-container")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	c, r := b.tryCreate(runOpts{stdin: pr})
	pr.Close()
	if !r.ok() {
		// Refusing /proc/self/exe as the program is a defence too.
		t.Logf("create with /proc/self/exe as the entrypoint refused:\n%s", r)
		assertBinaryUnchanged(t, sum)
		return
	}
	c.start()
	exe := "/proc/" + strconv.Itoa(c.pid) + "/exe"
	var h int
	waitFor(t, "the container's program to be the runtime binary", func() bool {
		fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return false
		}
		var st, bin unix.Stat_t
		if unix.Fstat(fd, &st) == nil && unix.Stat(warrenBin, &bin) == nil && st.Ino == bin.Ino && st.Dev == bin.Dev {
			h = fd
			return true
		}
		unix.Close(fd)
		return false
	}, nil)
	defer unix.Close(h)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(h, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("ESCAPE (CVE-2019-5736): the container program started as /proc/self/exe runs the runtime binary from a writable mount (statfs flags %#x)", sfs.Flags)
	}
	pw.Close() // EOF: warren update gives up and the container stops
	b.waitStatus(c.id, "stopped")
	reopen := "/proc/self/fd/" + strconv.Itoa(h)
	var last error
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		w, err := unix.Open(reopen, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(w) // never write
			t.Errorf("ESCAPE (CVE-2019-5736): reopened the handle on the container program's /proc/<pid>/exe (the runtime binary) for writing")
			break
		}
		last = err
		if err == unix.EROFS {
			break // final: the handle's mount is read-only
		}
	}
	t.Logf("reopen O_WRONLY of the held handle: %v", last)
	assertBinaryUnchanged(t, sum)
}

// `warren exec` runs /proc/self/exe in the container: the exec'd process is
// warren again (blocked reading stdin). The container's init, an attacker,
// finds it, holds its /proc/<pid>/exe, waits for it to exit and reopens
// the handle for writing.
func TestEscapeRuntimeExeViaExec(t *testing.T) {
	sum := fileSHA256(t, warrenBin)
	b := newBundle(t)
	b.setArgs("/testinit", "exeprobe", "scan")
	c := b.create(runOpts{})
	c.start()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	r := c.exec(runOpts{stdin: pr}, []string{"-d"}, "/proc/self/exe", "update", "--resources", "-", "no-such-container")
	pr.Close()
	if !r.ok() {
		t.Logf("exec of /proc/self/exe refused:\n%s", r)
		assertBinaryUnchanged(t, sum)
		return
	}
	waitFor(t, "the attacker to hold the exec'd process's exe", func() bool {
		return strings.Contains(c.output(), `"event":"holding"`)
	}, func() string { return c.output() + c.stderr() })
	pw.Close()
	assertExeProbe(t, "exec'd /proc/self/exe", waitExeProbe(t, c.outPath))
	assertBinaryUnchanged(t, sum)
}

// peekResult is testinit procpeek's output.
type peekResult struct {
	Target int `json:"target"`
	Probes []struct {
		Phase    string `json:"phase"`
		Cmdline  string `json:"cmdline"`
		Exe      try    `json:"exe"`
		ExeLink  try    `json:"exeLink"`
		Cwd      try    `json:"cwd"`
		FdDir    try    `json:"fdDir"`
		FdsOpen  []int  `json:"fdsOpen"`
		FdErrnos []int  `json:"fdErrnos"`
		Environ  try    `json:"environ"`
		Mem      try    `json:"mem"`
	} `json:"probes"`
	Blocked  bool     `json:"blocked"`
	Released bool     `json:"released"`
	Errors   []string `json:"errors"`
}

// The process `warren exec` joins into a container holds the runtime's fds
// (sync socket, the sealed binary) and memory until it execs the user's
// program; it must be non-dumpable all that time, so that no container
// process can open /proc/<pid>/exe, /proc/<pid>/fd/* or its memory
// (CVE-2016-9962, and the exec half of CVE-2019-5736).
//
// The container has a user namespace and CAP_SYS_PTRACE in it: the setting
// in which non-dumpability is the only barrier (without it, the kernel's
// ptrace access check lets the container's root in, because the joining
// process's credentials belong to the container's user namespace). To make
// the window deterministic, the container's /etc/passwd is a fifo: before
// exec'ing, the joining process reads it (HOME lookup) and blocks there
// until the attacker, the container's init, has probed it.
//
// Against a runtime that leaves the process dumpable, the probes of
// /proc/<pid>/exe, fd/N, environ or mem succeed and the test fails.
func TestEscapeExecProcessNonDumpable(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	caps := b.spec.Process.Capabilities
	caps.Bounding = append(caps.Bounding, "CAP_SYS_PTRACE")
	caps.Effective = append(caps.Effective, "CAP_SYS_PTRACE")
	caps.Permitted = append(caps.Permitted, "CAP_SYS_PTRACE")
	b.setArgs("/testinit", "procpeek", "/etc/passwd", "30")
	c := b.create(runOpts{})
	c.start()
	c.waitOutput(`"event":"ready"`)
	fifo := filepath.Join(b.rootfs, "etc", "passwd")
	if err := unix.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	r := c.exec(runOpts{}, nil, "/testinit", "echo", "exec-done")
	if !r.ok() || !strings.Contains(r.stdout, "exec-done") {
		t.Errorf("exec did not run its program:\n%s", r)
	}
	waitFor(t, "the attacker's probes", func() bool { return strings.Contains(c.output(), `"probes"`) },
		func() string { return c.output() + c.stderr() })
	var p peekResult
	lastJSON(t, c.output(), &p)
	t.Logf("probes: %+v", p)
	if p.Target == 0 || len(p.Probes) == 0 {
		t.Fatalf("the attacker never saw the exec'd process: %v", p.Errors)
	}
	if !p.Blocked {
		t.Logf("the exec'd process never blocked on the /etc/passwd fifo (errors %v); the probes were a race", p.Errors)
	}
	pre := 0
	for _, pr := range p.Probes {
		if !strings.HasPrefix(pr.Cmdline, "warren") {
			continue // already exec'd: dumpable again, nothing of warren's left
		}
		pre++
		for name, r := range map[string]try{"exe": pr.Exe, "readlink exe": pr.ExeLink, "readlink cwd": pr.Cwd, "fd/": pr.FdDir, "environ": pr.Environ, "mem": pr.Mem} {
			if r.OK {
				t.Errorf("ESCAPE (CVE-2016-9962/2019-5736, %s): a container process opened /proc/%d/%s of the runtime's exec process before it exec'd", pr.Phase, p.Target, name)
			}
		}
		if len(pr.FdsOpen) > 0 {
			t.Errorf("ESCAPE (%s): a container process opened the runtime's fds %v through /proc/%d/fd before exec", pr.Phase, pr.FdsOpen, p.Target)
		}
	}
	if pre == 0 {
		t.Errorf("no probe caught the exec'd process while it was still warren (cmdlines: %+v): the test did not exercise the window", p.Probes)
	}
}
