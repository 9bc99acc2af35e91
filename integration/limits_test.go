//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestStateRootOutOfSpace: a state root with no space left fails create
// with the errno in the message and leaves nothing: not when the first
// state write fails, and not when a later one does, after the container's
// init is already running (a one-page tmpfs holds the first state.json but
// not its replacement next to it).
func TestStateRootOutOfSpace(t *testing.T) {
	for _, c := range []struct {
		name string
		fill bool
	}{{"full", true}, {"one page", false}} {
		t.Run(c.name, func(t *testing.T) {
			b := newBundle(t)
			b.setArgs("/bin/sleep", "1000")
			mnt := t.TempDir()
			if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=4k,mode=0700"); err != nil {
				t.Fatalf("mount a small tmpfs: %v", err)
			}
			t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
			b.root = filepath.Join(mnt, "state")
			if err := os.Mkdir(b.root, 0o700); err != nil {
				t.Fatal(err)
			}
			if c.fill {
				f, err := os.Create(filepath.Join(mnt, "filler"))
				if err != nil {
					t.Fatal(err)
				}
				for {
					if _, err := f.Write(make([]byte, 1024)); err != nil {
						break
					}
				}
				f.Close()
			}
			id := newID(t)
			_, r := b.tryCreate(id)
			if r.code == 0 {
				t.Fatalf("create on a full state root succeeded:\n%s", r)
			}
			if !strings.Contains(r.stderr, "no space left on device") {
				t.Errorf("the error does not say the state root is full:\n%s", r)
			}
			if ents, _ := os.ReadDir(b.root); len(ents) > 0 {
				t.Errorf("state root holds %d entries after the failed create (%s)", len(ents), ents[0].Name())
			}
			// track's cleanup checks cgroups, processes and mounts.
		})
	}
}

// TestCreateUnderLowFileLimit runs create with ever larger RLIMIT_NOFILE
// (soft = hard, so the Go runtime cannot raise it): at each limit create
// either works or fails with a clear error, and a failure leaves nothing.
func TestCreateUnderLowFileLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	b := newBundle(t)
	b.setArgs("/bin/sleep", "1000")
	// The container inherits the limit: not raising it needs no
	// CAP_SYS_RESOURCE (which root lacks on some hosts).
	b.spec.Process.Rlimits = nil
	b.writeSpec()
	var failed, worked []int
	var firstErr string
	for n := 4; n <= 24; n += 2 {
		id := newID(t)
		b.track(id)
		out, errOut := filepath.Join(b.tempDir("io"), id+".out"), filepath.Join(b.tempDir("io"), id+".err")
		stdout, _ := os.Create(out)
		stderr, _ := os.Create(errOut)
		cmd := exec.Command(prlimit, fmt.Sprintf("--nofile=%d:%d", n, n), "--", warrenBin, "--root", b.root, "create", "--bundle", b.dir, id)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		err := cmd.Run()
		stdout.Close()
		stderr.Close()
		msg, _ := os.ReadFile(errOut)
		if err == nil {
			worked = append(worked, n)
			b.mustWarren("delete", "--force", id)
		} else {
			failed = append(failed, n)
			if firstErr == "" {
				firstErr = strings.TrimSpace(string(msg))
			}
			if !strings.Contains(string(msg), "too many open files") {
				t.Errorf("create with RLIMIT_NOFILE %d: %v, and the error does not name the cause:\n%s", n, err, msg)
			}
			if r := b.warren("state", id); r.code == 0 {
				t.Errorf("a failed create (RLIMIT_NOFILE %d) left container %s:\n%s", n, id, r.stdout)
			}
		}
		b.assertNoLeftovers(id)
	}
	t.Logf("RLIMIT_NOFILE: create failed cleanly at %v, worked at %v; the error at %d: %s", failed, worked, failed[0], firstErr)
	if len(worked) == 0 {
		t.Errorf("create never worked, even with RLIMIT_NOFILE 24")
	}
}

