//go:build linux

package cgroups

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

func devNum(v int64) *int64 { return &v }

func devRuleOf(allow bool, typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
	return specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
}

// devQuery is one device access the kernel may ask the filter about.
type devQuery struct {
	typ          byte // 'c' or 'b'
	major, minor uint32
	access       string // subset of "rwm"
}

func (q devQuery) String() string {
	return fmt.Sprintf("%c %d:%d %s", q.typ, q.major, q.minor, q.access)
}

func (q devQuery) ctx() devCtx {
	typ := uint32(unix.BPF_DEVCG_DEV_CHAR)
	if q.typ == 'b' {
		typ = unix.BPF_DEVCG_DEV_BLOCK
	}
	var acc uint32
	for _, c := range q.access {
		switch c {
		case 'r':
			acc |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			acc |= unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			acc |= unix.BPF_DEVCG_ACC_MKNOD
		}
	}
	return devCtx{accessType: acc<<16 | typ, major: q.major, minor: q.minor}
}

func q(typ byte, major, minor uint32, access string) devQuery {
	return devQuery{typ: typ, major: major, minor: minor, access: access}
}

// runcDefaultRules is the list runc's and warren's default spec produce: deny
// everything, then allow the devices every container gets.
var runcDefaultRules = []specs.LinuxDeviceCgroup{
	devRuleOf(false, "", nil, nil, "rwm"),
	devRuleOf(true, "c", devNum(1), devNum(3), "rwm"),    // null
	devRuleOf(true, "c", devNum(1), devNum(5), "rwm"),    // zero
	devRuleOf(true, "c", devNum(1), devNum(7), "rwm"),    // full
	devRuleOf(true, "c", devNum(1), devNum(8), "rwm"),    // random
	devRuleOf(true, "c", devNum(1), devNum(9), "rwm"),    // urandom
	devRuleOf(true, "c", devNum(5), devNum(0), "rwm"),    // tty
	devRuleOf(true, "c", devNum(5), devNum(1), "rwm"),    // console
	devRuleOf(true, "c", devNum(5), devNum(2), "rwm"),    // ptmx
	devRuleOf(true, "c", devNum(136), nil, "rwm"),        // pts
	devRuleOf(true, "c", devNum(10), devNum(200), "rwm"), // tun
}

type filterCase struct {
	name  string
	rules []specs.LinuxDeviceCgroup
	allow []devQuery
	deny  []devQuery
}

