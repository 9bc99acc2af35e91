package engine

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A daemon killed with SIGKILL while containers run: they keep running
// under their monitors; the next daemon lists them as running, execs into
// them, sees their exits, and stops and removes them.
func TestDaemonKilledWhileRunning(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		d.ctlOK("run", "-d", "--name", "a", "busybox", "sh", "-c", "echo a-up; sleep 600")
		d.ctlOK("run", "-d", "-i", "--name", "b", "busybox", "sh", "-c", "read x; echo b-got $x; exit 9")
		d.ctlOK("run", "-d", "--name", "c", "busybox", "sleep", "600")
		pidA := inspect(t, d, "a").State.Pid
		d.kill9()
		// While no daemon runs: b ends (its monitor records it), a and c
		// keep running.
		if err := syscallKill(inspectPid(t, d, "b"), 9); err != nil {
			t.Fatal(err)
		}
		d.start()
		waitFor(t, func() bool { return inspect(t, d, "b").State.Status == "exited" }, "b recorded as exited")
		if c := inspect(t, d, "b"); c.State.ExitCode != 137 {
			t.Errorf("b: exit code %d, want 137 (SIGKILL)", c.State.ExitCode)
		}
		a := inspect(t, d, "a")
		if a.State.Status != "running" || a.State.Pid != pidA {
			t.Errorf("a after restart: %+v (pid was %d)", a.State, pidA)
		}
		if out := d.ctlOK("exec", "a", "cat", "/proc/1/cmdline"); !strings.Contains(out, "sleep") {
			t.Errorf("exec into a recovered container: %q", out)
		}
		if logs := d.ctlOK("logs", "a"); logs != "a-up\n" {
			t.Errorf("logs of a: %q", logs)
		}
		ps := d.ctlOK("ps", "-q")
		if len(strings.Fields(ps)) != 2 {
			t.Errorf("ps after recovery lists %q, want a and c", ps)
		}
		// Watching again: an exit after the restart is seen.
		d.ctlOK("kill", "c")
		waitFor(t, func() bool { return inspect(t, d, "c").State.Status == "exited" }, "c recorded as exited")
		d.ctlOK("stop", "-t", "1", "a")
		for _, n := range []string{"a", "b", "c"} {
			d.ctlOK("rm", n)
		}
		noTraces(t, d)
	})
}

