package runtime

import (
	"encoding/binary"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestUseTail(t *testing.T) {
	notify := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}
	errno := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}}
	for _, tc := range []struct {
		p    specs.Process
		sc   *specs.LinuxSeccomp
		want bool
	}{
		{specs.Process{}, nil, true},
		{specs.Process{}, errno, true},
		{specs.Process{Terminal: true}, nil, false},
		{specs.Process{}, notify, false},
	} {
		if got := useTail(&tc.p, tc.sc); got != tc.want {
			t.Errorf("useTail(terminal %v, seccomp %v) = %v", tc.p.Terminal, tc.sc != nil, got)
		}
	}
}

func TestTailPlan(t *testing.T) {
	p := &specs.Process{
		Args: []string{"/bin/true"}, Env: []string{"PATH=/bin"}, Cwd: "/tmp",
		User:            specs.User{UID: 7, GID: 8, AdditionalGids: []uint32{9}},
		Capabilities:    &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}},
		Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 2}},
		NoNewPrivileges: true,
	}
	b, err := tailPlan(p, nil, 5, 40, tailInit{})
	if err != nil {
		t.Fatal(err)
	}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
	// flags: no_new_privs, and no HOME in env; close_from; no fifo, no
	// keyring; default umask; ids.
	if u32(0) != tailNNP|tailHome || u32(4) != 5 || u32(8) != 0 || u32(12) != 0 || u32(16) != 0o022 || u32(20) != 7 || u32(24) != 8 || u32(28) != 1 || u32(32) != 9 {
		t.Errorf("plan header %v", b[:36])
	}
	if binary.LittleEndian.Uint64(b[36:]) != 1<<5 { // bounding: CAP_KILL
		t.Errorf("bounding set %#x", binary.LittleEndian.Uint64(b[36:]))
	}
	ci, err := tailPlan(p, nil, 5, 40, tailInit{Setsid: true, FifoFd: 6, Keyring: "_ses.x"})
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint32(ci) != tailNNP|tailHome|tailSetsid || binary.LittleEndian.Uint32(ci[8:]) != 6 || string(ci[16:22]) != "_ses.x" {
		t.Errorf("init plan header %q", ci[:24])
	}
	if !strings.HasSuffix(string(b), "\x01\x00\x00\x00\x09\x00\x00\x00PATH=/bin") {
		t.Errorf("plan does not end with the env: %q", b[len(b)-20:])
	}

	for _, tc := range []struct {
		mod  func(p *specs.Process)
		want string
	}{
		{func(p *specs.Process) { p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOPE"}} }, "process.rlimits[0].type"},
		{func(p *specs.Process) { p.Args = []string{"a", "b\x00c"} }, "process.args[1]"},
		{func(p *specs.Process) { p.Env = []string{"X=\x00"} }, "process.env[0]"},
		{func(p *specs.Process) { p.Cwd = "/\x00" }, "process.cwd"},
	} {
		q := *p
		tc.mod(&q)
		if _, err := tailPlan(&q, nil, 3, 40, tailInit{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %s, got %v", tc.want, err)
		}
	}
	bad := &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
	if _, err := tailPlan(p, bad, 3, 40, tailInit{}); err == nil || !strings.Contains(err.Error(), "linux.seccomp") {
		t.Errorf("bad seccomp profile: %v", err)
	}
}
