package cgroups

// cgroup v2 has no devices.allow/devices.deny: device access is decided by
// eBPF programs of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup
// (attach type BPF_CGROUP_DEVICE, kernel >= 4.15). The kernel runs every
// program attached to the cgroup and its ancestors on each device open and
// mknod (devcgroup_check_permission) and the access is allowed only if all of
// them return 1. We build the program here from linux.resources.devices and
// encode the instructions ourselves: the handful we need does not justify a
// BPF library on the start-up path.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// Insn is one eBPF instruction, laid out as the kernel's struct bpf_insn
// (8 bytes: opcode, dst_reg:4 + src_reg:4, 16-bit offset, 32-bit immediate).
// Build it with newInsn so the register nibbles follow the host's bit-field
// order; read them back with Dst and Src.
type Insn struct {
	Code uint8
	Regs uint8
	Off  int16
	Imm  int32
}

// hostBigEndian selects the bit-field order of Insn.Regs: C compilers place
// dst_reg in the low nibble on little-endian hosts and in the high nibble on
// big-endian ones (include/uapi/linux/bpf.h).
var hostBigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

func newInsn(code, dst, src uint8, off int16, imm int32) Insn {
	regs := dst&0xf | src<<4
	if hostBigEndian {
		regs = dst<<4 | src&0xf
	}
	return Insn{Code: code, Regs: regs, Off: off, Imm: imm}
}

// Dst is the destination register of i.
func (i Insn) Dst() uint8 {
	if hostBigEndian {
		return i.Regs >> 4
	}
	return i.Regs & 0xf
}

// Src is the source register of i.
func (i Insn) Src() uint8 {
	if hostBigEndian {
		return i.Regs & 0xf
	}
	return i.Regs >> 4
}

// Registers used by the device filter. R1 holds the context pointer on entry
// and is reused as scratch once the context has been read.
const (
	bpfR0 = 0 // return value
	bpfR1 = 1 // ctx, then scratch
	bpfR2 = 2 // device type (BPF_DEVCG_DEV_*)
	bpfR3 = 3 // requested access bits not yet granted (BPF_DEVCG_ACC_*)
	bpfR4 = 4 // major
	bpfR5 = 5 // minor
)

const devAccessAll = unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE | unix.BPF_DEVCG_ACC_MKNOD

func ldxW(dst, src uint8, off int16) Insn {
	return newInsn(unix.BPF_LDX|unix.BPF_MEM|unix.BPF_W, dst, src, off, 0)
}
func alu32Imm(op, dst uint8, imm int32) Insn {
	return newInsn(unix.BPF_ALU|op|unix.BPF_K, dst, 0, 0, imm)
}
func mov32Reg(dst, src uint8) Insn {
	return newInsn(unix.BPF_ALU|unix.BPF_MOV|unix.BPF_X, dst, src, 0, 0)
}
func mov64Imm(dst uint8, imm int32) Insn {
	return newInsn(unix.BPF_ALU64|unix.BPF_MOV|unix.BPF_K, dst, 0, 0, imm)
}
func jmpImm(op, dst uint8, imm int32) Insn {
	return newInsn(unix.BPF_JMP|op|unix.BPF_K, dst, 0, 0, imm)
}
func jmpReg(op, dst, src uint8) Insn { return newInsn(unix.BPF_JMP|op|unix.BPF_X, dst, src, 0, 0) }
func exitInsn() Insn                 { return newInsn(unix.BPF_JMP|unix.BPF_EXIT, 0, 0, 0, 0) }

// devRule is one validated linux.resources.devices entry.
type devRule struct {
	allow        bool
	typ          int32 // BPF_DEVCG_DEV_*; 0 for any type
	major, minor int64 // -1 for any
	access       int32 // BPF_DEVCG_ACC_* bits, never 0
}