var filterCases = []filterCase{
	{
		name:  "runc default list",
		rules: runcDefaultRules,
		allow: []devQuery{
			q('c', 1, 3, "r"), q('c', 1, 3, "w"), q('c', 1, 3, "rw"), q('c', 1, 3, "m"),
			q('c', 1, 5, "rw"), q('c', 1, 7, "w"), q('c', 1, 8, "r"), q('c', 1, 9, "r"),
			q('c', 5, 0, "rw"), q('c', 5, 1, "rw"), q('c', 5, 2, "rw"), q('c', 5, 2, "m"),
			q('c', 136, 0, "rw"), q('c', 136, 7, "r"), q('c', 136, 1048575, "w"),
			q('c', 10, 200, "rw"),
		},
		deny: []devQuery{
			q('b', 1, 3, "r"), q('b', 136, 0, "r"), q('b', 8, 0, "rw"), q('b', 8, 0, "m"),
			q('c', 1, 1, "r"), q('c', 1, 4, "rw"), q('c', 1, 2, "m"), q('c', 5, 3, "r"),
			q('c', 10, 229, "rw"), q('c', 10, 201, "r"), q('c', 137, 0, "r"), q('c', 0, 0, "r"),
			q('c', 4, 1, "w"), q('c', 3, 1, "r"),
		},
	},
	{
		name: "wildcard majors and minors",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(false, "a", nil, nil, "rwm"),
			devRuleOf(true, "c", nil, nil, "m"),                // docker: mknod any char device
			devRuleOf(true, "b", devNum(-1), devNum(-1), "m"),  // -1 is a wildcard too
			devRuleOf(true, "c", devNum(-1), devNum(42), "rw"), // any major, minor 42
			devRuleOf(true, "b", devNum(7), nil, "r"),          // loop devices, read only
		},
		allow: []devQuery{
			q('c', 1, 3, "m"), q('c', 999, 0, "m"), q('b', 8, 0, "m"),
			q('c', 1, 42, "rw"), q('c', 200, 42, "r"), q('c', 200, 42, "rwm"),
			q('b', 7, 0, "r"), q('b', 7, 255, "r"),
		},
		deny: []devQuery{
			q('c', 1, 3, "r"), q('c', 1, 3, "rm"), q('b', 8, 0, "r"), q('b', 42, 42, "rw"),
			q('c', 1, 43, "w"), q('b', 7, 0, "w"), q('b', 7, 0, "rw"), q('c', 7, 0, "r"),
		},
	},
	{
		name: "partial access",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(false, "a", nil, nil, "rwm"),
			devRuleOf(true, "c", devNum(1), devNum(3), "r"),
			devRuleOf(true, "c", devNum(1), devNum(5), "rm"),
			devRuleOf(true, "c", devNum(1), devNum(7), "w"),
			devRuleOf(true, "c", devNum(1), devNum(7), "r"), // r and w from two rules
		},
		allow: []devQuery{
			q('c', 1, 3, "r"), q('c', 1, 5, "r"), q('c', 1, 5, "m"), q('c', 1, 5, "rm"),
			q('c', 1, 7, "r"), q('c', 1, 7, "w"), q('c', 1, 7, "rw"),
		},
		deny: []devQuery{
			q('c', 1, 3, "w"), q('c', 1, 3, "rw"), q('c', 1, 3, "m"),
			q('c', 1, 5, "w"), q('c', 1, 5, "rw"), q('c', 1, 7, "m"), q('c', 1, 7, "rwm"),
		},
	},
	{
		name: "later deny overrides earlier allow",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(false, "", nil, nil, ""),
			devRuleOf(true, "c", devNum(1), nil, "rwm"),
			devRuleOf(false, "c", devNum(1), devNum(5), "rwm"),
			devRuleOf(false, "c", devNum(1), devNum(3), "w"), // partial deny: rw opens fail too
			devRuleOf(true, "c", devNum(1), devNum(9), "rwm"),
			devRuleOf(false, "c", nil, devNum(9), "m"), // wildcard deny after the allow
		},
		allow: []devQuery{
			q('c', 1, 3, "r"), q('c', 1, 3, "m"), q('c', 1, 7, "rw"), q('c', 1, 9, "rw"),
		},
		deny: []devQuery{
			q('c', 1, 5, "r"), q('c', 1, 5, "m"), q('c', 1, 3, "w"), q('c', 1, 3, "rw"),
			q('c', 1, 9, "m"), q('c', 1, 9, "rwm"), q('c', 2, 0, "r"), q('b', 1, 3, "r"),
		},
	},
	{
		name: "default allow with deny list",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(true, "a", nil, nil, "rwm"),
			devRuleOf(false, "b", nil, nil, "w"),
			devRuleOf(false, "c", devNum(10), devNum(229), "rwm"),
		},
		allow: []devQuery{
			q('b', 8, 0, "r"), q('b', 8, 0, "m"), q('c', 1, 3, "rw"), q('c', 10, 228, "rw"),
		},
		deny: []devQuery{
			q('b', 8, 0, "w"), q('b', 8, 0, "rw"), q('c', 10, 229, "r"), q('c', 10, 229, "m"),
		},
	},
	{
		name:  "empty list allows everything",
		rules: nil,
		allow: []devQuery{q('c', 1, 3, "rwm"), q('b', 8, 0, "rw"), q('c', math.MaxUint32, math.MaxUint32, "m")},
	},
	{
		name:  "deny all",
		rules: []specs.LinuxDeviceCgroup{devRuleOf(false, "a", nil, nil, "rwm")},
		deny:  []devQuery{q('c', 1, 3, "r"), q('b', 8, 0, "m"), q('c', 136, 0, "rw")},
	},
	{
		name: "trailing deny all makes earlier rules moot",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(true, "c", devNum(1), devNum(3), "rwm"),
			devRuleOf(false, "", nil, nil, ""),
		},
		deny: []devQuery{q('c', 1, 3, "r"), q('c', 1, 3, "m"), q('b', 1, 3, "r")},
	},
	{
		name: "trailing allow all",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(false, "a", nil, nil, "rwm"),
			devRuleOf(true, "a", devNum(-1), devNum(-1), "rwm"),
		},
		allow: []devQuery{q('c', 1, 3, "rw"), q('b', 8, 0, "m")},
	},
	{
		name: "type a with numbers and access",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(false, "a", nil, nil, "rwm"),
			devRuleOf(true, "a", devNum(1), nil, "r"),
			devRuleOf(true, "", devNum(2), devNum(2), "rwm"),
		},
		allow: []devQuery{q('c', 1, 3, "r"), q('b', 1, 0, "r"), q('c', 2, 2, "rw"), q('b', 2, 2, "m")},
		deny:  []devQuery{q('c', 1, 3, "w"), q('b', 1, 0, "m"), q('c', 2, 3, "r"), q('c', 3, 1, "r")},
	},
	{
		name: "majors and minors beyond int32",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(false, "a", nil, nil, "rwm"),
			devRuleOf(true, "c", devNum(math.MaxUint32), nil, "r"),
			devRuleOf(true, "c", devNum(math.MaxInt32+5), devNum(math.MaxInt32+1), "w"),
			devRuleOf(true, "b", devNum(math.MaxInt32), devNum(0), "r"),
		},
		allow: []devQuery{
			q('c', math.MaxUint32, 0, "r"), q('c', math.MaxInt32+5, math.MaxInt32+1, "w"),
			q('b', math.MaxInt32, 0, "r"),
		},
		deny: []devQuery{
			q('c', math.MaxUint32-1, 0, "r"), q('c', 1, 0, "r"), q('c', math.MaxInt32+5, 1, "w"),
			q('c', math.MaxInt32+5, math.MaxInt32, "w"), q('b', math.MaxInt32, 1, "r"),
		},
	},
	{
		name: "duplicate access letters",
		rules: []specs.LinuxDeviceCgroup{
			devRuleOf(false, "a", nil, nil, "rwm"),
			devRuleOf(true, "c", devNum(1), devNum(3), "rrw"),
		},
		allow: []devQuery{q('c', 1, 3, "rw")},
		deny:  []devQuery{q('c', 1, 3, "m")},
	},
}

