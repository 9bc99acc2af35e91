// Package engine tests warrend and warrenctl end to end, as root: a real
// daemon on a private root, a busybox image built here, containers run
// through each OCI runtime (warren, runc, crun), observed from inside
// (namespaces, cgroup files, uid maps) and from the host afterwards (no
// mounts, cgroups, runtime state or monitors left).
package engine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/warren-runtime/warren/api/client"
)

var bins struct{ warren, warrenctl, warrend, monitor string }

const busybox = "/bin/busybox"

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: engine tests must run as root (containers, overlay mounts, cgroups)")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := os.Stat(busybox); err != nil {
		fmt.Fprintf(os.Stderr, "%s is required (apt-get install busybox-static)\n", busybox)
		return 1
	}
	dir, err := os.MkdirTemp("", "warrend-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, b := range []struct {
		dst *string
		env string
		pkg string
	}{
		{&bins.warren, "WARREN_BINARY", "cmd/warren"},
		{&bins.warrenctl, "WARRENCTL_BINARY", "cmd/warrenctl"},
		{&bins.warrend, "WARREND_BINARY", "cmd/warrend"},
		{&bins.monitor, "WARREN_MONITOR_BINARY", "cmd/warren-monitor"},
	} {
		if *b.dst = os.Getenv(b.env); *b.dst != "" {
			continue
		}
		*b.dst = filepath.Join(dir, filepath.Base(b.pkg))
		out, err := exec.Command("go", "build", "-o", *b.dst, "github.com/warren-runtime/warren/"+b.pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s (or set %s): %v\n%s", b.pkg, b.env, err, out)
			return 1
		}
	}
	return m.Run()
}

// busyboxLayout writes an OCI layout of a one-layer busybox image with
// an unprivileged user and a stop signal of its own.
func busyboxLayout(t testing.TB, dir string) string {
	t.Helper()
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = time.Unix(1_600_000_000, 0)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/", "root/", "home/app/", "data/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		h := &tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode}
		if d == "home/app/" {
			h.Uid, h.Gid = 1000, 1000
		}
		add(h, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bb)
	for _, a := range []string{"sh", "ls", "cat", "echo", "sleep", "id", "readlink", "hostname", "ps", "touch", "stty", "true", "false", "grep", "wc", "head", "mkdir", "trap", "env", "pwd", "stat", "httpd", "wget", "ping", "ping6", "ip", "nc", "kill"} {
		add(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	}
	add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"))
	add(&tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:\napp:x:1000:\n"))
	add(&tar.Header{Name: "data/seed", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("from the image\n"))
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Env = []string{"PATH=/bin", "IMAGE_VAR=1"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "busybox-layout")
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "busybox"})); err != nil {
		t.Fatal(err)
	}
	return out
}

var _ v1.Image

// daemon is one warrend on a private root.
type daemon struct {
	t       testing.TB
	root    string
	sock    string
	runtime string
	extra   []string
	env     []string
	cmd     *exec.Cmd
	netns   string   // the daemon's network namespace, pinned
	aux     string   // outside root: the daemon's netns pin and its --netns-dir
	podIDs  []string // pods made through ctl (their cgroups are checked)
	logs    *bytes.Buffer
	exited  chan struct{}
}

// runtimes lists the runtimes to test: warren always; runc and crun when
// installed (crun through a wrapper giving it the private mount namespace
// it needs on this hybrid cgroup host).
func runtimes(t testing.TB, dir string) map[string]string {
	rts := map[string]string{"warren": bins.warren}
	if p, err := exec.LookPath("runc"); err == nil {
		rts["runc"] = p
	}
	if p, err := exec.LookPath("crun"); err == nil {
		wrapper := filepath.Join(dir, "crun-wrapper")
		script := "#!/bin/sh\nexec unshare -m sh -c 'if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified && mount -t tmpfs none /sys/fs/cgroup/unified; fi; exec " + p + " \"$@\"' crun \"$@\"\n"
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		rts["crun"] = wrapper
	}
	return rts
}