func parseDevRule(i int, r specs.LinuxDeviceCgroup) (devRule, error) {
	field := fmt.Sprintf("linux.resources.devices[%d]", i)
	d := devRule{allow: r.Allow}
	switch r.Type {
	case "", "a":
	case "c":
		d.typ = unix.BPF_DEVCG_DEV_CHAR
	case "b":
		d.typ = unix.BPF_DEVCG_DEV_BLOCK
	default:
		return d, fmt.Errorf("%s.type: invalid type %q (want \"a\", \"b\" or \"c\"): %w", field, r.Type, errdefs.ErrInvalid)
	}
	num := func(name string, p *int64) (int64, error) {
		if p == nil {
			return -1, nil
		}
		if *p < -1 || *p > math.MaxUint32 {
			return 0, fmt.Errorf("%s.%s: invalid %s %d (want -1 or unset for any, or 0 to %d): %w", field, name, name, *p, uint32(math.MaxUint32), errdefs.ErrInvalid)
		}
		return *p, nil
	}
	var err error
	if d.major, err = num("major", r.Major); err != nil {
		return d, err
	}
	if d.minor, err = num("minor", r.Minor); err != nil {
		return d, err
	}
	if r.Access == "" {
		d.access = devAccessAll
	}
	for _, c := range r.Access {
		switch c {
		case 'r':
			d.access |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			d.access |= unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			d.access |= unix.BPF_DEVCG_ACC_MKNOD
		default:
			return d, fmt.Errorf("%s.access: invalid access %q (want a combination of \"r\", \"w\" and \"m\"): %w", field, r.Access, errdefs.ErrInvalid)
		}
	}
	return d, nil
}

// DeviceFilter builds the BPF_PROG_TYPE_CGROUP_DEVICE program enforcing the
// OCI linux.resources.devices rules.
//
// Semantics. Rules are evaluated in order and, for every access bit the
// kernel asks about (r, w, m), the last rule that matches the device and
// names that bit decides it; the request is allowed only if every requested
// bit is allowed. A bit no rule decides is denied. A rule matches a device if
// its type is "a"/"" or equal to the device's, and its major and minor are
// unset/-1 or equal. Type "a" still honours major, minor and access (so
// {type "a", access "r"} allows reading of everything, not mknod), unlike the
// v1 devices.allow syntax where "a" means every device with rwm.
//
// An empty list allows everything: with no rules there is nothing to
// restrict, as on cgroup v1 where a cgroup without rules inherits its
// parent's (allow-all) behaviour. The OCI default config, and every config
// warren generates, starts with a deny-all rule.
//
// Why per bit. The kernel asks for r and w together on an O_RDWR open. runc
// and crun emit "rule matches if the requested bits are a subset of its
// access" for allow and deny rules alike; for deny rules that punches holes:
// with [allow c 1:3 rwm, deny c 1:3 w] an O_RDWR open of 1:3 skips the deny
// (rw is not a subset of w) and reaches the allow. runc hides this on cgroup
// v2 by first running the rules through its v1 emulator (which strips w from
// the identical earlier rule, and refuses to punch a hole into a wildcard
// rule); crun does not. Per-bit evaluation is what the v1 kernel does for a
// deny rule (any overlap denies) and never allows a rw open whose r and w
// would not each be allowed by separate opens, so it is never weaker than v1.
//
// Shape. The rules are emitted from last to first; each block tests type,
// major and minor and, if they match:
//   - allow: clears the rule's bits from the pending access (R3) and returns
//     1 once nothing is pending;
//   - deny: returns 0 if any pending bit is in the rule's access.
//
// Falling off the last block returns 0. A rule matching everything (no type,
// major or minor, access rwm) ends the program, since the BPF verifier rejects
// unreachable instructions.
func DeviceFilter(rules []specs.LinuxDeviceCgroup) ([]Insn, error) {
	parsed := make([]devRule, len(rules))
	for i, r := range rules {
		d, err := parseDevRule(i, r)
		if err != nil {
			return nil, err
		}
		parsed[i] = d
	}
	if len(parsed) == 0 {
		return []Insn{mov64Imm(bpfR0, 1), exitInsn()}, nil
	}
	// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; },
	// access_type = access << 16 | type.
	prog := []Insn{
		ldxW(bpfR2, bpfR1, 0),
		alu32Imm(unix.BPF_AND, bpfR2, 0xffff),
		ldxW(bpfR3, bpfR1, 0),
		alu32Imm(unix.BPF_RSH, bpfR3, 16),
		ldxW(bpfR4, bpfR1, 4),
		ldxW(bpfR5, bpfR1, 8),
	}
	for i := len(parsed) - 1; i >= 0; i-- {
		block, final := parsed[i].block()
		prog = append(prog, block...)
		if final {
			return prog, nil
		}
	}
	return append(prog, mov64Imm(bpfR0, 0), exitInsn()), nil
}