func evalFilter(t *testing.T, prog []Insn, qr devQuery) bool {
	t.Helper()
	v, err := runDeviceFilter(prog, qr.ctx())
	if err != nil {
		t.Fatalf("%s: %v\n%s", qr, err, disasm(prog))
	}
	return v == 1
}

func TestDeviceFilterDecisions(t *testing.T) {
	for _, c := range filterCases {
		t.Run(c.name, func(t *testing.T) {
			prog, err := DeviceFilter(c.rules)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkCFG(prog); err != nil {
				t.Fatalf("%v\n%s", err, disasm(prog))
			}
			for _, qr := range c.allow {
				if !evalFilter(t, prog, qr) {
					t.Errorf("%s denied, want allowed", qr)
				}
				if !refDecision(c.rules, qr) {
					t.Errorf("%s: reference model denies, table says allow", qr)
				}
			}
			for _, qr := range c.deny {
				if evalFilter(t, prog, qr) {
					t.Errorf("%s allowed, want denied", qr)
				}
				if refDecision(c.rules, qr) {
					t.Errorf("%s: reference model allows, table says deny", qr)
				}
			}
			if t.Failed() {
				t.Logf("program:\n%s", disasm(prog))
			}
		})
	}
}

// refDecision is the documented semantics written the obvious way: for each
// requested bit the last matching rule naming it decides (default deny, or
// allow for an empty list); all bits must be allowed.
func refDecision(rules []specs.LinuxDeviceCgroup, qr devQuery) bool {
	if len(rules) == 0 {
		return true
	}
	num := func(p *int64, v uint32) bool { return p == nil || *p == -1 || *p == int64(v) }
	for _, bit := range qr.access {
		allowed := false
		for i := len(rules) - 1; i >= 0; i-- {
			r := rules[i]
			acc := r.Access
			if acc == "" {
				acc = "rwm"
			}
			typeOK := r.Type == "" || r.Type == "a" || r.Type[0] == qr.typ
			if typeOK && num(r.Major, qr.major) && num(r.Minor, qr.minor) && strings.ContainsRune(acc, bit) {
				allowed = r.Allow
				break
			}
		}
		if !allowed {
			return false
		}
	}
	return true
}

