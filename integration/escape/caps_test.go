//go:build linux

package escape

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CVE-2022-29162 (runc) and CVE-2022-24769 (moby): `exec --cap` (and the
// default process) put the requested capabilities in the inheritable set
// too. A non-root process that then executes a file whose file
// capabilities list them as inheritable gains them in its permitted and
// effective sets, although it was never meant to hold them across execve.
// warren's exec adds --cap to bounding, effective and permitted only; the
// inheritable and ambient sets come from process.capabilities (empty by
// default): init_linux.go setUserAndCaps, linux.SetCaps.
//
// And: process.noNewPrivileges must stop a setuid-root binary in the rootfs
// from raising a non-root user to root.

// setFileCaps sets security.capability (VFS_CAP_REVISION_2, effective bit
// set) on path with the given permitted and inheritable masks.
func setFileCaps(t *testing.T, path string, permitted, inheritable uint64) {
	t.Helper()
	buf := make([]byte, 20)
	binary.LittleEndian.PutUint32(buf[0:], 0x02000000|0x1) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	binary.LittleEndian.PutUint32(buf[4:], uint32(permitted))
	binary.LittleEndian.PutUint32(buf[8:], uint32(inheritable))
	binary.LittleEndian.PutUint32(buf[12:], uint32(permitted>>32))
	binary.LittleEndian.PutUint32(buf[16:], uint32(inheritable>>32))
	if err := unix.Setxattr(path, "security.capability", buf, 0); err != nil {
		t.Skipf("cannot set file capabilities on %s (%v): the file-capability half of this test needs them", path, err)
	}
}

func TestEscapeExecCapNotInheritable(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	// /capinh: file inheritable = every capability, permitted none; it
	// gains exactly (process inheritable & file inheritable).
	capinh := filepath.Join(b.rootfs, "capinh")
	copyFile(t, testinitBin, capinh, 0o755)
	setFileCaps(t, capinh, 0, 1<<41-1)
	// /capprm (control): file permitted = CAP_DAC_OVERRIDE, to show that
	// file capabilities are honoured on this rootfs.
	capprm := filepath.Join(b.rootfs, "capprm")
	copyFile(t, testinitBin, capprm, 0o755)
	setFileCaps(t, capprm, capBit(unix.CAP_DAC_OVERRIDE), 0)
	c := startSleeper(t, b)

	execReport := func(flags []string, args ...string) report {
		t.Helper()
		r := c.exec(runOpts{}, flags, args...)
		if !r.ok() {
			t.Fatalf("exec failed:\n%s", r)
		}
		var rep report
		lastJSON(t, r.stdout, &rep)
		return rep
	}

	// 1. exec --cap as root: added to bounding/effective/permitted, never
	// inheritable or ambient.
	rep := execReport([]string{"--cap", "CAP_SYS_ADMIN", "--cap", "CAP_NET_RAW"}, "/testinit", "report")
	want := capBit(unix.CAP_SYS_ADMIN) | capBit(unix.CAP_NET_RAW)
	for _, set := range []string{"CapBnd", "CapEff", "CapPrm"} {
		if got := parseCapMask(t, rep.Caps[set]); got&want != want {
			t.Errorf("exec --cap: %s %s lacks the added capabilities", set, rep.Caps[set])
		}
	}
	if rep.Caps["CapInh"] != "0000000000000000" || rep.Caps["CapAmb"] != "0000000000000000" {
		t.Errorf("ESCAPE (CVE-2022-29162): exec --cap left CapInh %s, CapAmb %s; want both empty", rep.Caps["CapInh"], rep.Caps["CapAmb"])
	}

	// 2. the same through --process without an inheritable list.
	proc := specs.Process{
		Args: []string{"/testinit", "report"}, Cwd: "/", Env: []string{"PATH=/bin"},
		Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{"CAP_SYS_ADMIN"}, Effective: []string{"CAP_SYS_ADMIN"}, Permitted: []string{"CAP_SYS_ADMIN"},
		},
	}
	pj := filepath.Join(b.tempDir("proc"), "process.json")
	data, _ := json.Marshal(proc)
	if err := os.WriteFile(pj, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rep = execReport([]string{"--process", pj})
	if rep.Caps["CapInh"] != "0000000000000000" || rep.Caps["CapAmb"] != "0000000000000000" {
		t.Errorf("ESCAPE (CVE-2022-29162): exec --process left CapInh %s, CapAmb %s", rep.Caps["CapInh"], rep.Caps["CapAmb"])
	}

	// 3. control: as uid 1000, a file-permitted capability is granted.
	asUser := []string{"--user", "1000:1000", "--cap", "CAP_DAC_OVERRIDE"}
	ctl := execReport(asUser, "/capprm", "report")
	if parseCapMask(t, ctl.Caps["CapPrm"])&capBit(unix.CAP_DAC_OVERRIDE) == 0 {
		t.Skipf("file capabilities are not honoured on this rootfs (control /capprm got CapPrm %s); cannot test the inheritable path", ctl.Caps["CapPrm"])
	}
	// 4. as uid 1000 with --cap CAP_DAC_OVERRIDE, exec /capinh: with an
	// empty inheritable set nothing is gained. A runtime that put the
	// --cap capability in the inheritable set gives the program
	// CAP_DAC_OVERRIDE (process inheritable & file inheritable).
	got := execReport(asUser, "/capinh", "report")
	if parseCapMask(t, got.Caps["CapPrm"]) != 0 || parseCapMask(t, got.Caps["CapEff"]) != 0 {
		t.Errorf("ESCAPE (CVE-2022-29162): a uid-1000 process gained capabilities from a file's inheritable set after exec --cap: CapPrm %s CapEff %s (CapInh before exec must be empty)", got.Caps["CapPrm"], got.Caps["CapEff"])
	}
	if got.EUID != 1000 {
		t.Errorf("exec --user 1000: euid %d", got.EUID)
	}
}

// A setuid-root copy of testinit in the rootfs, run by uid 1000: with
// noNewPrivileges it stays uid 1000; a runtime that does not set
// PR_SET_NO_NEW_PRIVS (or sets it after the execve) lets it become euid 0.
// (testinit rather than busybox: busybox drops setuid privileges itself for
// most applets, which would hide the runtime's behaviour.) The control run
// without noNewPrivileges shows that setuid is honoured on this rootfs.
func TestEscapeSetuidWithNoNewPrivs(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T, nnp bool) *bundle {
		b := newBundle(t)
		suid := filepath.Join(b.rootfs, "suidinit")
		copyFile(t, testinitBin, suid, 0o755)
		if err := os.Chown(suid, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(suid, 0o4755); err != nil { // raw mode: os.Chmod ignores 0o4000
			t.Fatal(err)
		}
		b.spec.Process.User = specs.User{UID: 1000, GID: 1000}
		b.spec.Process.NoNewPrivileges = nnp
		return b
	}
	runReport := func(t *testing.T, b *bundle) report {
		b.setArgs("/suidinit", "report")
		r := b.run(runOpts{})
		if !r.ok() {
			t.Fatalf("run failed:\n%s", r)
		}
		var rep report
		lastJSON(t, r.stdout, &rep)
		return rep
	}
	ctl := runReport(t, setup(t, false))
	if ctl.EUID != 0 {
		t.Skipf("setuid binaries are not honoured on this rootfs (control euid %d); cannot test no_new_privs", ctl.EUID)
	}
	rep := runReport(t, setup(t, true))
	if rep.EUID != 1000 || rep.UID != 1000 || rep.NoNewPrivs != 1 {
		t.Errorf("ESCAPE (no_new_privs): a setuid-root binary run by uid 1000 with noNewPrivileges got uid %d euid %d (NoNewPrivs %d)", rep.UID, rep.EUID, rep.NoNewPrivs)
	}

	// exec: --no-new-privs on a container without noNewPrivileges, and
	// the container's own noNewPrivileges inherited by exec.
	for _, tc := range []struct {
		nnp   bool
		flags []string
	}{{false, []string{"--no-new-privs"}}, {true, nil}} {
		b := setup(t, tc.nnp)
		c := startSleeper(t, b)
		r := c.exec(runOpts{}, append([]string{"--user", "1000:1000"}, tc.flags...), "/suidinit", "report")
		if !r.ok() {
			t.Fatalf("exec failed:\n%s", r)
		}
		var er report
		lastJSON(t, r.stdout, &er)
		if er.EUID != 1000 {
			t.Errorf("ESCAPE (no_new_privs, exec %v, container noNewPrivileges %v): the setuid-root binary ran with euid %d", tc.flags, tc.nnp, er.EUID)
		}
	}
}