// block returns the instructions of one rule; every jump in it goes to the
// instruction after the block. final reports that the block always returns.
func (d devRule) block() (b []Insn, final bool) {
	var jumps []int
	skipIf := func(in ...Insn) {
		b = append(b, in...)
		jumps = append(jumps, len(b)-1)
	}
	neq := func(reg uint8, v int64) {
		if v <= math.MaxInt32 {
			skipIf(jmpImm(unix.BPF_JNE, reg, int32(v)))
			return
		}
		// JNE imm compares the 64-bit register with the sign-extended
		// immediate, but the register holds a zero-extended u32: load the
		// value with a zero-extending 32-bit mov and compare registers.
		skipIf(alu32Imm(unix.BPF_MOV, bpfR1, int32(uint32(v))), jmpReg(unix.BPF_JNE, reg, bpfR1))
	}
	if d.typ != 0 {
		skipIf(jmpImm(unix.BPF_JNE, bpfR2, d.typ))
	}
	if d.major >= 0 {
		neq(bpfR4, d.major)
	}
	if d.minor >= 0 {
		neq(bpfR5, d.minor)
	}
	conditional := len(jumps) > 0
	partial := d.access != devAccessAll
	verdict := int32(0)
	if d.allow {
		verdict = 1
		if partial {
			// Grant this rule's bits; keep looking if others are pending.
			// Unknown future access bits stay pending and end up denied.
			b = append(b, alu32Imm(unix.BPF_AND, bpfR3, ^d.access))
			skipIf(jmpImm(unix.BPF_JNE, bpfR3, 0))
		}
	} else if partial {
		b = append(b, mov32Reg(bpfR1, bpfR3), alu32Imm(unix.BPF_AND, bpfR1, d.access))
		skipIf(jmpImm(unix.BPF_JEQ, bpfR1, 0))
	}
	b = append(b, mov64Imm(bpfR0, verdict), exitInsn())
	for _, j := range jumps {
		b[j].Off = int16(len(b) - j - 1)
	}
	return b, !conditional && !partial
}

// bpfAttrSize is the size of the bpf_attr we pass. It is larger than every
// field we set: the kernel zero-fills what we do not pass and requires what
// it does not know to be zero, and BPF_PROG_QUERY writes output fields
// (attach_flags, prog_cnt, revision) that must land inside our buffer.
const bpfAttrSize = 128

// bpfProgLoadAttr is union bpf_attr for BPF_PROG_LOAD, up to
// expected_attach_type.
type bpfProgLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex        uint32
	expectedAttachType uint32
	_                  [bpfAttrSize - 72]byte
}

// bpfAttachAttr is union bpf_attr for BPF_PROG_ATTACH and BPF_PROG_DETACH.
type bpfAttachAttr struct {
	targetFd     uint32
	attachBpfFd  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFd uint32
	_            [bpfAttrSize - 20]byte
}

// bpfQueryAttr is union bpf_attr for BPF_PROG_QUERY.
type bpfQueryAttr struct {
	targetFd    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     uint64
	progCnt     uint32
	_           [bpfAttrSize - 28]byte
}

// bpfGetFdByIDAttr is union bpf_attr for BPF_PROG_GET_FD_BY_ID.
type bpfGetFdByIDAttr struct {
	progID    uint32
	nextID    uint32
	openFlags uint32
	_         [bpfAttrSize - 12]byte
}