// newDaemon starts warrend with runtime as the default on a new root
// holding the busybox image.
func newDaemon(t testing.TB, runtime string, env ...string) *daemon {
	t.Helper()
	root, err := os.MkdirTemp("", "warrend-")
	if err != nil {
		t.Fatal(err)
	}
	aux, err := os.MkdirTemp("", "warrend-net-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, root: root, aux: aux, sock: filepath.Join(root, "api.sock"), runtime: runtime, env: env}
	rts := runtimes(t, root)
	for n, p := range rts {
		d.extra = append(d.extra, "--runtime", n+"="+p)
	}
	// The image first, with the store directly (as warrenctl image does
	// before any daemon runs).
	ctlRoot(t, root, "image", "import", "--name", "busybox", busyboxLayout(t, root))
	d.start()
	t.Cleanup(func() { d.cleanup() })
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	d.logs = new(bytes.Buffer)
	args := append([]string{"--root", d.root, "--run-root", filepath.Join(d.root, "run"), "--socket", d.sock,
		"--monitor", bins.monitor, "--default-runtime", d.runtime, "--log-level", "debug",
		"--netns-dir", d.netnsDir()}, d.extra...)
	// The daemon lives in a network namespace of its own (unshare execs
	// it: same pid): the bridges, veths and nftables rules it makes never
	// touch the host's network. That namespace is the "host" side of
	// its containers.
	if d.netns == "" {
		d.cmd = exec.Command("unshare", append([]string{"--net", "--", bins.warrend}, args...)...)
	} else {
		d.cmd = exec.Command("nsenter", append([]string{"--net=" + d.netns, "--", bins.warrend}, args...)...)
	}
	d.cmd.Env = append(os.Environ(), d.env...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.exited) }()
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			if d.netns == "" {
				// Pinned, so a restarted daemon comes back to the same
				// network namespace (its bridges and rules are there).
				d.netns = filepath.Join(d.aux, "daemon-netns")
				os.WriteFile(d.netns, nil, 0o600)
				if err := syscall.Mount(fmt.Sprintf("/proc/%d/ns/net", d.cmd.Process.Pid), d.netns, "", syscall.MS_BIND, ""); err != nil {
					d.t.Fatalf("pinning the daemon's network namespace: %v", err)
				}
				if out, err := d.inNet("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
					d.t.Fatalf("lo up in the daemon's namespace: %v: %s", err, out)
				}
			}
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("warrend exited at start:\n%s", d.logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
	d.t.Fatalf("warrend did not listen on %s:\n%s", d.sock, d.logs)
}

// kill9 kills the daemon (only it: its monitors live in their own
// sessions).
func (d *daemon) kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.kill9()
	}
}

func (d *daemon) cleanup() {
	// Remove every container through the daemon, then check the host.
	if d.cmd != nil {
		select {
		case <-d.exited:
		default:
			out := d.ctlOK("ps", "-a", "-q")
			for _, id := range strings.Fields(out) {
				d.ctl("rm", "-f", id)
			}
			var pods []struct{ ID string }
			json.Unmarshal([]byte(d.ctl("pod", "ls", "--format", "json").stdout), &pods)
			for _, p := range pods {
				d.ctl("pod", "rm", "-f", p.ID)
			}
			var nets []struct{ Name string }
			json.Unmarshal([]byte(d.ctl("network", "ls", "--format", "json").stdout), &nets)
			for _, n := range nets {
				d.ctl("network", "rm", n.Name)
			}
			d.stop()
		}
	}
	if d.t.Failed() {
		d.t.Logf("warrend log:\n%s", d.logs)
	}
	mountsUnder(d.t, d.root, true)
	os.RemoveAll(d.root)
	// The network side: pinned outside the root (iproute2 makes its
	// directory a mount point).
	if ents, _ := os.ReadDir(d.netnsDir()); len(ents) > 0 {
		d.t.Errorf("network namespaces left: %v", ents)
	}
	mountsUnder(d.t, d.netnsDir(), false)
	for _, m := range append(mountsUnder(d.t, d.netnsDir(), false), d.netnsDir(), d.netns) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	os.RemoveAll(d.aux)
}

func (d *daemon) client() *client.Client {
	c, err := client.New("unix://"+d.sock, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

type result struct {
	code           int
	stdout, stderr string
}

func ctlRoot(t testing.TB, root string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bins.warrenctl, append([]string{"--root", root}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("warrenctl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (d *daemon) ctlIn(stdin io.Reader, args ...string) result {
	d.t.Helper()
	cmd := exec.Command(bins.warrenctl, append([]string{"--host", "unix://" + d.sock}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return r
}

func (d *daemon) ctl(args ...string) result {
	d.t.Helper()
	r := d.ctlIn(nil, args...)
	if len(args) > 1 && args[0] == "pod" && args[1] == "create" && r.code == 0 {
		d.podIDs = append(d.podIDs, strings.TrimSpace(r.stdout))
	}
	return r
}

func (d *daemon) ctlOK(args ...string) string {
	d.t.Helper()
	r := d.ctl(args...)
	if r.code != 0 {
		d.t.Fatalf("warrenctl %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// mountsUnder lists the mounts below dir; with fail, any is an error.
func mountsUnder(t testing.TB, dir string, fail bool) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			found = append(found, f[4])
		}
	}
	if fail && len(found) > 0 {
		t.Errorf("mounts left under %s: %v", dir, found)
		for _, m := range found {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	return found
}

var _ = context.Background

// idOf finds a container's id from the records directory while no
// daemon runs: the directory whose config.json names it.
func (d *daemon) idOf(name string) string {
	d.t.Helper()
	ents, _ := os.ReadDir(filepath.Join(d.root, "containers"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(d.root, "containers", e.Name(), "config.json"))
		if bytes.Contains(b, []byte(`"org.warren.container.name": "`+name+`"`)) {
			return e.Name()
		}
	}
	d.t.Fatalf("no container directory for %s", name)
	return ""
}

func syscallKill(pid, sig int) error { return syscall.Kill(pid, syscall.Signal(sig)) }

func (d *daemon) netnsDir() string { return filepath.Join(d.aux, "netns") }

// inNet runs a command in the daemon's network namespace (the "host"
// side of its containers).
func (d *daemon) inNet(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + d.netns, "--"}, args...)...)
}

// netnsOf is the inode link of the daemon's network namespace.
func (d *daemon) netnsLink() string {
	l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", d.cmd.Process.Pid))
	return l
}