// randomRules draws rule lists from a small universe of values so that rules
// overlap often.
func randomRules(rng *rand.Rand) []specs.LinuxDeviceCgroup {
	types := []string{"", "a", "c", "b", "c", "b"}
	nums := []*int64{nil, devNum(-1), devNum(0), devNum(1), devNum(3), devNum(136), devNum(math.MaxInt32 + 1), devNum(math.MaxUint32)}
	accs := []string{"", "r", "w", "m", "rw", "rm", "wm", "rwm"}
	rules := make([]specs.LinuxDeviceCgroup, rng.Intn(8))
	for i := range rules {
		rules[i] = devRuleOf(rng.Intn(2) == 0, types[rng.Intn(len(types))], nums[rng.Intn(len(nums))], nums[rng.Intn(len(nums))], accs[rng.Intn(len(accs))])
	}
	return rules
}

func TestDeviceFilterMatchesReferenceModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	vals := []uint32{0, 1, 2, 3, 136, math.MaxInt32, math.MaxInt32 + 1, math.MaxUint32}
	accs := []string{"r", "w", "m", "rw", "rm", "wm", "rwm"}
	for n := 0; n < 3000; n++ {
		rules := randomRules(rng)
		prog, err := DeviceFilter(rules)
		if err != nil {
			t.Fatalf("%+v: %v", rules, err)
		}
		for _, typ := range []byte{'c', 'b'} {
			for k := 0; k < 20; k++ {
				qr := q(typ, vals[rng.Intn(len(vals))], vals[rng.Intn(len(vals))], accs[rng.Intn(len(accs))])
				if got, want := evalFilter(t, prog, qr), refDecision(rules, qr); got != want {
					t.Fatalf("rules %s: %s: filter says %v, reference says %v\n%s", fmtRules(rules), qr, got, want, disasm(prog))
				}
			}
		}
	}
}

func fmtRules(rules []specs.LinuxDeviceCgroup) string {
	var s []string
	for _, r := range rules {
		verdict := "deny"
		if r.Allow {
			verdict = "allow"
		}
		s = append(s, verdict+" "+DeviceRule(r)+" access="+r.Access)
	}
	return "[" + strings.Join(s, "; ") + "]"
}

func TestDeviceFilterShape(t *testing.T) {
	// An empty list needs no context reads: allow and return.
	prog, err := DeviceFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) != 2 || prog[0] != mov64Imm(bpfR0, 1) || prog[1] != exitInsn() {
		t.Fatalf("empty list program:\n%s", disasm(prog))
	}
	// The default list costs the 6-instruction prologue, at most 5
	// instructions per rule and a 1-instruction stop at the deny-all.
	prog, err = DeviceFilter(runcDefaultRules)
	if err != nil {
		t.Fatal(err)
	}
	if max := 6 + 5*(len(runcDefaultRules)-1) + 2; len(prog) > max {
		t.Errorf("default list program has %d instructions, want at most %d:\n%s", len(prog), max, disasm(prog))
	}
	// Rules before an unconditional one are not emitted (the verifier
	// rejects unreachable code), and nothing follows it.
	prog, err = DeviceFilter([]specs.LinuxDeviceCgroup{
		devRuleOf(true, "c", devNum(1), devNum(3), "rwm"),
		devRuleOf(false, "a", nil, nil, "rwm"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(prog); n != 8 || prog[n-2] != mov64Imm(bpfR0, 0) || prog[n-1] != exitInsn() {
		t.Fatalf("trailing deny-all program:\n%s", disasm(prog))
	}
}

func TestDeviceFilterInvalidRules(t *testing.T) {
	ok := devRuleOf(true, "c", devNum(1), devNum(3), "rwm")
	cases := []struct {
		rule specs.LinuxDeviceCgroup
		want string
	}{
		{devRuleOf(true, "c", nil, nil, "rwx"), `linux.resources.devices[2].access: invalid access "rwx"`},
		{devRuleOf(true, "c", nil, nil, "R"), `linux.resources.devices[2].access: invalid access "R"`},
		{devRuleOf(true, "u", nil, nil, "r"), `linux.resources.devices[2].type: invalid type "u"`},
		{devRuleOf(true, "char", nil, nil, "r"), `linux.resources.devices[2].type: invalid type "char"`},
		{devRuleOf(true, "c", devNum(-2), nil, "r"), `linux.resources.devices[2].major: invalid major -2`},
		{devRuleOf(true, "c", devNum(1), devNum(1<<32), "r"), `linux.resources.devices[2].minor: invalid minor 4294967296`},
	}
	for _, c := range cases {
		_, err := DeviceFilter([]specs.LinuxDeviceCgroup{ok, ok, c.rule})
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: got error %v, want prefix %q", c.rule, err, c.want)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%+v: error %v is not ErrInvalid", c.rule, err)
		}
	}
}