func bpfSyscall(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// devFilterLicense is any string: the kernel only demands a GPL-compatible
// license for gpl_only helpers, and the device filter calls no helper.
var devFilterLicense = []byte("Apache-2.0\x00")

// LoadDeviceFilter loads insns (from DeviceFilter) as a
// BPF_PROG_TYPE_CGROUP_DEVICE program and returns its fd, which the caller
// closes. On failure the error carries the verifier's log.
func LoadDeviceFilter(insns []Insn) (progFd int, err error) {
	if len(insns) == 0 {
		return -1, fmt.Errorf("load device filter: empty program: %w", errdefs.ErrInvalid)
	}
	attr := bpfProgLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(insns)),
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&devFilterLicense[0]))),
	}
	// The name shows up in bpftool prog list.
	copy(attr.progName[:], "warren_devices")
	load := func() (int, error) {
		for try := 0; ; try++ {
			fd, err := bpfSyscall(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
			// The verifier gives up with EAGAIN when a signal is pending,
			// and the Go scheduler preempts with SIGURG at any time.
			if (err == unix.EAGAIN || err == unix.EINTR) && try < 100 {
				continue
			}
			return fd, err
		}
	}
	fd, err := load()
	if err == unix.EPERM {
		// Before Linux 5.11 programs are charged to RLIMIT_MEMLOCK (64 KiB
		// by default on many systems). Raise it for the load only: the
		// charge is checked at load time, and the runtime's children must
		// not inherit a changed limit.
		var old unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &old) == nil && old.Cur != unix.RLIM_INFINITY {
			inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
			if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf) == nil {
				fd, err = load()
				_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &old)
			}
		}
	}
	if err == nil {
		runtime.KeepAlive(insns)
		return fd, nil
	}
	if err == unix.EPERM {
		return -1, fmt.Errorf("load device filter: bpf(BPF_PROG_LOAD): %w (needs CAP_SYS_ADMIN or CAP_BPF; before Linux 5.11 also a large enough RLIMIT_MEMLOCK)", err)
	}
	// Load again with the verifier log: it is the only explanation the
	// kernel gives, and costs nothing on the success path.
	var log []byte
	for size := 64 << 10; ; size *= 4 {
		log = make([]byte, size)
		attr.logLevel = 1
		attr.logSize = uint32(len(log))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
		fd, err = load()
		runtime.KeepAlive(log)
		if err != unix.ENOSPC || size >= 16<<20 {
			break
		}
	}
	runtime.KeepAlive(insns)
	if err == nil {
		// Failed without the log and passed with it: keep the program.
		return fd, nil
	}
	if n := bytes.IndexByte(log, 0); n >= 0 {
		log = log[:n]
	}
	msg := strings.TrimSpace(string(log))
	if msg == "" {
		return -1, fmt.Errorf("load device filter (%d instructions): bpf(BPF_PROG_LOAD): %w", len(insns), err)
	}
	return -1, fmt.Errorf("load device filter (%d instructions): bpf(BPF_PROG_LOAD): %w; verifier log:\n%s", len(insns), err, msg)
}

