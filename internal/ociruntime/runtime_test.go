package ociruntime

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/errdefs"
)

func TestClassify(t *testing.T) {
	for msg, want := range map[string]error{
		`container "x" does not exist`:                         errdefs.ErrNotFound,
		"container x does not exist: not found":                errdefs.ErrNotFound,
		"container with id exists: x":                          nil,
		"container x already exists":                           errdefs.ErrExists,
		"cannot exec in container x: it is stopped: bad state": errdefs.ErrState,
		"container x is not running":                           errdefs.ErrState,
		"something else":                                       nil,
	} {
		if got := classify(msg); got != want {
			t.Errorf("classify(%q) = %v, want %v", msg, got, want)
		}
	}
}

// runtimes returns the peers to drive: warren (WARREN_BINARY, else built),
// runc, and crun through a wrapper that gives it the private mount
// namespace it needs on this hybrid cgroup host.
func runtimes(t *testing.T) map[string]*Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running containers needs root")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static)")
	}
	dir := t.TempDir()
	warren := os.Getenv("WARREN_BINARY")
	if warren == "" {
		warren = filepath.Join(dir, "warren")
		if out, err := exec.Command("go", "build", "-o", warren, "github.com/warren-runtime/warren/cmd/warren").CombinedOutput(); err != nil {
			t.Fatalf("building warren: %v\n%s", err, out)
		}
	}
	rts := map[string]*Runtime{"warren": {Path: warren, Root: filepath.Join(dir, "warren-state")}}
	if p, err := exec.LookPath("runc"); err == nil {
		rts["runc"] = &Runtime{Path: p, Root: filepath.Join(dir, "runc-state")}
	}
	if p, err := exec.LookPath("crun"); err == nil {
		wrapper := filepath.Join(dir, "crun-wrapper")
		script := "#!/bin/sh\nexec unshare -m sh -c 'if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified && mount -t tmpfs none /sys/fs/cgroup/unified; fi; exec " + p + " \"$@\"' crun \"$@\"\n"
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		rts["crun"] = &Runtime{Path: wrapper, Root: filepath.Join(dir, "crun-state")}
	}
	return rts
}

func bundle(t *testing.T, warren string, args ...string) string {
	t.Helper()
	b := t.TempDir()
	root := filepath.Join(b, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	bb, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755)
	for _, a := range []string{"sh", "sleep", "echo", "true", "cat"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	if out, err := exec.Command(warren, "spec", "--bundle", b).CombinedOutput(); err != nil {
		t.Fatalf("warren spec: %v\n%s", err, out)
	}
	p := filepath.Join(b, "config.json")
	var s specs.Spec
	data, _ := os.ReadFile(p)
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	s.Version = "1.0.2" // crun 1.8 refuses newer versions
	s.Process.Terminal = false
	s.Process.Args = args
	data, _ = json.Marshal(&s)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// The same lifecycle, driven the same way, works with every runtime: the
// engine can swap them per container.
func TestLifecycleWithEachRuntime(t *testing.T) {
	rts := runtimes(t)
	b := bundle(t, rts["warren"].Path, "/bin/sleep", "1000")
	for name, rt := range rts {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			id := "oci-" + name
			pidFile := filepath.Join(t.TempDir(), "pid")
			if err := rt.Create(ctx, id, CreateOpts{Bundle: b, PidFile: pidFile}); err != nil {
				t.Fatal(err)
			}
			defer rt.Delete(context.Background(), id, true)
			st, err := rt.State(ctx, id)
			if err != nil || st.Status != specs.StateCreated || st.ID != id {
				t.Fatalf("state after create: %+v, %v", st, err)
			}
			if pid, err := ReadPidFile(pidFile); err != nil || pid != st.Pid {
				t.Errorf("pid file %d (%v), state pid %d", pid, err, st.Pid)
			}
			err = rt.Create(ctx, id, CreateOpts{Bundle: b})
			var re *Error
			if !errors.As(err, &re) || re.Command != "create" || re.Message == "" {
				t.Errorf("second create of %s: %v; want a runtime error with its message", id, err)
			}
			if err := rt.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			if st, err := rt.State(ctx, id); err != nil || st.Status != specs.StateRunning {
				t.Fatalf("state after start: %+v, %v", st, err)
			}
			list, err := rt.List(ctx)
			if err != nil || len(list) != 1 || list[0].ID != id {
				t.Errorf("list: %+v, %v", list, err)
			}
			out, err := os.CreateTemp(t.TempDir(), "out")
			if err != nil {
				t.Fatal(err)
			}
			p := &specs.Process{Args: []string{"/bin/sh", "-c", "echo from-exec; exit 3"}, Cwd: "/", Env: []string{"PATH=/bin"}}
			code, err := rt.Exec(ctx, id, p, ExecOpts{IO: IO{Stdout: out}})
			if err != nil || code != 3 {
				t.Errorf("exec exiting 3: code %d, %v", code, err)
			}
			if b, _ := os.ReadFile(out.Name()); string(b) != "from-exec\n" {
				t.Errorf("exec output %q", b)
			}
			p.Args = []string{"/no/such/program"}
			if _, err := rt.Exec(ctx, id, p, ExecOpts{}); err == nil {
				t.Errorf("exec of a missing program succeeded")
			}
			if err := rt.Kill(ctx, id, "KILL", false); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, err := rt.State(ctx, id)
				if err == nil && st.Status == specs.StateStopped {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not stopped after SIGKILL: %+v, %v", st, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := rt.Delete(ctx, id, false); err != nil {
				t.Fatal(err)
			}
			_, err = rt.State(ctx, id)
			if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), id) {
				t.Errorf("state of a deleted container: %v; want ErrNotFound naming it", err)
			}
		})
	}
}
