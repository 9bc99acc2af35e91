//go:build linux

package engines

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var criTools = append(append([]string{}, containerdTools...), "crictl", "cni", "nsenter")

type podStatus struct {
	Status struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		Network struct {
			IP string `json:"ip"`
		} `json:"network"`
	} `json:"status"`
	Info struct {
		Pid int `json:"pid"`
	} `json:"info"`
}

type containerStatus struct {
	Status struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		ExitCode int    `json:"exitCode"`
		Reason   string `json:"reason"`
	} `json:"status"`
	Info struct {
		Pid int `json:"pid"`
	} `json:"info"`
}

func (e *engineEnv) inspectPod(t *testing.T, id string) podStatus {
	t.Helper()
	var ps podStatus
	out := ok(t, e.crictl(t, "inspectp", "-o", "json", id), "crictl inspectp")
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("crictl inspectp output: %v\n%s", err, out)
	}
	return ps
}

func (e *engineEnv) inspectContainer(t *testing.T, id string) containerStatus {
	t.Helper()
	var cs containerStatus
	out := ok(t, e.crictl(t, "inspect", "-o", "json", id), "crictl inspect")
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("crictl inspect output: %v\n%s", err, out)
	}
	return cs
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCRIPodLifecycle is the Kubernetes path: crictl drives containerd's
// CRI plugin, whose runtime handler runs warren (through the runc v2 shim).
// A pod sandbox (the pause image) with a CNI bridge address, an app
// container that joins the sandbox's network, IPC and UTS namespaces by
// path, exec (sync, streamed, and with a terminal), logs, stop with the
// container's exit status, and removal of everything.
func TestCRIPodLifecycle(t *testing.T) {
	need(t, criTools...)
	e := getEnv(t)
	e.traceCalls(t)
	if r := e.crictl(t, "info"); r.code != 0 || !strings.Contains(r.stdout, `"RuntimeReady"`) {
		t.Fatalf("containerd's CRI plugin does not answer (did it load? see containerd's log): %s\n%s", r, tail(e.cdLog, 20))
	}

	name := "pod-" + randHex(3)
	logDir := filepath.Join(e.dir, "pods", name)
	podCfg := writeJSON(t, filepath.Join(e.dir, name+".json"), map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "warren-e2e", "uid": randHex(8), "attempt": 0},
		"hostname":      "warren-pod",
		"log_directory": logDir,
		"linux": map[string]any{
			"cgroup_parent": e.cgroupParent,
			// As kubelet does without shareProcessNamespace: every
			// container gets its own PID namespace (1 = CONTAINER).
			"security_context": map[string]any{"namespace_options": map[string]any{"pid": 1}},
		},
	})
	ctrCfg := writeJSON(t, filepath.Join(e.dir, name+"-app.json"), map[string]any{
		"metadata": map[string]any{"name": "app"},
		"image":    map[string]any{"image": busyboxImage},
		"command": []string{"/bin/sh", "-c",
			`trap 'echo "app got TERM"; exit 43' TERM; echo "hello from a CRI container"; echo "app stderr line" >&2; while :; do sleep 1 & wait $!; done`},
		"log_path": "app.log",
		// kubelet's default: the container's own PID namespace.
		"linux": map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"pid": 1}}},
	})
	// A sidecar as with shareProcessNamespace: it joins the sandbox's PID
	// namespace (0 = POD), so the pause process is its PID 1.
	sideCfg := writeJSON(t, filepath.Join(e.dir, name+"-side.json"), map[string]any{
		"metadata": map[string]any{"name": "sidecar"},
		"image":    map[string]any{"image": busyboxImage},
		"command":  []string{"/bin/sh", "-c", "echo sidecar up; exec sleep 2000"},
		"log_path": "sidecar.log",
		"linux":    map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"pid": 0}}},
	})

	podID := strings.TrimSpace(ok(t, e.crictl(t, "runp", podCfg), "crictl runp"))
	podGone := false
	t.Cleanup(func() {
		if !podGone {
			e.crictl(t, "rmp", "--force", podID)
		}
	})
	pod := e.inspectPod(t, podID)
	if pod.Status.State != "SANDBOX_READY" {
		t.Fatalf("pod %s is %s, want SANDBOX_READY", podID, pod.Status.State)
	}
	if !strings.HasPrefix(pod.Status.Network.IP, strings.TrimSuffix(e.cniSubnet, "0/24")) {
		t.Errorf("pod IP %q is not from the CNI bridge's subnet %s", pod.Status.Network.IP, e.cniSubnet)
	}
	if pod.Info.Pid <= 0 {
		t.Fatalf("crictl inspectp reports no sandbox pid")
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pod.Info.Pid)); err != nil || !strings.Contains(string(b), "sleep") {
		t.Errorf("the sandbox's pid %d is not the pause image's sleep: %q (%v)", pod.Info.Pid, b, err)
	}

	cid := strings.TrimSpace(ok(t, e.crictl(t, "create", podID, ctrCfg, podCfg), "crictl create"))
	if cs := e.inspectContainer(t, cid); cs.Status.State != "CONTAINER_CREATED" {
		t.Errorf("container %s is %s after create, want CONTAINER_CREATED", cid, cs.Status.State)
	}
	ok(t, e.crictl(t, "start", cid), "crictl start")
	if cs := e.inspectContainer(t, cid); cs.Status.State != "CONTAINER_RUNNING" {
		t.Fatalf("container %s is %s after start, want CONTAINER_RUNNING", cid, cs.Status.State)
	}
	sideID := strings.TrimSpace(ok(t, e.crictl(t, "create", podID, sideCfg, podCfg), "crictl create (sidecar)"))
	ok(t, e.crictl(t, "start", sideID), "crictl start (sidecar)")
	if ids := warrenList(t, e.warrenRootCRI()); len(ids) != 3 {
		t.Errorf("warren --root %s list: want the sandbox, the app and the sidecar, got %v", e.warrenRootCRI(), ids)
	}

	// logs: containerd's CRI writes the container's stdout and stderr in
	// the CRI log format; crictl logs splits them again.
	waitFor(t, "the container's output in crictl logs", func() (bool, string) {
		r := e.crictl(t, "logs", cid)
		return strings.Contains(r.stdout, "hello from a CRI container") && strings.Contains(r.stderr, "app stderr line"), r.String()
	})

	t.Run("exec-sync", func(t *testing.T) {
		r := e.crictl(t, "exec", "-s", cid, "sh", "-c", `echo "exec-sync output"; echo "host=$(hostname)"
for n in ipc net uts; do echo "pod-ns $n $(readlink /proc/self/ns/$n)"; done
ip -4 addr show eth0
`+nsCheckScript)
		if r.code != 0 {
			t.Fatalf("crictl exec -s: %s", r)
		}
		t.Logf("exec output:\n%s", r.stdout)
		if !strings.Contains(r.stdout, "exec-sync output") {
			t.Errorf("crictl exec -s did not return the process's output:\n%s", r)
		}
		checkJoined(t, r.stdout)
		if !strings.Contains(r.stdout, "host=warren-pod") {
			t.Errorf("the container does not have the pod's hostname warren-pod:\n%s", r.stdout)
		}
		if pod.Status.Network.IP != "" && !strings.Contains(r.stdout, "inet "+pod.Status.Network.IP+"/") {
			t.Errorf("eth0 in the container does not have the pod IP %s:\n%s", pod.Status.Network.IP, r.stdout)
		}
		// The app container joined the sandbox's namespaces by path.
		for _, n := range []string{"ipc", "net", "uts"} {
			want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pod.Info.Pid, n))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.stdout, "pod-ns "+n+" "+want+"\n") {
				t.Errorf("the container is not in the sandbox's %s namespace %s:\n%s", n, want, r.stdout)
			}
		}
		// ... but not its PID namespace (namespace_options.pid CONTAINER).
		if want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pod.Info.Pid)); strings.Contains(r.stdout, want) {
			t.Errorf("the container shares the sandbox's PID namespace %s", want)
		}

		// A non-zero status: crictl 1.34 reports it as an error naming it.
		r = e.crictl(t, "exec", "-s", cid, "sh", "-c", "echo failing >&2; exit 3")
		if r.code == 0 || !strings.Contains(r.stderr, "exited with 3") {
			t.Errorf("crictl exec -s of `exit 3`: want an error naming status 3, got %s", r)
		}
	})

	t.Run("shared-pid-namespace", func(t *testing.T) {
		r := e.crictl(t, "exec", "-s", sideID, "sh", "-c", `echo "pid1=$(tr '\0' ' ' </proc/1/cmdline)"; readlink /proc/self/ns/pid`)
		if r.code != 0 {
			t.Fatalf("crictl exec -s (sidecar): %s", r)
		}
		if !strings.Contains(r.stdout, "pid1=/bin/busybox sleep 2147483647") {
			t.Errorf("the sidecar's PID 1 is not the sandbox's pause process:\n%s", r.stdout)
		}
		if want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pod.Info.Pid)); !strings.Contains(r.stdout, want) {
			t.Errorf("the sidecar is not in the sandbox's PID namespace %s:\n%s", want, r.stdout)
		}
	})

	t.Run("exec-stream", func(t *testing.T) {
		// Without -s crictl streams through containerd's streaming server,
		// which listens on 127.0.0.1 inside containerd's network namespace.
		r := run(t, "piped to the container\n", mustTool("nsenter"), e.crictlNetnsArgs("exec", "-i", cid, "sh", "-c", "echo streamed-output; cat")...)
		if r.code != 0 {
			t.Fatalf("crictl exec -i: %s", r)
		}
		if !strings.Contains(r.stdout, "streamed-output") || !strings.Contains(r.stdout, "piped to the container") {
			t.Errorf("crictl exec -i: stdout lacks the process's output or its echoed stdin:\n%s", r)
		}
	})

	t.Run("exec-tty", func(t *testing.T) {
		p := startPTY(t, 30, 90, mustTool("nsenter"), e.crictlNetnsArgs("exec", "-it", cid, "sh")...)
		p.waitOutput(t, "# ", 30*time.Second)
		p.write(t, "tty; stty size; echo typed-$((6*7)); exit 5\n")
		code := p.wait(t, cmdTimeout)
		out := p.output()
		if !strings.Contains(out, "typed-42") {
			t.Errorf("the shell did not run what was typed on the terminal:\n%q", out)
		}
		if !regexp.MustCompile(`/dev/pts/\d+`).MatchString(out) {
			t.Errorf("`tty` in the exec'd shell did not name a pts:\n%q", out)
		}
		// crictl reports a streamed exec's non-zero status as an error.
		if code == 0 || !strings.Contains(out, "exit code 5") {
			t.Errorf("crictl exec -it: want a failure naming exit code 5, got status %d", code)
		}
	})

	t.Run("update", func(t *testing.T) {
		// UpdateContainerResources: the shim runs `update --resources -`.
		ok(t, e.crictl(t, "update", "--memory", "67108864", "--cpu-share", "512", cid), "crictl update")
		for file, want := range map[string]string{"memory/memory.limit_in_bytes": "67108864", "cpu/cpu.shares": "512"} {
			p := filepath.Join("/sys/fs/cgroup", filepath.Dir(file), e.cgroupParent, cid, filepath.Base(file))
			if _, err := os.Stat(filepath.Dir(p)); err != nil {
				continue // not this host's layout (cgroup v2): seen from inside below
			}
			if b, err := os.ReadFile(p); err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("%s = %q (%v) after crictl update, want %s", p, b, err, want)
			}
		}
		// And from inside: the container's own cgroup, as mounted for it.
		r := e.crictl(t, "exec", "-s", cid, "sh", "-c",
			"cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "67108864" {
			t.Errorf("inside the container the memory limit is not 67108864 after crictl update: %s", r)
		}
	})

	// stop: SIGTERM, which the app traps (exit 43), within the timeout.
	start := time.Now()
	ok(t, e.crictl(t, "stop", "--timeout", "10", cid), "crictl stop")
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("crictl stop took %v: the container did not act on SIGTERM and was killed at the timeout", d)
	}
	cs := e.inspectContainer(t, cid)
	if cs.Status.State != "CONTAINER_EXITED" || cs.Status.ExitCode != 43 {
		t.Errorf("after stop: container is %s with exit code %d (%s), want CONTAINER_EXITED with 43", cs.Status.State, cs.Status.ExitCode, cs.Status.Reason)
	}
	if r := e.crictl(t, "logs", cid); !strings.Contains(r.stdout, "app got TERM") {
		t.Errorf("crictl logs lacks the container's reaction to SIGTERM:\n%s", r)
	}

	ok(t, e.crictl(t, "rm", cid), "crictl rm")
	if out := ok(t, e.crictl(t, "ps", "-a", "-q", "--pod", podID), "crictl ps"); strings.TrimSpace(out) != sideID {
		t.Errorf("crictl ps -a after rm: want only the sidecar %s, got %q", sideID, out)
	}
	if ids := warrenList(t, e.warrenRootCRI()); len(ids) != 2 {
		t.Errorf("warren list after crictl rm: want the sandbox and the sidecar, got %v", ids)
	}

	// stopp stops (SIGKILL) the sidecar, which is still running, and the
	// sandbox; rmp removes both.
	ok(t, e.crictl(t, "stopp", podID), "crictl stopp")
	if ps := e.inspectPod(t, podID); ps.Status.State != "SANDBOX_NOTREADY" {
		t.Errorf("after stopp the pod is %s, want SANDBOX_NOTREADY", ps.Status.State)
	}
	if cs := e.inspectContainer(t, sideID); cs.Status.State != "CONTAINER_EXITED" {
		t.Errorf("after stopp the sidecar is %s, want CONTAINER_EXITED", cs.Status.State)
	}
	ok(t, e.crictl(t, "rmp", podID), "crictl rmp")
	podGone = true
	if out := ok(t, e.crictl(t, "pods", "-q"), "crictl pods"); strings.Contains(out, podID) {
		t.Errorf("crictl pods still lists %s after rmp", podID)
	}
	if ids := warrenList(t, e.warrenRootCRI()); len(ids) != 0 {
		t.Errorf("warren list after crictl rmp: %v, want none", ids)
	}
	// Nothing of the pod is left: no cgroup below the pod's parent, no
	// network namespace or /dev/shm mount.
	for _, mnt := range cgroupMounts() {
		sub, _ := filepath.Glob(filepath.Join(mnt, strings.TrimPrefix(e.cgroupParent, "/"), "*", "cgroup.procs"))
		if len(sub) > 0 {
			t.Errorf("cgroups left under %s: %v", filepath.Join(mnt, e.cgroupParent), sub)
		}
	}
	for _, mp := range mountsUnder(e.dir) {
		if strings.Contains(mp, podID) || strings.Contains(mp, "/netns/") {
			t.Errorf("mount %s left after rmp", mp)
		}
	}
}

