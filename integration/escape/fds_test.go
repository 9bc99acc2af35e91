//go:build linux

package escape

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// CVE-2024-21626: runc leaked a directory fd of the host (/sys/fs/cgroup)
// into the container's init; process.cwd or `exec --cwd` set to
// /proc/self/fd/N then made that host directory the process's working
// directory, outside the container's root, and a relative path walked the
// host's tree. The broader invariant: no fd of the host survives execve into
// the container beyond stdio and the fds passed on purpose.
//
// To leave nothing to chance, every warren invocation here is itself handed
// a set of open host directories as fds 3..3+len-1 (as a careless caller
// would leak them) without --preserve-fds: warren must neither pass them on
// nor let a cwd of /proc/self/fd/N reach them, nor any fd of its own.

const leakedFds = 8

// leakHostDirs opens leakedFds directories of the host (victim directories
// of this test) to hand to warren as fds 3, 4, ...
func leakHostDirs(t *testing.T, b *bundle) []*os.File {
	t.Helper()
	var fs []*os.File
	for i := 0; i < leakedFds; i++ {
		d := b.victimDir(fmt.Sprintf("leaked-%d", i))
		f, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fs = append(fs, f)
	}
	return fs
}

// assertCwdInside judges a run with cwd /proc/self/fd/N: refused, or a
// working directory inside the container's root. getcwd(2) of a directory
// outside the process's root yields "(unreachable)/...", which testinit
// reports as an error and an empty cwd: on a vulnerable runtime the test
// fails here.
func assertCwdInside(t *testing.T, what string, r result) {
	t.Helper()
	if !r.ok() {
		t.Logf("%s: refused (fine): %s", what, strings.TrimSpace(r.stderr))
		return
	}
	var rep report
	lastJSON(t, r.stdout, &rep)
	if !strings.HasPrefix(rep.Cwd, "/") {
		t.Errorf("ESCAPE (CVE-2024-21626, %s): the process runs with a working directory outside the container's root (getcwd %q, errors %v)", what, rep.Cwd, rep.Errors)
	}
	assertOnlyFds(t, what, rep, 0)
}

// assertOnlyFds: the process has exactly 0, 1, 2 and `preserved` more fds.
func assertOnlyFds(t *testing.T, what string, rep report, preserved int) {
	t.Helper()
	want := []int{0, 1, 2}
	for i := 0; i < preserved; i++ {
		want = append(want, 3+i)
	}
	if !slices.Equal(rep.FDs, want) {
		var extra []string
		for _, fd := range rep.FDs {
			if !slices.Contains(want, fd) {
				extra = append(extra, fmt.Sprintf("%d -> %s", fd, rep.FDTargets[fd]))
			}
		}
		t.Errorf("ESCAPE (%s): the container process has fds %v, want %v; leaked: %v", what, rep.FDs, want, extra)
	}
}

func TestEscapeCwdProcSelfFdCreate(t *testing.T) {
	t.Parallel()
	for n := 3; n <= 20; n++ {
		t.Run("fd"+strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			leaks := leakHostDirs(t, b)
			b.spec.Process.Cwd = "/proc/self/fd/" + strconv.Itoa(n)
			b.setArgs("/testinit", "report")
			r := b.run(runOpts{extraFiles: leaks})
			assertCwdInside(t, "process.cwd "+b.spec.Process.Cwd, r)
		})
	}
}

func TestEscapeCwdProcSelfFdExec(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	leaks := leakHostDirs(t, b)
	c := startSleeper(t, b)
	for n := 3; n <= 20; n++ {
		cwd := "/proc/self/fd/" + strconv.Itoa(n)
		r := c.exec(runOpts{extraFiles: leaks}, []string{"--cwd", cwd}, "/testinit", "report")
		assertCwdInside(t, "exec --cwd "+cwd, r)
	}
}

// Only stdio and the fds passed with --preserve-fds reach the container's
// program, for create and for exec, although warren itself was handed open
// host directories and holds fds of its own (sync socket, exec fifo, the
// sealed binary, state lock). A runtime that does not mark everything else
// close-on-exec fails on the fd list.
func TestEscapeLeakedFds(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	leaks := leakHostDirs(t, b)
	b.setArgs("/testinit", "report")
	for _, preserve := range []int{0, 2} {
		var extra []string
		if preserve > 0 {
			extra = []string{"--preserve-fds", strconv.Itoa(preserve)}
		}
		r := b.run(runOpts{extraFiles: leaks}, extra...)
		if !r.ok() {
			t.Fatalf("run failed:\n%s", r)
		}
		var rep report
		lastJSON(t, r.stdout, &rep)
		assertOnlyFds(t, fmt.Sprintf("create, --preserve-fds %d", preserve), rep, preserve)
	}
	c := startSleeper(t, b)
	for _, preserve := range []int{0, 1} {
		flags := []string{}
		if preserve > 0 {
			flags = []string{"--preserve-fds", strconv.Itoa(preserve)}
		}
		r := c.exec(runOpts{extraFiles: leaks}, flags, "/testinit", "report")
		if !r.ok() {
			t.Fatalf("exec failed:\n%s", r)
		}
		var rep report
		lastJSON(t, r.stdout, &rep)
		assertOnlyFds(t, fmt.Sprintf("exec, --preserve-fds %d", preserve), rep, preserve)
	}
}

// A startContainer hook runs inside the container (after pivot_root, its
// path resolved in the container's rootfs, so the program is the image's)
// right before the user program. It is a process exec'd in the container
// like the program itself, so the same rule applies: stdio only. A runtime
// that marks its fds close-on-exec only right before the final execve lets
// the hook inherit them: the sync socket, the exec fifo, its own binary
// and, worse, any directory fd its caller leaked to it, through which the
// hook's program can fchdir out of the container (the CVE-2024-21626
// primitive).
func TestEscapeLeakedFdsStartContainerHook(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	leaks := leakHostDirs(t, b)
	out := b.tempDir("hookout")
	b.spec.Mounts = append(b.spec.Mounts, bindMount(out, "/hookout"))
	b.spec.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{
		Path: "/bin/sh",
		Args: []string{"sh", "-c", "exec /testinit report > /hookout/report.json"},
	}}}
	b.setArgs("/testinit", "exit", "0")
	r := b.run(runOpts{extraFiles: leaks})
	if !r.ok() {
		t.Fatalf("run failed:\n%s", r)
	}
	var rep report
	lastJSON(t, readString(filepath.Join(out, "report.json")), &rep)
	assertOnlyFds(t, "startContainer hook", rep, 0)
}