// TestCreateWithPidsExhausted: a container whose pids limit leaves its init
// no room to start fails create with a clear error, and leaves nothing.
func TestCreateWithPidsExhausted(t *testing.T) {
	b := newBundle(t)
	b.setArgs("/bin/sleep", "1000")
	var failed, worked []int64
	var firstErr string
	for _, n := range []int64{1, 2, 3, 4, 6, 8} {
		b.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: ptr(n)}
		id := newID(t)
		_, r := b.tryCreate(id)
		if r.code == 0 {
			worked = append(worked, n)
			b.mustWarren("delete", "--force", id)
		} else {
			failed = append(failed, n)
			if firstErr == "" {
				firstErr = strings.TrimSpace(r.stderr)
			}
			if r.err != nil || !strings.Contains(r.stderr, "linux.resources.pids.limit is too small") {
				t.Errorf("create with pids limit %d: the error does not name the cause:\n%s", n, r)
			}
		}
		b.assertNoLeftovers(id)
	}
	t.Logf("pids limit: create failed at %v, worked at %v; the error at %d: %s", failed, worked, failed[0], firstErr)
	if len(failed) == 0 {
		t.Errorf("create never failed, even with a pids limit of 1")
	}
}

// TestWarrenOutOfTasks runs warren itself in a cgroup with few tasks left:
// it either works, or fails naming the cause (a pids limit above the
// container's cgroup; or the Go runtime's abort when warren cannot start a
// thread at all), and what it leaves is removed by `delete --force`.
func TestWarrenOutOfTasks(t *testing.T) {
	if cgroupV2 {
		t.Skip("uses the cgroup v1 pids hierarchy to confine warren; the v2 case is the same limit")
	}
	var pidsDir string
	for _, d := range ownCgroupDirs {
		if strings.HasPrefix(d, "/sys/fs/cgroup/pids") {
			pidsDir = d
		}
	}
	if pidsDir == "" {
		t.Skip("no cgroup v1 pids hierarchy mounted")
	}
	b := newBundle(t)
	b.setArgs("/bin/sleep", "1000")
	b.writeSpec()
	cg := filepath.Join(pidsDir, "warren-tasks-"+strings.TrimPrefix(newID(t), "wit-"))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })
	var outcomes []string
	for n := 2; n <= 12; n += 2 {
		if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte(fmt.Sprint(n)), 0o644); err != nil {
			t.Fatal(err)
		}
		id := newID(t)
		b.track(id)
		script := fmt.Sprintf("echo $$ > %s/cgroup.procs && exec %s --root %s create --bundle %s %s", cg, warrenBin, b.root, b.dir, id)
		// A file, not a pipe: a created container keeps warren's stdio.
		outPath := filepath.Join(b.tempDir("io"), id+".out")
		of, err := os.Create(outPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Stdout, cmd.Stderr = of, of
		err = cmd.Run()
		of.Close()
		out, _ := os.ReadFile(outPath)
		switch {
		case err == nil:
			outcomes = append(outcomes, fmt.Sprintf("%d: ok", n))
		case strings.Contains(string(out), "pthread_create failed"):
			outcomes = append(outcomes, fmt.Sprintf("%d: Go runtime abort", n))
		case strings.Contains(string(out), "pids limit"):
			outcomes = append(outcomes, fmt.Sprintf("%d: pids limit named", n))
		default:
			t.Errorf("create with %d tasks left: %v, and the error names no cause:\n%s", n, err, out)
		}
		// Recover as a user would, from outside the confined cgroup.
		for _, l := range listIDs(t, b, "out of tasks") {
			if r := b.warren("delete", "--force", l); r.code != 0 {
				t.Errorf("delete --force %s:\n%s", l, r)
			}
		}
		b.assertNoLeftovers(id)
	}
	t.Logf("tasks left for warren: %s", strings.Join(outcomes, ", "))
}