func TestSetDevicesV2ErrorsNameTheCgroup(t *testing.T) {
	dir := t.TempDir()
	missing := dir + "/missing"
	err := SetDevicesV2(missing, runcDefaultRules)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing dir: got %v", err)
	}
	// t.TempDir is on tmpfs or a disk filesystem, never cgroup2: refused
	// before any bpf call, so this needs no privileges.
	err = SetDevicesV2(dir, runcDefaultRules)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "not a cgroup v2 directory") {
		t.Errorf("non-cgroup dir: got %v", err)
	}
	err = SetDevicesV2(dir, []specs.LinuxDeviceCgroup{devRuleOf(true, "c", nil, nil, "rwx")})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), `linux.resources.devices[0].access: invalid access "rwx"`) {
		t.Errorf("invalid rule: got %v", err)
	}
}

// The bpf_attr layouts must match include/uapi/linux/bpf.h.
func TestBpfAttrLayout(t *testing.T) {
	var load bpfProgLoadAttr
	var att bpfAttachAttr
	var qry bpfQueryAttr
	var get bpfGetFdByIDAttr
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct bpf_insn)", unsafe.Sizeof(Insn{}), 8},
		{"load size", unsafe.Sizeof(load), bpfAttrSize},
		{"load.insns", unsafe.Offsetof(load.insns), 8},
		{"load.license", unsafe.Offsetof(load.license), 16},
		{"load.log_level", unsafe.Offsetof(load.logLevel), 24},
		{"load.log_buf", unsafe.Offsetof(load.logBuf), 32},
		{"load.prog_name", unsafe.Offsetof(load.progName), 48},
		{"load.expected_attach_type", unsafe.Offsetof(load.expectedAttachType), 68},
		{"attach size", unsafe.Sizeof(att), bpfAttrSize},
		{"attach.attach_type", unsafe.Offsetof(att.attachType), 8},
		{"attach.replace_bpf_fd", unsafe.Offsetof(att.replaceBpfFd), 16},
		{"query size", unsafe.Sizeof(qry), bpfAttrSize},
		{"query.prog_ids", unsafe.Offsetof(qry.progIDs), 16},
		{"query.prog_cnt", unsafe.Offsetof(qry.progCnt), 24},
		{"get_fd_by_id size", unsafe.Sizeof(get), bpfAttrSize},
		{"get_fd_by_id.open_flags", unsafe.Offsetof(get.openFlags), 8},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	in := newInsn(unix.BPF_JMP|unix.BPF_JNE|unix.BPF_X, 4, 1, 2, 0)
	if in.Dst() != 4 || in.Src() != 1 {
		t.Errorf("register nibbles: dst %d src %d, want 4 and 1", in.Dst(), in.Src())
	}
	if !hostBigEndian && in.Regs != 0x14 {
		t.Errorf("little-endian regs byte = %#x, want 0x14 (dst in the low nibble)", in.Regs)
	}
}
