//go:build linux

package engines2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docker is one private dockerd (with the containerd it starts itself),
// warren registered as its runtime "warren" (dockerd reserves "runc").
type docker struct {
	cli          string
	dir          string
	sock         string
	w            *runtimeWrapper
	env          []string
	cgroupParent string
	api          *http.Client
}

func (d *docker) cmd(args ...string) result {
	return runCmd(d.env, nil, d.cli, append([]string{"--host", "unix://" + d.sock}, args...)...)
}

func (d *docker) image() string { return imageRepo + ":" + imageTag }

// runArgs: no network, no seccomp (warren does not do it yet), warren.
func (d *docker) runArgs() []string {
	return []string{"--runtime", "warren", "--network", "none", "--security-opt", "seccomp=unconfined"}
}

func setupDocker(t *testing.T) *docker {
	tools := needTools(t, "dockerd", "docker", "containerd", "containerd-shim-runc-v2")
	dir := filepath.Join(baseDir, "docker")
	d := &docker{
		cli:          tools["docker"],
		dir:          dir,
		sock:         filepath.Join(dir, "docker.sock"),
		cgroupParent: fmt.Sprintf("/we2-docker-%d", os.Getpid()),
	}
	for _, s := range []string{"data", "exec", "cli"} {
		if err := os.MkdirAll(filepath.Join(dir, s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.w = newRuntimeWrapper(t, filepath.Join(dir, "rt"))
	d.env = []string{"DOCKER_CONFIG=" + filepath.Join(dir, "cli")}
	d.api = &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		}},
		Timeout: cmdTimeout,
	}
	// Written by dockerd and its containerd whatever they are told: the
	// daemon's key, containerd's opt plugin dir, the plugin dir, and the
	// shims' sockets in /run/containerd/s, a directory other containerds
	// share: there only our shims' sockets are removed (shimSockets).
	guard := guardHostPaths("/etc/docker", "/opt/containerd", "/run/docker", "/var/lib/docker")
	sharedGuard := guardHostDirs("/run/containerd")
	netBefore := hostNetworkState()

	// dockerd uses a containerd already listening at the default address
	// instead of starting its own: then the test's containers live in that
	// containerd (still removed by `docker rm -f` in cleanup).
	if _, err := os.Stat("/run/containerd/containerd.sock"); err == nil {
		t.Logf("note: /run/containerd/containerd.sock exists; dockerd will use that containerd instead of starting a private one")
	}

	// An empty config file: no /etc/docker/daemon.json of the host applies.
	confPath := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(confPath, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	daemon := exec.Command(tools["dockerd"],
		"--host", "unix://"+d.sock,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--config-file", confPath,
		"--add-runtime", "warren="+d.w.path,
		"--cgroup-parent", d.cgroupParent,
		// Host networking stays as it is: no bridge, no iptables rules,
		// no ip_forward sysctl (dockerd sets it by default even without
		// a bridge).
		"--bridge", "none",
		"--iptables=false",
		"--ip6tables=false",
		"--ip-forward=false",
		"--ip-masq=false",
		"--userland-proxy=false",
		"--storage-driver", "overlay2",
	)
	daemon.Stdout, daemon.Stderr = logf, logf
	// Its own process group: a signal to the test's group does not reach it
	// before the cleanup below.
	daemon.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := daemon.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()

	t.Cleanup(func() {
		if r := d.cmd("ps", "--all", "--quiet"); r.code == 0 {
			if ids := strings.Fields(r.stdout); len(ids) > 0 {
				if r := d.cmd(append([]string{"rm", "--force"}, ids...)...); r.code != 0 {
					t.Logf("cleanup: %s", r)
				}
			}
		}
		// dockerd stops its containerd on SIGTERM.
		_ = daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Logf("cleanup: dockerd (pid %d) did not stop on SIGTERM in 20s; killing it", daemon.Process.Pid)
			_ = daemon.Process.Kill()
			<-exited
		}
		// containerd, shims: all carry paths under dir in their argv.
		killProcessesUnder(t, dir)
		for _, s := range d.shimSockets() {
			if err := os.Remove(s); err == nil {
				t.Logf("cleanup: removed the socket of a killed shim: %s", s)
			}
		}
		unmountUnder(t, dir)
		if left := removeCgroupTree(d.cgroupParent); len(left) > 0 {
			t.Errorf("cleanup: cgroups left behind: %v", left)
		}
		removed := append(guard.removeCreated(t), sharedGuard.removeCreated(t)...)
		if len(removed) > 0 {
			t.Logf("cleanup: removed host paths dockerd/containerd created: %v", removed)
		}
		if after := hostNetworkState(); after != netBefore {
			t.Errorf("host network state changed while dockerd ran:\nbefore: %s\nafter:  %s", netBefore, after)
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "dockerd.log")); err == nil {
				t.Logf("dockerd.log (last lines):\n%s", indent(lastLines(string(b), 30)))
			}
		}
	})

	var last result
	if !pollUntil(30*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
		}
		last = d.cmd("version", "--format", "{{.Server.Version}}")
		return last.code == 0
	}) || last.code != 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
		t.Fatalf("dockerd did not come up: %s\ndockerd.log:\n%s", last, lastLines(string(b), 40))
	}
	if r := d.cmd("load", "--input", imageTar); r.code != 0 {
		t.Fatalf("docker load: %s", r)
	}
	if r := d.cmd("image", "inspect", "--format", "{{.Id}}", d.image()); r.code != 0 {
		t.Fatalf("image %s not there after docker load: %s", d.image(), r)
	}
	return d
}

