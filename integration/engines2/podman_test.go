//go:build linux

package engines2

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// podman is one private podman installation: its own storage, run root,
// containers.conf and cgroup parent, with warren (behind the wrapper) as its
// only runtime.
type podman struct {
	bin          string
	dir          string
	w            *runtimeWrapper
	env          []string
	globals      []string
	cgroupParent string // "/we2-podman-<n>": both conmon and the containers live below it
}

func (p *podman) cmd(args ...string) result {
	return runCmd(p.env, nil, p.bin, append(append([]string{}, p.globals...), args...)...)
}

// runArgs are the options every `podman run` of the tests gets: no network
// (host networking is never touched), no seccomp (warren does not do it
// yet), the test's cgroup parent.
func (p *podman) runArgs() []string {
	return []string{"--network", "none", "--security-opt", "seccomp=unconfined", "--cgroup-parent", p.cgroupParent}
}

func (p *podman) image() string { return "localhost/" + imageRepo + ":" + imageTag }

func setupPodman(t *testing.T) *podman {
	tools := needTools(t, "podman", "conmon")
	dir := filepath.Join(baseDir, "podman")
	p := &podman{
		bin:          tools["podman"],
		dir:          dir,
		cgroupParent: fmt.Sprintf("/we2-podman-%d", os.Getpid()),
	}
	for _, d := range []string{"storage", "run", "tmp", "net", "hooks.d", "cfg"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.w = newRuntimeWrapper(t, filepath.Join(dir, "rt"))

	// Paths podman writes whatever it is told (see the package doc), and
	// warren's default --root, which podman uses (it passes no --root to
	// the runtime) and other warren users share.
	guard := guardHostPaths("/var/lib/containers/cache", "/run/libpod", "/run/containers", "/etc/containers/networks")
	sharedGuard := guardHostDirs("/run/warren")

	// containers.conf: the runtime is named warren (podman keys some
	// behaviour on the name), rlimits podman can set without
	// CAP_SYS_RESOURCE (its default nofile 1048576 makes setrlimit fail
	// here), no hooks, no journald/systemd on this host, everything podman
	// keeps under the test's directory.
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"
netns = "none"

[engine]
runtime = "warren"
# podman passes --log FILE --log-format json only to the runtimes named here,
# and reads a failed call's error from that file.
runtime_supports_json = ["warren"]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %[1]q
tmp_dir = %[2]q
hooks_dir = [%[3]q]
static_dir = %[4]q
volume_path = %[5]q

[engine.runtimes]
warren = [%[6]q]

[network]
network_config_dir = %[7]q
`,
		filepath.Join(dir, "events.log"),
		filepath.Join(dir, "tmp"),
		filepath.Join(dir, "hooks.d"),
		filepath.Join(dir, "storage", "libpod"),
		filepath.Join(dir, "storage", "volumes"),
		p.w.path,
		filepath.Join(dir, "net"),
	)
	confPath := filepath.Join(dir, "cfg", "containers.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	storageConf := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "storage"), filepath.Join(dir, "run"))
	storagePath := filepath.Join(dir, "cfg", "storage.conf")
	if err := os.WriteFile(storagePath, []byte(storageConf), 0o644); err != nil {
		t.Fatal(err)
	}
	p.env = []string{
		"CONTAINERS_CONF=" + confPath,
		"CONTAINERS_STORAGE_CONF=" + storagePath,
	}
	p.globals = []string{
		"--root", filepath.Join(dir, "storage"),
		"--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "overlay",
		"--runtime", p.w.path,
		"--cgroup-manager", "cgroupfs",
	}

	t.Cleanup(func() {
		// Containers first (conmon exits with them), then whatever is left.
		if r := p.cmd("rm", "--all", "--force", "--time", "0"); r.code != 0 {
			t.Logf("cleanup: %s", r)
		}
		killProcessesUnder(t, dir)
		unmountUnder(t, dir)
		if left := removeCgroupTree(p.cgroupParent); len(left) > 0 {
			t.Errorf("cleanup: cgroups left behind: %v", left)
		}
		for _, rel := range []string{"/libpod_parent"} {
			// Only if podman made it for us: nothing else uses it here.
			if g := cgroupDirs(rel); len(g) > 0 {
				t.Logf("cleanup: podman created cgroup %s despite --cgroup-parent: %v", rel, g)
			}
		}
		removed := append(guard.removeCreated(t), sharedGuard.removeCreated(t)...)
		if len(removed) > 0 {
			t.Logf("cleanup: removed host paths podman created: %v", removed)
		}
	})

	r := p.cmd("load", "--input", imageTar)
	if r.code != 0 {
		t.Fatalf("podman load: %s", r)
	}
	if r := p.cmd("image", "exists", p.image()); r.code != 0 {
		t.Fatalf("image %s not there after podman load: %s\nimages: %s", p.image(), r, p.cmd("images"))
	}
	return p
}

func TestPodman(t *testing.T) {
	p := setupPodman(t)

	t.Run("RunRm", func(t *testing.T) {
		p.w.dumpOnFailure(t)
		mark := p.w.mark()
		args := append([]string{"run", "--rm", "--name", "we2-runrm"}, p.runArgs()...)
		args = append(args, p.image(), "sh", "-c", `echo "hello from pid $$ on $(hostname)"; echo to-stderr >&2; exit 7`)
		r := p.cmd(args...)
		if r.code != 7 {
			t.Fatalf("want the container's exit status 7 from podman run: %s", r)
		}
		if !strings.Contains(r.stdout, "hello from pid 1 on ") {
			t.Errorf("want the container's output on stdout, its shell as PID 1: %s", r)
		}
		if !strings.Contains(r.stderr, "to-stderr") || strings.Contains(r.stdout, "to-stderr") {
			t.Errorf("want the container's stderr on podman's stderr only: %s", r)
		}
		assertVerbs(t, p.w, mark, "create", "start", "delete")
		if r := p.cmd("ps", "--all", "--quiet"); r.code != 0 || strings.TrimSpace(r.stdout) != "" {
			t.Errorf("want no container after run --rm: %s", r)
		}
	})

	t.Run("RunTTY", func(t *testing.T) {
		p.w.dumpOnFailure(t)
		mark := p.w.mark()
		args := append(append([]string{}, p.globals...), "run", "--rm", "--tty", "--name", "we2-runtty")
		args = append(append(args, p.runArgs()...), p.image(), "sh", "-c", ttyScript+"; exit 4")
		r := runInPTY(p.env, p.bin, args...)
		if r.code != 4 {
			t.Fatalf("want the container's exit status 4 from podman run -t: %s", r)
		}
		assertTTYOutput(t, r)
		assertVerbs(t, p.w, mark, "create", "start", "delete")
	})

	t.Run("DetachedExecStopRm", func(t *testing.T) {
		p.w.dumpOnFailure(t)
		const name = "we2-exec"
		mark := p.w.mark()
		// PID 1 gets SIGTERM only through a handler: the trap proves
		// `podman stop` delivered it (exit 0, not 137 after a SIGKILL).
		args := append([]string{"run", "--detach", "--name", name}, p.runArgs()...)
		args = append(args, p.image(), "sh", "-c", `trap 'echo got-sigterm; exit 0' TERM; echo ready; while :; do sleep 0.1; done`)
		r := p.cmd(args...)
		if r.code != 0 {
			t.Fatalf("podman run -d: %s", r)
		}
		id := strings.TrimSpace(r.stdout)
		waitPodmanLog(t, p, name, "ready")
		if st := p.inspect(t, name, "{{.State.Status}}"); st != "running" {
			t.Fatalf("want container running after run -d, got %q", st)
		}
		initPID := p.inspect(t, name, "{{.State.Pid}}")
		// cgroupfs manager: <cgroup parent>/libpod-<id>.
		assertInCgroup(t, initPID, p.cgroupParent+"/libpod-"+id)

		t.Run("Exec", func(t *testing.T) {
			p.w.dumpOnFailure(t)
			m := p.w.mark()
			r := p.cmd("exec", name, "sh", "-c", `echo "exec-out pid1=$(cat /proc/1/comm)"; `+printNamespaces+`; `+printCaps+`; exit 3`)
			if r.code != 3 {
				t.Fatalf("want the exec'd process's exit status 3: %s", r)
			}
			if !strings.Contains(r.stdout, "exec-out pid1=sh") {
				t.Errorf("want the exec'd process's output, with the container's init as its PID 1: %s", r)
			}
			assertSameNamespaces(t, r.stdout, initPID)
			assertExecCaps(t, r.stdout, initPID, true)
			assertVerbs(t, p.w, m, "exec")
		})

		t.Run("ExecUser", func(t *testing.T) {
			p.w.dumpOnFailure(t)
			r := p.cmd("exec", "--user", "65534:65534", "--workdir", "/tmp", "--env", "WE2=set", name,
				"sh", "-c", `echo "id=$(id -u):$(id -g) cwd=$(pwd) WE2=$WE2"; `+printCaps)
			if r.code != 0 {
				t.Fatalf("podman exec --user: %s", r)
			}
			if !strings.Contains(r.stdout, "id=65534:65534 cwd=/tmp WE2=set") {
				t.Errorf("want the exec'd process with the requested user, cwd and env: %s", r)
			}
			assertExecCaps(t, r.stdout, initPID, false)
		})

		t.Run("ExecTTY", func(t *testing.T) {
			p.w.dumpOnFailure(t)
			m := p.w.mark()
			r := runInPTY(p.env, p.bin, append(append([]string{}, p.globals...), "exec", "--tty", name, "sh", "-c", ttyScript)...)
			if r.code != 0 {
				t.Fatalf("podman exec -t: %s", r)
			}
			assertTTYOutput(t, r)
			assertVerbs(t, p.w, m, "exec")
		})

		t.Run("Stop", func(t *testing.T) {
			p.w.dumpOnFailure(t)
			m := p.w.mark()
			r := p.cmd("stop", "--time", "20", name)
			if r.code != 0 {
				t.Fatalf("podman stop: %s", r)
			}
			if st := p.inspect(t, name, "{{.State.Status}}"); st != "exited" {
				t.Errorf("want exited after stop, got %q", st)
			}
			if code := p.inspect(t, name, "{{.State.ExitCode}}"); code != "0" {
				t.Errorf("want exit code 0 (the TERM trap ran), got %s", code)
			}
			if r := p.cmd("logs", name); !strings.Contains(r.stdout, "got-sigterm") {
				t.Errorf("want the trap's output in the logs after stop: %s", r)
			}
			assertProcessGone(t, initPID)
			assertVerbs(t, p.w, m, "kill")
		})

		t.Run("Rm", func(t *testing.T) {
			p.w.dumpOnFailure(t)
			if r := p.cmd("rm", name); r.code != 0 {
				t.Fatalf("podman rm: %s", r)
			}
			if r := p.cmd("container", "exists", name); r.code != 1 {
				t.Errorf("want the container gone after rm: %s", r)
			}
			// podman has warren delete the container as soon as it
			// exited (before rm): no warren state may be left.
			assertNoWarrenContainer(t, p.w, id)
			if dirs := cgroupDirs(p.cgroupParent + "/libpod-" + id); len(dirs) > 0 {
				t.Errorf("container cgroups left after rm: %v", dirs)
			}
		})
		assertVerbs(t, p.w, mark, "create", "start", "delete")
	})

	t.Run("Logs", func(t *testing.T) {
		p.w.dumpOnFailure(t)
		const name = "we2-logs"
		args := append([]string{"run", "--detach", "--name", name}, p.runArgs()...)
		args = append(args, p.image(), "sh", "-c", `echo line-one; echo line-two >&2; echo line-three`)
		if r := p.cmd(args...); r.code != 0 {
			t.Fatalf("podman run -d: %s", r)
		}
		if r := p.cmd("wait", name); r.code != 0 || strings.TrimSpace(r.stdout) != "0" {
			t.Fatalf("podman wait: want exit code 0: %s", r)
		}
		r := p.cmd("logs", name)
		if r.code != 0 {
			t.Fatalf("podman logs: %s", r)
		}
		for _, want := range []string{"line-one", "line-three"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("want %q on podman logs' stdout: %s", want, r)
			}
		}
		if !strings.Contains(r.stderr, "line-two") || strings.Contains(r.stdout, "line-two") {
			t.Errorf("want the container's stderr line on podman logs' stderr: %s", r)
		}
		if i, j := strings.Index(r.stdout, "line-one"), strings.Index(r.stdout, "line-three"); i < 0 || j < i {
			t.Errorf("want stdout lines in order: %s", r)
		}
		if r := p.cmd("rm", name); r.code != 0 {
			t.Errorf("podman rm: %s", r)
		}
	})
}

func (p *podman) inspect(t *testing.T, name, format string) string {
	t.Helper()
	r := p.cmd("inspect", "--type", "container", "--format", format, name)
	if r.code != 0 {
		t.Fatalf("podman inspect: %s", r)
	}
	return strings.TrimSpace(r.stdout)
}

func waitPodmanLog(t *testing.T, p *podman, name, want string) {
	t.Helper()
	var last result
	if !pollUntil(20*time.Second, func() bool {
		last = p.cmd("logs", name)
		return strings.Contains(last.stdout, want)
	}) {
		t.Fatalf("container %s never printed %q: %s", name, want, last)
	}
}
