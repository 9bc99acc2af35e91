//go:build linux

package engines

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	busyboxPath = "/bin/busybox"
	// Hang guard for one engine command (not a timing assertion).
	cmdTimeout = 90 * time.Second
	// Deadline for polled state changes.
	pollDeadline = 30 * time.Second
)

var (
	warrenBin string // absolute path of the warren binary under test
	pkgDir    string // this package's directory (go test runs tests there)

	// required: WARREN_ENGINES_REQUIRED is set, so a missing tool fails
	// the test instead of skipping it.
	required bool

	envOnce sync.Once
	envErr  error
	theEnv  *engineEnv
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: warren engine tests must run as root (containerd and the CRI plugin create namespaces, cgroups and mounts); skipping all")
		os.Exit(0)
	}
	p := os.Getenv("WARREN_BINARY")
	if p == "" {
		fmt.Fprintln(os.Stderr, "engines: WARREN_BINARY is not set: build warren with `make warren` and run with WARREN_BINARY=$PWD/bin/warren")
		os.Exit(1)
	}
	var err error
	if warrenBin, err = filepath.Abs(p); err == nil {
		var st os.FileInfo
		if st, err = os.Stat(warrenBin); err == nil && (st.IsDir() || st.Mode()&0o111 == 0) {
			err = errors.New("not an executable file")
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "engines: WARREN_BINARY=%s: %v\n", p, err)
		os.Exit(1)
	}
	required = os.Getenv("WARREN_ENGINES_REQUIRED") != ""
	if pkgDir, err = os.Getwd(); err != nil {
		fmt.Fprintln(os.Stderr, "engines:", err)
		os.Exit(1)
	}
	code := m.Run()
	if theEnv != nil {
		if problems := theEnv.teardown(); len(problems) > 0 {
			fmt.Fprintln(os.Stderr, "engines: cleanup left things behind:")
			for _, p := range problems {
				fmt.Fprintln(os.Stderr, "  -", p)
			}
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// tools

// findTool resolves a tool the tests need; special names: "crictl" (also
// $CRICTL and _build/engines/bin), "cni" (the plugins directory holding
// bridge, host-local and loopback), "busybox" (must be static: it is copied
// into the images).
func findTool(name string) (string, error) {
	switch name {
	case "crictl":
		if p := os.Getenv("CRICTL"); p != "" {
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("CRICTL=%s: %w", p, err)
			}
			return p, nil
		}
		if p, err := exec.LookPath("crictl"); err == nil {
			return p, nil
		}
		p := filepath.Join(pkgDir, "..", "..", "_build", "engines", "bin", "crictl")
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p), nil
		}
		return "", errors.New("crictl not found in $CRICTL, $PATH or _build/engines/bin (scripts/engines/install.sh installs it)")
	case "cni":
		for _, d := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
			ok := true
			for _, p := range []string{"bridge", "host-local", "loopback"} {
				if _, err := os.Stat(filepath.Join(d, p)); err != nil {
					ok = false
				}
			}
			if ok {
				return d, nil
			}
		}
		return "", errors.New("CNI plugins bridge, host-local and loopback not found in /usr/lib/cni or /opt/cni/bin (apt-get install containernetworking-plugins)")
	case "busybox":
		out, err := exec.Command("file", "-L", busyboxPath).Output()
		if err != nil {
			if _, serr := os.Stat(busyboxPath); serr != nil {
				return "", fmt.Errorf("%s: %w (apt-get install busybox-static)", busyboxPath, serr)
			}
			return busyboxPath, nil // no file(1): trust it
		}
		if !bytes.Contains(out, []byte("statically linked")) && !bytes.Contains(out, []byte("static-pie")) {
			return "", fmt.Errorf("%s is not statically linked (apt-get install busybox-static)", busyboxPath)
		}
		return busyboxPath, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in $PATH", name)
	}
	return p, nil
}

// need skips the test (or, with WARREN_ENGINES_REQUIRED, fails it) when a
// tool is missing.
func need(t *testing.T, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := findTool(n); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "missing tools (run scripts/engines/install.sh): " + strings.Join(missing, "; ")
	if required {
		t.Fatal(msg + " [WARREN_ENGINES_REQUIRED is set]")
	}
	t.Skip("SKIP: " + msg + " (set WARREN_ENGINES_REQUIRED=1 to fail instead)")
}

func mustTool(name string) string {
	p, err := findTool(name)
	if err != nil {
		panic(err)
	}
	return p
}