// A way of creating containers. DockerRun: `docker run` as a user types
// it; dockerd then adds a prestart hook (`/proc/<dockerd pid>/exe
// libnetwork-setkey ...`) to every container with a network namespace of its
// own, --network none included. NetworkDisabled: the Engine API's
// create with "NetworkDisabled": true (no CLI flag sets it), for which
// dockerd sets up no network and adds no hook — the same engine path
// otherwise, so exec, tty, logs, kill and rm are exercised while warren
// refuses hooks.
type dockerMode struct {
	name string
	// foreground runs the script and removes the container after, like
	// `docker run --rm` (with tty, `docker run --rm -t` in a pty).
	foreground func(t *testing.T, d *docker, name, script string, tty bool) result
	// detached starts the script and returns the container id, like
	// `docker run -d`.
	detached func(t *testing.T, d *docker, name, script string) (string, result)
}

var dockerModes = []dockerMode{
	{
		name: "DockerRun",
		foreground: func(t *testing.T, d *docker, name, script string, tty bool) result {
			args := append([]string{"run", "--rm", "--name", name}, d.runArgs()...)
			if tty {
				args = append(args, "--tty")
			}
			args = append(args, d.image(), "sh", "-c", script)
			if tty {
				return runInPTY(d.env, d.cli, append([]string{"--host", "unix://" + d.sock}, args...)...)
			}
			return d.cmd(args...)
		},
		detached: func(t *testing.T, d *docker, name, script string) (string, result) {
			args := append([]string{"run", "--detach", "--name", name}, d.runArgs()...)
			r := d.cmd(append(args, d.image(), "sh", "-c", script)...)
			return strings.TrimSpace(r.stdout), r
		},
	},
	{
		name: "NetworkDisabled",
		foreground: func(t *testing.T, d *docker, name, script string, tty bool) result {
			if _, err := d.apiCreate(name, true, tty, "sh", "-c", script); err != nil {
				return result{cmdline: "POST /containers/create", code: -1, err: err}
			}
			if tty {
				return runInPTY(d.env, d.cli, "--host", "unix://"+d.sock, "start", "--attach", name)
			}
			return d.cmd("start", "--attach", name)
		},
		detached: func(t *testing.T, d *docker, name, script string) (string, result) {
			id, err := d.apiCreate(name, false, false, "sh", "-c", script)
			if err != nil {
				return "", result{cmdline: "POST /containers/create", code: -1, err: err}
			}
			return id, d.cmd("start", name)
		},
	},
}

// apiCreate creates a container through the Engine API with the same
// settings as runArgs, but NetworkDisabled.
func (d *docker) apiCreate(name string, autoRemove, tty bool, cmd ...string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"Image":           d.image(),
		"Cmd":             cmd,
		"Tty":             tty,
		"NetworkDisabled": true,
		"HostConfig": map[string]any{
			"Runtime":     "warren",
			"NetworkMode": "none",
			"SecurityOpt": []string{"seccomp=unconfined"},
			"AutoRemove":  autoRemove,
		},
	})
	resp, err := d.api.Post("http://docker/v1.41/containers/create?name="+url.QueryEscape(name), "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST /containers/create: %s: %s", resp.Status, b)
	}
	var out struct{ Id string }
	if err := json.Unmarshal(b, &out); err != nil {
		return "", err
	}
	return out.Id, nil
}

func TestDocker(t *testing.T) {
	d := setupDocker(t)
	for _, mode := range dockerModes {
		t.Run(mode.name, func(t *testing.T) { dockerSuite(t, d, mode) })
	}
}