func inspectPid(t *testing.T, d *daemon, name string) int {
	// The daemon is down: read the pid the monitor wrote.
	b, err := os.ReadFile(filepath.Join(d.root, "containers", d.idOf(name), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// A daemon killed at each step of `run`: create recorded, rootfs mounted,
// monitor spawned (runtime container created, not started), started but
// not recorded. The restarted daemon leaves no trace of the undone ones
// and records the last as running.
func TestDaemonKilledMidRun(t *testing.T) {
	for _, rt := range []string{"warren", "runc", "crun"} {
		for _, point := range []string{"create:recorded", "create:mounted", "start:spawned", "start:started"} {
			t.Run(rt+"/"+strings.ReplaceAll(point, ":", "-"), func(t *testing.T) {
				if _, ok := runtimes(t, t.TempDir())[rt]; !ok {
					t.Skipf("%s is not installed", rt)
				}
				killedMidRun(t, newDaemon(t, rt, "WARREND_CRASH_AT="+point), point)
			})
		}
	}
}

func killedMidRun(t *testing.T, d *daemon, point string) {
	r := d.ctl("run", "-d", "--name", "half", "busybox", "sleep", "600")
	if r.code == 0 {
		t.Fatalf("run succeeded past the crash point: %s", r.stdout)
	}
	<-d.exited
	d.env = nil
	d.start()
	switch point {
	case "create:recorded", "create:mounted":
		// The client saw a failure: nothing remains.
		if out := d.ctlOK("ps", "-a", "-q"); out != "" {
			t.Errorf("an interrupted create left %q", out)
		}
		noTraces(t, d)
		return
	case "start:spawned":
		c := inspect(t, d, "half")
		if c.State.Status != "exited" || c.State.Error == "" {
			t.Errorf("an interrupted start: %+v", c.State)
		}
		if len(monitors(t, d)) != 0 || len(mountsUnder(t, d.root, false)) != 0 {
			t.Errorf("an interrupted start left monitors %v or mounts %v", monitors(t, d), mountsUnder(t, d.root, false))
		}
	case "start:started":
		c := inspect(t, d, "half")
		if c.State.Status != "running" {
			t.Errorf("a started container recorded as %+v", c.State)
		}
		d.ctlOK("exec", "half", "true")
	}
	d.ctlOK("rm", "-f", "half")
	noTraces(t, d)
}

func TestRestartPolicies(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		d.ctlOK("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo try; exit 3")
		waitFor(t, func() bool {
			c := inspect(t, d, "flaky")
			return c.State.Status == "exited" && c.State.RestartCount == 2
		}, "two restarts")
		time.Sleep(1 * time.Second)
		c := inspect(t, d, "flaky")
		if c.State.RestartCount != 2 || c.State.Status != "exited" || c.State.ExitCode != 3 {
			t.Errorf("on-failure:2 ended with %+v", c.State)
		}
		if n := strings.Count(d.ctlOK("logs", "flaky"), "try"); n != 3 {
			t.Errorf("%d runs logged, want 3", n)
		}
		// on-failure does not restart a success.
		d.ctlOK("run", "-d", "--name", "ok", "--restart", "on-failure", "busybox", "true")
		waitFor(t, func() bool { return inspect(t, d, "ok").State.Status == "exited" }, "ok exits")
		time.Sleep(500 * time.Millisecond)
		if c := inspect(t, d, "ok"); c.State.RestartCount != 0 {
			t.Errorf("on-failure restarted a success: %+v", c.State)
		}
		// always restarts a success; a stop ends that, even across a daemon
		// restart for unless-stopped.
		d.ctlOK("run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2")
		d.ctlOK("run", "-d", "--name", "unless", "--restart", "unless-stopped", "busybox", "sleep", "600")
		waitFor(t, func() bool { return inspect(t, d, "always").State.RestartCount >= 2 }, "always restarting")
		d.ctlOK("stop", "always", "unless")
		time.Sleep(500 * time.Millisecond)
		n := inspect(t, d, "always").State.RestartCount
		time.Sleep(500 * time.Millisecond)
		if c := inspect(t, d, "always"); c.State.RestartCount != n || c.State.Status != "exited" {
			t.Errorf("always kept restarting after stop: %+v", c.State)
		}
		d.stop()
		d.start()
		waitFor(t, func() bool { return inspect(t, d, "always").State.Status == "running" }, "always restarted by the new daemon")
		time.Sleep(300 * time.Millisecond)
		if c := inspect(t, d, "unless"); c.State.Status != "exited" {
			t.Errorf("unless-stopped came back after a daemon restart: %+v", c.State)
		}
		for _, n := range []string{"flaky", "ok", "always", "unless"} {
			d.ctlOK("rm", "-f", n)
		}
		noTraces(t, d)
	})
}

func TestUsernsAuto(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		out := d.ctlOK("run", "--rm", "--userns", "auto", "busybox", "sh", "-c",
			"cat /proc/self/uid_map; id -u; stat -c %u /bin/busybox /home/app; touch /new && echo wrote; readlink /proc/self/ns/user")
		f := strings.Fields(out)
		if len(f) < 8 || f[0] != "0" || f[2] != "65536" || f[1] == "0" {
			t.Fatalf("--userns auto:\n%s", out)
		}
		if f[3] != "0" || f[4] != "0" || f[5] != "1000" || f[6] != "wrote" {
			t.Errorf("in the container: root, the image's owners (0, 1000) and a writable root expected:\n%s", out)
		}
		if f[7] == hostNs(t, "user") {
			t.Error("the user namespace is the host's")
		}
		// Two containers get different ranges; none is left after.
		a := strings.TrimSpace(d.ctlOK("run", "-d", "--userns", "auto", "busybox", "sleep", "60"))
		b := strings.TrimSpace(d.ctlOK("run", "-d", "--userns", "auto", "busybox", "sleep", "60"))
		ma, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", inspect(t, d, a).State.Pid))
		mb, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", inspect(t, d, b).State.Pid))
		if len(ma) == 0 || string(ma) == string(mb) {
			t.Errorf("two containers share the range %q", ma)
		}
		// exec joins the container's user namespace, and its network
		// namespace, which the engine made (owned by the initial user
		// namespace): warren and crun join that one first; runc 1.1
		// joins the user namespace first and then may not join it.
		if rt := inspect(t, d, a).Runtime; rt != "runc" {
			if out := d.ctlOK("exec", a, "cat", "/proc/self/uid_map"); out != string(ma) {
				t.Errorf("exec sees uid_map %q, the init %q", out, ma)
			}
		} else if r := d.ctl("exec", a, "true"); r.code == 0 {
			t.Log("runc now joins an engine-made network namespace of a --userns auto container: drop the exception")
		}
		d.ctlOK("rm", "-f", a, b)
		noTraces(t, d)
	})
}

// The API on TCP takes only clients with a certificate from the CA.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCert(t, dir, "ca", nil, nil)
	makeCert(t, dir, "server", ca, caKey)
	makeCert(t, dir, "client", ca, caKey)
	other, otherKey := makeCert(t, dir, "otherca", nil, nil)
	makeCert(t, dir, "stranger", other, otherKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	d := newDaemon(t, "warren")
	d.stop()
	d.extra = append(d.extra, "--tls-listen", addr, "--tls-cert", filepath.Join(dir, "server.pem"),
		"--tls-key", filepath.Join(dir, "server-key.pem"), "--tls-ca", filepath.Join(dir, "ca.pem"))
	d.start()
	// The TCP listener is in the daemon's network namespace.
	tcp := func(name string, args ...string) result {
		cmd := d.inNet(append([]string{bins.warrenctl, "--host", "tcp://" + addr, "--tls-cert", filepath.Join(dir, name+".pem"),
			"--tls-key", filepath.Join(dir, name+"-key.pem"), "--tls-ca", filepath.Join(dir, "ca.pem")}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		r := result{stdout: out.String(), stderr: errb.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		return r
	}
	waitFor(t, func() bool { return tcp("client", "version").code == 0 }, "TLS listener")
	if r := tcp("client", "run", "--rm", "busybox", "echo", "over tls"); r.code != 0 || r.stdout != "over tls\n" {
		t.Errorf("run over TLS: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := tcp("stranger", "version"); r.code == 0 || strings.Contains(r.stdout, "warrend:") {
		t.Errorf("a client of another CA was served: %q", r.stdout)
	}
}

func makeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}