// ---------------------------------------------------------------------------
// the shared containerd

type engineEnv struct {
	dir   string // private temporary root of everything below
	sock  string // containerd's gRPC socket
	ctrNS string // containerd namespace of the ctr tests
	// ctrRoot, criRoot: the runtime roots given to the shim (ctr
	// --runc-root, the CRI handler's options.Root); the shim passes warren
	// --root <root>/<containerd namespace>.
	ctrRoot  string
	criRoot  string
	fifoDir  string // ctr --fifo-dir
	wrapper  string // the script engines call instead of warren
	calls    string // the wrapper's log of command lines
	keptLogs string // copies of the --log files warren was asked to write
	cdLog    string // containerd's stdout+stderr
	imageTar string

	// cgroupParent: CRI pods' cgroup_parent (cgroupfs driver); ctr puts
	// its containers under /<ctrNS>/<id>.
	cgroupParent string
	cniSubnet    string

	crictlConfig string
	cmd          *exec.Cmd // containerd (after `unshare --net` and busybox sh exec'd it)
	done         chan struct{}

	// host paths containerd or CNI write despite the private config, and
	// whether each existed before the run.
	hostPaths map[string]bool
}

// hostPathsWritten are the host paths containerd 1.6, its runc v2 shim and
// the CNI library use whatever the config says (shim sockets in
// /run/containerd/s, the CNI result cache in /var/lib/cni) plus the
// defaults the private config moves elsewhere, watched in case it does not.
var hostPathsWritten = []string{
	"/run/containerd", "/run/containerd/s", "/run/containerd/fifo", "/run/containerd/runc",
	"/var/lib/containerd", "/var/lib/cni", "/var/run/netns", "/opt/containerd", "/etc/cni",
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// getEnv starts the shared containerd on first use. Tests that call it have
// already checked the tools with need().
func getEnv(t *testing.T) *engineEnv {
	t.Helper()
	envOnce.Do(func() {
		theEnv = &engineEnv{}
		envErr = theEnv.setup()
	})
	if envErr != nil {
		t.Fatalf("starting containerd: %v", envErr)
	}
	return theEnv
}

func (e *engineEnv) setup() error {
	e.hostPaths = map[string]bool{}
	for _, p := range hostPathsWritten {
		_, err := os.Lstat(p)
		e.hostPaths[p] = err == nil
	}
	dir, err := os.MkdirTemp("", "warren-engines-")
	if err != nil {
		return err
	}
	e.dir = dir
	suffix := randHex(4)
	e.sock = filepath.Join(dir, "containerd.sock")
	e.ctrNS = "warren-e2e-" + suffix
	e.ctrRoot = filepath.Join(dir, "warren-ctr")
	e.criRoot = filepath.Join(dir, "warren-cri")
	e.fifoDir = filepath.Join(dir, "fifo")
	e.calls = filepath.Join(dir, "calls.log")
	e.keptLogs = filepath.Join(dir, "warren-logs")
	e.cdLog = filepath.Join(dir, "containerd.log")
	e.imageTar = filepath.Join(dir, "images.tar")
	e.cgroupParent = "/warren-e2e-pods-" + suffix
	// Only ever inside containerd's private network namespace.
	e.cniSubnet = "10.213.77.0/24"
	for _, d := range []string{e.ctrRoot, e.criRoot, e.fifoDir, e.keptLogs, filepath.Join(dir, "cni", "net.d"), filepath.Join(dir, "cni-ipam"), filepath.Join(dir, "pods")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := e.writeWrapper(); err != nil {
		return err
	}
	if err := e.writeConfigs(); err != nil {
		return err
	}
	if err := buildImageArchive(e.imageTar, busyboxPath, []imageSpec{
		{name: busyboxImage, cmd: []string{"sh"}},
		{name: pauseImage, entrypoint: []string{"/bin/busybox", "sleep", "2147483647"}},
	}); err != nil {
		return fmt.Errorf("building the busybox image: %w", err)
	}
	if err := e.startContainerd(); err != nil {
		return err
	}
	for _, ns := range []string{e.ctrNS, "k8s.io"} {
		out, err := e.ctrCmd(ns, "images", "import", e.imageTar).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr -n %s images import: %v\n%s", ns, err, out)
		}
	}
	return nil
}

// writeWrapper writes the script the engines run as their "runc": it
// appends the command line to calls.log, runs warren (not exec: it records
// the exit status and keeps a copy of the --log file afterwards, since the
// shim's log.json is removed with the bundle), and exits with warren's
// status. stdout/stderr are untouched: they are the container's stdio for
// create and exec.
func (e *engineEnv) writeWrapper() error {
	e.wrapper = filepath.Join(e.dir, "warren-wrapper")
	script := `#!/bin/sh
# Written by warren's integration/engines tests: records how an engine calls warren.
calls='` + e.calls + `'
keep='` + e.keptLogs + `'
{
	printf '%s [%s]' "$(date +%H:%M:%S.%N)" "$$"
	for a in "$@"; do
		case $a in
		''|*[!A-Za-z0-9_./:=@%+,-]*) printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")" ;;
		*) printf ' %s' "$a" ;;
		esac
	done
	echo
} >>"$calls"
logf= prev= stdin_json=
for a in "$@"; do
	case $prev in
	--log) logf=$a ;;
	# exec --process FILE: the engine removes FILE afterwards; keep a copy.
	--process|-p) cp "$a" "$keep/process-$$.json" 2>/dev/null ;;
	# update --resources -: the resources come on stdin; keep a copy.
	--resources|-r) [ "$a" = - ] && stdin_json=$keep/resources-$$.json ;;
	esac
	case $a in --log=*) logf=${a#--log=} ;; esac
	prev=$a
done
if [ -n "$stdin_json" ]; then
	cat >"$stdin_json"
	echo "$(date +%H:%M:%S.%N) [$$] stdin: $(cat "$stdin_json")" >>"$calls"
	'` + warrenBin + `' "$@" <"$stdin_json"
else
	'` + warrenBin + `' "$@"
fi
rc=$?
echo "$(date +%H:%M:%S.%N) [$$] exit $rc" >>"$calls"
if [ -n "$logf" ] && [ -s "$logf" ]; then
	cp "$logf" "$keep/$(printf '%s' "$logf" | tr / _)" 2>/dev/null
fi
exit $rc
`
	return os.WriteFile(e.wrapper, []byte(script), 0o755)
}

func (e *engineEnv) writeConfigs() error {
	// ctr tests run without the CNI plugins; only the CRI tests need them.
	cni, err := findTool("cni")
	if err != nil {
		cni = "/usr/lib/cni"
	}
	q := strconv.Quote
	cfg := `version = 2
root = ` + q(filepath.Join(e.dir, "root")) + `
state = ` + q(filepath.Join(e.dir, "state")) + `
oom_score = 0
# Plugins that cannot work here or would write outside the private dirs.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = ` + q(e.sock) + `

[ttrpc]
  address = ` + q(e.sock+".ttrpc") + `

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

# The legacy v1 runtime must stay loaded (the tasks service needs it) but is
# unused; its runc root is moved off /run/containerd all the same.
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = ` + q(filepath.Join(e.dir, "runtime-v1")) + `

[plugins."io.containerd.internal.v1.opt"]
  path = ` + q(filepath.Join(e.dir, "opt")) + `

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ` + q(pauseImage) + `
  # No AppArmor, SELinux or seccomp: warren rejects configs asking for them.
  disable_apparmor = true
  enable_selinux = false
  unset_seccomp_profile = ""
  systemd_cgroup = false
  # The sandbox asks for oomScoreAdj -998; lowering oom_score_adj needs
  # CAP_SYS_RESOURCE, which root lacks on this kind of machine (runc fails
  # the same way). Clamp to containerd's own value, as for rootless.
  restrict_oom_score_adj = true
  # Pod network namespaces under the private state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  disable_tcp_service = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "warren"
    disable_snapshot_annotations = true

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.warren]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.warren.options]
        BinaryName = ` + q(e.wrapper) + `
        Root = ` + q(e.criRoot) + `
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ` + q(cni) + `
    conf_dir = ` + q(filepath.Join(e.dir, "cni", "net.d")) + `
    max_conf_num = 1
`
	if err := os.WriteFile(filepath.Join(e.dir, "containerd.toml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	// A bridge without gateway or masquerading: no iptables rules and no
	// sysctl writes, and it lives in containerd's private netns anyway.
	conflist := `{
  "cniVersion": "0.4.0",
  "name": "warren-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "wrn-e2e0",
      "isGateway": false,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": ` + q(e.cniSubnet) + `}]],
        "dataDir": ` + q(filepath.Join(e.dir, "cni-ipam")) + `
      }
    }
  ]
}
`
	if err := os.WriteFile(filepath.Join(e.dir, "cni", "net.d", "10-warren-e2e.conflist"), []byte(conflist), 0o600); err != nil {
		return err
	}
	e.crictlConfig = filepath.Join(e.dir, "crictl.yaml")
	crictlCfg := "runtime-endpoint: unix://" + e.sock + "\nimage-endpoint: unix://" + e.sock + "\ntimeout: 30\ndebug: false\npull-image-on-create: false\n"
	return os.WriteFile(e.crictlConfig, []byte(crictlCfg), 0o600)
}

// startContainerd runs containerd in a new network namespace whose
// loopback is up (the CRI streaming server listens on 127.0.0.1 there):
// unshare --net, then busybox sh brings lo up and execs containerd, so the
// PID we hold is containerd's.
func (e *engineEnv) startContainerd() error {
	logf, err := os.OpenFile(e.cdLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(mustTool("unshare"), "--net", "--",
		busyboxPath, "sh", "-c", `"$0" ip link set lo up && exec "$@"`, busyboxPath,
		mustTool("containerd"), "--config", filepath.Join(e.dir, "containerd.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = e.dir
	// Its own process group: a ^C to the test does not reach it first, and
	// the teardown stops it by PID. Should the test binary die without a
	// teardown (go test -timeout), containerd gets SIGTERM (the death
	// signal survives unshare's and sh's execs).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting containerd: %w", err)
	}
	e.cmd = cmd
	e.done = make(chan struct{})
	go func() { cmd.Wait(); close(e.done) }()

	deadline := time.Now().Add(pollDeadline)
	for {
		select {
		case <-e.done:
			return fmt.Errorf("containerd exited during start-up: %v\n%s", cmd.ProcessState, tail(e.cdLog, 40))
		default:
		}
		if out, err := exec.Command(mustTool("ctr"), "--address", e.sock, "version").CombinedOutput(); err == nil && bytes.Contains(out, []byte("Server:")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not answer on %s within %v\n%s", e.sock, pollDeadline, tail(e.cdLog, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *engineEnv) ctrCmd(ns string, args ...string) *exec.Cmd {
	return exec.Command(mustTool("ctr"), append([]string{"--address", e.sock, "--namespace", ns}, args...)...)
}

// netnsPath is containerd's (private) network namespace.
func (e *engineEnv) netnsPath() string {
	return fmt.Sprintf("/proc/%d/ns/net", e.cmd.Process.Pid)
}

// ---------------------------------------------------------------------------
// running commands

type result struct {
	stdout, stderr string
	code           int // exit status; -1 if killed or not started
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("exit %d (%v)\nstdout:\n%s\nstderr:\n%s", r.code, r.err, r.stdout, r.stderr)
}

func run(t *testing.T, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String(), code: -1, err: err}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v: %w", cmdTimeout, err)
	}
	t.Logf("$ %s %s -> exit %d", filepath.Base(name), strings.Join(args, " "), r.code)
	return r
}

// ctr runs ctr against the shared containerd in the ctr tests' namespace.
func (e *engineEnv) ctr(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, "", mustTool("ctr"), append([]string{"--address", e.sock, "--namespace", e.ctrNS}, args...)...)
}

func (e *engineEnv) crictl(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, "", mustTool("crictl"), append([]string{"--config", e.crictlConfig}, args...)...)
}

// crictlNetns runs crictl inside containerd's network namespace: commands
// that stream (exec without -s, attach) connect to the CRI streaming server
// on 127.0.0.1 there.
func (e *engineEnv) crictlNetnsArgs(args ...string) []string {
	return append([]string{"--net=" + e.netnsPath(), "--", mustTool("crictl"), "--config", e.crictlConfig}, args...)
}

// ok fails the test unless the command exited 0.
func ok(t *testing.T, r result, what string) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s failed: %s", what, r)
	}
	return r.stdout
}

// ---------------------------------------------------------------------------
// diagnostics

// traceCalls logs, when the test ends, the warren command lines the engine
// ran during the test and, if it failed, warren's --log files and the tail
// of containerd's log.
func (e *engineEnv) traceCalls(t *testing.T) {
	t.Helper()
	var off int64
	if st, err := os.Stat(e.calls); err == nil {
		off = st.Size()
	}
	start := time.Now()
	t.Cleanup(func() {
		b, _ := os.ReadFile(e.calls)
		if int64(len(b)) >= off {
			b = b[off:]
		}
		t.Logf("warren calls made by the engine during this test:\n%s", b)
		if !t.Failed() {
			return
		}
		ents, _ := os.ReadDir(e.keptLogs)
		for _, ent := range ents {
			info, err := ent.Info()
			if err != nil || info.ModTime().Before(start) {
				continue
			}
			data, _ := os.ReadFile(filepath.Join(e.keptLogs, ent.Name()))
			t.Logf("warren --log file %s:\n%s", strings.ReplaceAll(ent.Name(), "_", "/"), lastLines(string(data), 30))
		}
		t.Logf("containerd log (tail):\n%s", tail(e.cdLog, 40))
	})
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// warrenRootCtr and warrenRootCRI are the --root the shim gives warren.
func (e *engineEnv) warrenRootCtr() string { return filepath.Join(e.ctrRoot, e.ctrNS) }
func (e *engineEnv) warrenRootCRI() string { return filepath.Join(e.criRoot, "k8s.io") }

// warrenList returns the container IDs warren has under root.
func warrenList(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command(warrenBin, "--root", root, "list", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("warren --root %s list -q: %v\n%s", root, err, out)
	}
	return strings.Fields(string(out))
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	last := ""
	for {
		done, info := cond()
		if done {
			return
		}
		last = info
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last: %s)", pollDeadline, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// teardown

// teardown removes everything the tests made and returns what it could not.
func (e *engineEnv) teardown() []string {
	var problems []string
	keep := os.Getenv("WARREN_ENGINES_KEEP") != ""
	if e.cmd != nil && e.cmd.Process != nil {
		e.removeWorkloads()
		// Stop containerd by PID: SIGTERM, then SIGKILL.
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.done
		}
	}
	// Shims outlive containerd by design; ours name our (unique) socket.
	if e.sock == "" {
		return problems // setup failed before anything was started
	}
	for _, pid := range pidsWithArg(e.sock) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		problems = append(problems, fmt.Sprintf("shim pid %d was still running after containerd stopped (killed)", pid))
	}
	// A shim killed that way leaves its socket in /run/containerd/s; each
	// bundle's "address" file names it.
	if e.dir != "" {
		addrs, _ := filepath.Glob(filepath.Join(e.dir, "state", "io.containerd.runtime.v2.task", "*", "*", "address"))
		if len(addrs) > 0 {
			time.Sleep(100 * time.Millisecond) // let killed shims die
		}
		for _, a := range addrs {
			b, err := os.ReadFile(a)
			sock := strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
			if err == nil && strings.HasPrefix(sock, "/run/containerd/s/") {
				_ = os.Remove(sock)
			}
		}
	}
	// Any container warren still has (a failed test) goes with its cgroup.
	var roots []string
	for _, r := range []string{e.ctrRoot, e.criRoot} {
		if r != "" {
			m, _ := filepath.Glob(filepath.Join(r, "*"))
			roots = append(roots, m...)
		}
	}
	for _, root := range roots {
		out, _ := exec.Command(warrenBin, "--root", root, "list", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			problems = append(problems, fmt.Sprintf("warren container %s was left under %s (deleted with --force)", id, root))
			_ = exec.Command(warrenBin, "--root", root, "delete", "--force", id).Run()
		}
	}
	if e.dir != "" {
		for _, mp := range mountsUnder(e.dir) {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				problems = append(problems, fmt.Sprintf("unmount %s: %v", mp, err))
			}
		}
	}
	for _, name := range []string{e.ctrNS, strings.TrimPrefix(e.cgroupParent, "/")} {
		if name == "" {
			continue
		}
		for _, mnt := range cgroupMounts() {
			p := filepath.Join(mnt, name)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if err := removeCgroupTree(p); err != nil {
				problems = append(problems, fmt.Sprintf("cgroup %s: %v", p, err))
			}
		}
	}
	e.cleanHostPaths()
	if e.dir != "" {
		if keep {
			fmt.Fprintf(os.Stderr, "engines: WARREN_ENGINES_KEEP is set: kept %s (calls.log, warren-logs/, containerd.log)\n", e.dir)
		} else if err := os.RemoveAll(e.dir); err != nil {
			problems = append(problems, fmt.Sprintf("removing %s: %v", e.dir, err))
		}
	}
	return problems
}