func dockerSuite(t *testing.T, d *docker, mode dockerMode) {
	prefix := "we2-" + strings.ToLower(mode.name)

	t.Run("RunRm", func(t *testing.T) {
		d.w.dumpOnFailure(t)
		mark := d.w.mark()
		name := prefix + "-runrm"
		r := mode.foreground(t, d, name, `echo "hello from pid $$ on $(hostname)"; echo to-stderr >&2; exit 7`, false)
		if r.code != 7 {
			t.Fatalf("want the container's exit status 7 from docker: %s", r)
		}
		if !strings.Contains(r.stdout, "hello from pid 1 on ") {
			t.Errorf("want the container's output on stdout, its shell as PID 1: %s", r)
		}
		if !strings.Contains(r.stderr, "to-stderr") || strings.Contains(r.stdout, "to-stderr") {
			t.Errorf("want the container's stderr on docker's stderr only: %s", r)
		}
		assertVerbs(t, d.w, mark, "create", "start", "delete")
		// --rm / AutoRemove: dockerd removes the container after it exited.
		var ps result
		if !pollUntil(10*time.Second, func() bool {
			ps = d.cmd("ps", "--all", "--quiet", "--filter", "name=^"+name+"$")
			return ps.code == 0 && strings.TrimSpace(ps.stdout) == ""
		}) {
			t.Errorf("want no container %s after it exited (auto-remove): %s", name, ps)
		}
	})

	t.Run("RunTTY", func(t *testing.T) {
		d.w.dumpOnFailure(t)
		mark := d.w.mark()
		r := mode.foreground(t, d, prefix+"-runtty", ttyScript+"; exit 4", true)
		if r.code != 4 {
			t.Fatalf("want the container's exit status 4 through a terminal: %s", r)
		}
		assertTTYOutput(t, r)
		assertVerbs(t, d.w, mark, "create", "start", "delete")
	})

	t.Run("Detached", func(t *testing.T) {
		d.w.dumpOnFailure(t)
		name := prefix + "-detached"
		mark := d.w.mark()
		id, r := mode.detached(t, d, name, `trap 'echo got-sigterm; exit 0' TERM; echo ready; echo ready-err >&2; while :; do sleep 0.1; done`)
		if r.code != 0 {
			t.Fatalf("starting a detached container: %s", r)
		}
		waitDockerLog(t, d, name, "ready")
		if st := d.inspect(t, name, "{{.State.Status}}"); st != "running" {
			t.Fatalf("want running, got %q", st)
		}
		initPID := d.inspect(t, name, "{{.State.Pid}}")
		assertInCgroup(t, initPID, d.cgroupParent+"/"+id)
		assertVerbs(t, d.w, mark, "create", "start")

		t.Run("Exec", func(t *testing.T) {
			d.w.dumpOnFailure(t)
			m := d.w.mark()
			r := d.cmd("exec", name, "sh", "-c", `echo "exec-out pid1=$(cat /proc/1/comm)"; `+printNamespaces+`; `+printCaps+`; exit 3`)
			if r.code != 3 {
				t.Fatalf("want the exec'd process's exit status 3: %s", r)
			}
			if !strings.Contains(r.stdout, "exec-out pid1=sh") {
				t.Errorf("want the exec'd process's output, with the container's init as its PID 1: %s", r)
			}
			assertSameNamespaces(t, r.stdout, initPID)
			assertExecCaps(t, r.stdout, initPID, true)
			assertVerbs(t, d.w, m, "exec")
		})

		t.Run("ExecUser", func(t *testing.T) {
			d.w.dumpOnFailure(t)
			r := d.cmd("exec", "--user", "65534:65534", "--workdir", "/tmp", "--env", "WE2=set", name,
				"sh", "-c", `echo "id=$(id -u):$(id -g) cwd=$(pwd) WE2=$WE2"; `+printCaps)
			if r.code != 0 {
				t.Fatalf("docker exec --user: %s", r)
			}
			if !strings.Contains(r.stdout, "id=65534:65534 cwd=/tmp WE2=set") {
				t.Errorf("want the exec'd process with the requested user, cwd and env: %s", r)
			}
			assertExecCaps(t, r.stdout, initPID, false)
		})

		t.Run("ExecTTY", func(t *testing.T) {
			d.w.dumpOnFailure(t)
			m := d.w.mark()
			r := runInPTY(d.env, d.cli, "--host", "unix://"+d.sock, "exec", "--tty", name, "sh", "-c", ttyScript)
			if r.code != 0 {
				t.Fatalf("docker exec -t: %s", r)
			}
			assertTTYOutput(t, r)
			assertVerbs(t, d.w, m, "exec")
		})

		t.Run("Logs", func(t *testing.T) {
			d.w.dumpOnFailure(t)
			r := d.cmd("logs", name)
			if r.code != 0 {
				t.Fatalf("docker logs: %s", r)
			}
			if !strings.Contains(r.stdout, "ready") || strings.Contains(r.stdout, "ready-err") {
				t.Errorf("want the container's stdout on stdout: %s", r)
			}
			if !strings.Contains(r.stderr, "ready-err") {
				t.Errorf("want the container's stderr on stderr: %s", r)
			}
		})

		t.Run("Kill", func(t *testing.T) {
			d.w.dumpOnFailure(t)
			m := d.w.mark()
			if r := d.cmd("kill", name); r.code != 0 {
				t.Fatalf("docker kill: %s", r)
			}
			if r := d.cmd("wait", name); r.code != 0 || strings.TrimSpace(r.stdout) != "137" {
				t.Errorf("want exit code 137 (SIGKILL) from docker wait: %s", r)
			}
			if st := d.inspect(t, name, "{{.State.Status}}"); st != "exited" {
				t.Errorf("want exited after kill, got %q", st)
			}
			assertProcessGone(t, initPID)
			assertVerbs(t, d.w, m, "kill")
			if r := d.cmd("rm", name); r.code != 0 {
				t.Errorf("docker rm: %s", r)
			}
			assertNoWarrenContainer(t, d.w, id)
		})
	})

	t.Run("StopTERM", func(t *testing.T) {
		d.w.dumpOnFailure(t)
		name := prefix + "-stop"
		_, r := mode.detached(t, d, name, `trap 'echo got-sigterm; exit 0' TERM; echo ready; while :; do sleep 0.1; done`)
		if r.code != 0 {
			t.Fatalf("starting a detached container: %s", r)
		}
		waitDockerLog(t, d, name, "ready")
		if r := d.cmd("stop", "--time", "20", name); r.code != 0 {
			t.Fatalf("docker stop: %s", r)
		}
		if code := d.inspect(t, name, "{{.State.ExitCode}}"); code != "0" {
			t.Errorf("want exit code 0 (the TERM trap ran), got %s", code)
		}
		waitDockerLog(t, d, name, "got-sigterm")
		if r := d.cmd("rm", name); r.code != 0 {
			t.Errorf("docker rm: %s", r)
		}
	})

	t.Run("RmForce", func(t *testing.T) {
		d.w.dumpOnFailure(t)
		name := prefix + "-rmf"
		mark := d.w.mark()
		id, r := mode.detached(t, d, name, `echo ready; while :; do sleep 0.1; done`)
		if r.code != 0 {
			t.Fatalf("starting a detached container: %s", r)
		}
		waitDockerLog(t, d, name, "ready")
		initPID := d.inspect(t, name, "{{.State.Pid}}")
		if r := d.cmd("rm", "--force", name); r.code != 0 {
			t.Fatalf("docker rm -f: %s", r)
		}
		if r := d.cmd("container", "inspect", name); r.code == 0 {
			t.Errorf("want the container gone after rm -f: %s", r)
		}
		assertProcessGone(t, initPID)
		assertVerbs(t, d.w, mark, "create", "start", "kill", "delete")
		assertNoWarrenContainer(t, d.w, id)
		if dirs := cgroupDirs(d.cgroupParent + "/" + id); len(dirs) > 0 {
			t.Errorf("container cgroups left after rm -f: %v", dirs)
		}
	})
}