// TestCRICreateError: a container whose program is missing fails `crictl
// create` with warren's message (read by the shim from the --log file), and
// the pod stays usable.
func TestCRICreateError(t *testing.T) {
	need(t, criTools...)
	e := getEnv(t)
	e.traceCalls(t)
	name := "podfail-" + randHex(3)
	podCfg := writeJSON(t, filepath.Join(e.dir, name+".json"), map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "warren-e2e", "uid": randHex(8), "attempt": 0},
		"log_directory": filepath.Join(e.dir, "pods", name),
		"linux":         map[string]any{"cgroup_parent": e.cgroupParent},
	})
	ctrCfg := writeJSON(t, filepath.Join(e.dir, name+"-bad.json"), map[string]any{
		"metadata": map[string]any{"name": "bad"},
		"image":    map[string]any{"image": busyboxImage},
		"command":  []string{"/bin/no-such-program"},
		"log_path": "bad.log",
		"linux":    map[string]any{},
	})
	podID := strings.TrimSpace(ok(t, e.crictl(t, "runp", podCfg), "crictl runp"))
	defer e.crictl(t, "rmp", "--force", podID)
	// containerd 1.6 creates the runtime container at CRI start, so either
	// step may be the one that fails.
	r := e.crictl(t, "create", podID, ctrCfg, podCfg)
	if r.code == 0 {
		cid := strings.TrimSpace(r.stdout)
		r = e.crictl(t, "start", cid)
	}
	if r.code == 0 {
		t.Fatalf("creating and starting a container whose program does not exist succeeded")
	}
	if !strings.Contains(r.stderr, "no-such-program") {
		t.Errorf("crictl's error does not carry warren's message naming the program:\n%s", r)
	}
	ok(t, e.crictl(t, "stopp", podID), "crictl stopp")
	ok(t, e.crictl(t, "rmp", podID), "crictl rmp")
}