// removeWorkloads deletes, through the engines, whatever a failed test left.
func (e *engineEnv) removeWorkloads() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if p, err := findTool("crictl"); err == nil {
		_ = exec.CommandContext(ctx, p, "--config", e.crictlConfig, "rmp", "--all", "--force").Run()
	}
	ctr := mustTool("ctr")
	base := []string{"--address", e.sock, "--namespace", e.ctrNS}
	out, _ := exec.CommandContext(ctx, ctr, append(base, "tasks", "ls", "-q")...).Output()
	for _, id := range strings.Fields(string(out)) {
		_ = exec.CommandContext(ctx, ctr, append(base, "tasks", "delete", "--force", id)...).Run()
	}
	out, _ = exec.CommandContext(ctx, ctr, append(base, "containers", "ls", "-q")...).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.CommandContext(ctx, ctr, append(append(base, "containers", "rm"), ids...)...).Run()
	}
}

// pidsWithArg returns the processes having arg (non-empty) as one of their
// arguments.
func pidsWithArg(arg string) []int {
	var pids []int
	if arg == "" {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// mountsUnder returns the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	return mps
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

// cgroupMounts returns the mount points of every cgroup (v1 and v2)
// hierarchy.
func cgroupMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, " - ")
		if i < 0 {
			continue
		}
		post := strings.Fields(line[i+3:])
		pre := strings.Fields(line[:i])
		if len(post) > 0 && (post[0] == "cgroup" || post[0] == "cgroup2") && len(pre) >= 5 {
			mps = append(mps, unescapeMount(pre[4]))
		}
	}
	return mps
}