// deviceFilterIDs returns the ids of the BPF_CGROUP_DEVICE programs attached
// directly to the cgroup dirFd (not inherited ones) and the attach flags the
// cgroup was given.
func deviceFilterIDs(dirFd int) ([]uint32, uint32, error) {
	// At most 64 programs can be attached per cgroup and type
	// (BPF_CGROUP_MAX_PROGS); on ENOSPC the kernel reports the real count.
	ids := make([]uint32, 64)
	for {
		attr := bpfQueryAttr{
			targetFd:   uint32(dirFd),
			attachType: unix.BPF_CGROUP_DEVICE,
			progIDs:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
			progCnt:    uint32(len(ids)),
		}
		_, err := bpfSyscall(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(ids)
		if err == unix.ENOSPC && int(attr.progCnt) > len(ids) {
			ids = make([]uint32, attr.progCnt)
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("bpf(BPF_PROG_QUERY): %w", err)
		}
		return ids[:attr.progCnt], attr.attachFlags, nil
	}
}

// SetDevicesV2 makes rules (see DeviceFilter) the device policy of the cgroup
// v2 directory dir, replacing the device filters attached to it before:
// running it again (update) swaps the policy instead of stacking another
// filter on top. The new filter is attached before the old ones are
// detached, so at no point does the cgroup run without one (while both are
// attached a device must pass both, which is never looser than either).
func SetDevicesV2(dir string, rules []specs.LinuxDeviceCgroup) error {
	insns, err := DeviceFilter(rules)
	if err != nil {
		return fmt.Errorf("set device filter of cgroup %s: %w", dir, err)
	}
	dirFd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return fmt.Errorf("set device filter of cgroup %s: the directory does not exist: %w", dir, errdefs.ErrNotFound)
		}
		return fmt.Errorf("set device filter of cgroup %s: open: %w", dir, err)
	}
	defer unix.Close(dirFd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(dirFd, &st); err != nil {
		return fmt.Errorf("set device filter of cgroup %s: statfs: %w", dir, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("set device filter of cgroup %s: not a cgroup v2 directory (device filters need cgroup2; on v1 use the devices controller): %w", dir, errdefs.ErrInvalid)
	}
	oldIDs, flags, err := deviceFilterIDs(dirFd)
	if err != nil {
		return fmt.Errorf("set device filter of cgroup %s: list attached device filters: %w", dir, err)
	}
	if len(oldIDs) > 0 && flags&unix.BPF_F_ALLOW_MULTI == 0 {
		// The kernel refuses to mix exclusive/override attachments with
		// multi ones (EPERM), and detaching the foreign program first
		// would leave the cgroup unfiltered for a moment.
		return fmt.Errorf("set device filter of cgroup %s: another manager attached a device filter without BPF_F_ALLOW_MULTI (flags %#x); detach it or let warren manage this cgroup: %w", dir, flags, errdefs.ErrState)
	}
	progFd, err := LoadDeviceFilter(insns)
	if err != nil {
		return fmt.Errorf("set device filter of cgroup %s: %w", dir, err)
	}
	defer unix.Close(progFd)
	attach := bpfAttachAttr{
		targetFd:    uint32(dirFd),
		attachBpfFd: uint32(progFd),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, err := bpfSyscall(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attach), unsafe.Sizeof(attach)); err != nil {
		return fmt.Errorf("set device filter of cgroup %s: bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE): %w", dir, err)
	}
	for _, id := range oldIDs {
		if err := detachDeviceFilter(dirFd, id); err != nil {
			return fmt.Errorf("set device filter of cgroup %s: new filter attached, but removing the previous one (prog id %d) failed, so both apply: %w", dir, id, err)
		}
	}
	return nil
}

// detachDeviceFilter detaches the program with the given id from the cgroup
// dirFd. A program gone in the meantime is not an error.
func detachDeviceFilter(dirFd int, id uint32) error {
	get := bpfGetFdByIDAttr{progID: id}
	fd, err := bpfSyscall(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
	switch {
	case err == unix.ENOENT:
		return nil
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		// An LSM (SELinux with systemd-attached programs) can deny us the
		// program. Leaving it attached only restricts further, as runc
		// does; say so in the debug log.
		slog.Debug("cannot open attached device filter to replace it; it stays attached", "prog_id", id, "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("bpf(BPF_PROG_GET_FD_BY_ID %d): %w", id, err)
	}
	defer unix.Close(fd)
	detach := bpfAttachAttr{
		targetFd:    uint32(dirFd),
		attachBpfFd: uint32(fd),
		attachType:  unix.BPF_CGROUP_DEVICE,
	}
	if _, err := bpfSyscall(unix.BPF_PROG_DETACH, unsafe.Pointer(&detach), unsafe.Sizeof(detach)); err != nil && err != unix.ENOENT {
		return fmt.Errorf("bpf(BPF_PROG_DETACH %d): %w", id, err)
	}
	return nil
}