// shimSockets returns where containerd-shim-runc-v2 (containerd 1.6) puts
// the socket of each container the test's dockerd ran: /run/containerd/s/
// named by the sha256 of "<containerd address>/<namespace>/<id>". A shim
// removes it when it exits cleanly; one killed in cleanup leaves it.
func (d *docker) shimSockets() []string {
	addr := filepath.Join(d.dir, "exec", "containerd", "containerd.sock")
	var socks []string
	seen := map[string]bool{}
	for _, c := range d.w.callsSince(0) {
		if callVerb(c.argv) != "create" {
			continue
		}
		// The container id is the last argument.
		i := strings.LastIndex(strings.TrimSuffix(c.argv, "'"), "'")
		if i < 0 {
			continue
		}
		id := strings.TrimSuffix(c.argv[i+1:], "'")
		if seen[id] {
			continue
		}
		seen[id] = true
		sum := sha256.Sum256([]byte(addr + "/moby/" + id))
		socks = append(socks, "/run/containerd/s/"+hex.EncodeToString(sum[:]))
	}
	return socks
}

func (d *docker) inspect(t *testing.T, name, format string) string {
	t.Helper()
	r := d.cmd("container", "inspect", "--format", format, name)
	if r.code != 0 {
		t.Fatalf("docker inspect: %s", r)
	}
	return strings.TrimSpace(r.stdout)
}

func waitDockerLog(t *testing.T, d *docker, name, want string) {
	t.Helper()
	var last result
	if !pollUntil(20*time.Second, func() bool {
		last = d.cmd("logs", name)
		return strings.Contains(last.stdout, want)
	}) {
		t.Fatalf("container %s never printed %q: %s", name, want, last)
	}
}

// hostNetworkState is what the tests must leave alone: the interfaces and
// IPv4 forwarding.
func hostNetworkState() string {
	ents, _ := os.ReadDir("/sys/class/net")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return fmt.Sprintf("interfaces=%v ip_forward=%s", names, strings.TrimSpace(string(fwd)))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