// removeCgroupTree rmdirs a cgroup and its descendants, deepest first.
func removeCgroupTree(root string) error {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var firstErr error
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) && firstErr == nil {
			procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			firstErr = fmt.Errorf("rmdir %s: %v (processes: %q)", d, err, strings.Fields(string(procs)))
		}
	}
	return firstErr
}

// cleanHostPaths removes the host paths the run created: empty directories
// only, except /var/lib/cni (CNI's result cache), removed whole when it did
// not exist before. Something another process put there meanwhile stays.
func (e *engineEnv) cleanHostPaths() {
	for i := len(hostPathsWritten) - 1; i >= 0; i-- {
		p := hostPathsWritten[i]
		if e.hostPaths[p] {
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if p == "/var/lib/cni" {
			_ = os.RemoveAll(p)
			continue
		}
		removeEmptyDirs(p)
		if _, err := os.Lstat(p); err == nil {
			fmt.Fprintf(os.Stderr, "engines: note: %s did not exist before the run and is not empty now; left in place\n", p)
		}
	}
}

func removeEmptyDirs(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		_ = os.Remove(d) // fails, harmlessly, when not empty
	}
}

// ---------------------------------------------------------------------------
// containerd events

// lockedBuffer is an io.Writer safe to read while a process writes to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventWatch is a running `ctr events`: containerd's /tasks/exit events
// carry the exit status the shim read for a process (ctr 1.6 has no
// `tasks wait` and its `tasks delete` does not report the status).
type eventWatch struct {
	out  *lockedBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

func (e *engineEnv) watchEvents(t *testing.T) *eventWatch {
	t.Helper()
	w := &eventWatch{out: &lockedBuffer{}, done: make(chan struct{})}
	w.cmd = exec.Command(mustTool("ctr"), "--address", e.sock, "events")
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("ctr events: %v", err)
	}
	go func() { w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		<-w.done
	})
	// ctr subscribes asynchronously: give it a moment so that no event
	// caused right after this is missed.
	time.Sleep(300 * time.Millisecond)
	return w
}

// waitExit returns the exit status of process processID (the container ID
// for its init) of container containerID, from its /tasks/exit event.
func (w *eventWatch) waitExit(t *testing.T, containerID, processID string) int {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for {
		for _, line := range strings.Split(w.out.String(), "\n") {
			i := strings.Index(line, "{")
			if !strings.Contains(line, "/tasks/exit") || i < 0 {
				continue
			}
			var ev struct {
				ContainerID string `json:"container_id"`
				ID          string `json:"id"`
				ExitStatus  int    `json:"exit_status"`
			}
			if json.Unmarshal([]byte(line[i:]), &ev) == nil && ev.ContainerID == containerID && ev.ID == processID {
				return ev.ExitStatus
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /tasks/exit event for %s/%s within %v; ctr events printed:\n%s", containerID, processID, pollDeadline, w.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
