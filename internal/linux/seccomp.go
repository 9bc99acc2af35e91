package linux

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// SeccompActions, SeccompOperators, SeccompArchs and SeccompFlags are what
// linux.seccomp may use in this build (reported by `warren features`).
var (
	SeccompActions = []string{
		"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
		"SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
	}
	SeccompOperators = []string{
		"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
		"SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE",
	}
	seccompArchs = map[specs.Arch]string{
		specs.ArchX86: "x86", specs.ArchX86_64: "amd64", specs.ArchX32: "x32",
		specs.ArchARM: "arm", specs.ArchAARCH64: "arm64",
		specs.ArchMIPS: "mips", specs.ArchMIPS64: "mips64", specs.ArchMIPS64N32: "mips64n32",
		specs.ArchMIPSEL: "mipsel", specs.ArchMIPSEL64: "mipsel64", specs.ArchMIPSEL64N32: "mipsel64n32",
		specs.ArchPPC: "ppc", specs.ArchPPC64: "ppc64", specs.ArchPPC64LE: "ppc64le",
		specs.ArchS390: "s390", specs.ArchS390X: "s390x", specs.ArchRISCV64: "riscv64",
	}
	SeccompFlags = []string{
		"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
		"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
	}
)

// SeccompArchs lists the architecture names linux.seccomp accepts.
func SeccompArchs() []string {
	out := make([]string, 0, len(seccompArchs))
	for a := range seccompArchs {
		out = append(out, string(a))
	}
	sort.Strings(out)
	return out
}

func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint, field string) (libseccomp.ScmpAction, error) {
	errno := int16(unix.EPERM)
	if errnoRet != nil {
		errno = int16(*errnoRet)
	}
	switch a {
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(errno), nil
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	case specs.ActNotify:
		return libseccomp.ActNotify, nil
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(errno), nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	}
	return libseccomp.ActInvalid, fmt.Errorf("%s: unknown action %q", field, a)
}

var seccompOps = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual: libseccomp.CompareNotEqual, specs.OpLessThan: libseccomp.CompareLess,
	specs.OpLessEqual: libseccomp.CompareLessOrEqual, specs.OpEqualTo: libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual, specs.OpGreaterThan: libseccomp.CompareGreater,
	specs.OpMaskedEqual: libseccomp.CompareMaskedEqual,
}

// SeccompFilter compiles linux.seccomp. Syscall names this kernel or
// libseccomp does not know are skipped, as in runc, so one profile serves
// several kernels; everything else that is wrong is an error naming the
// field.
func SeccompFilter(s *specs.LinuxSeccomp) (*libseccomp.ScmpFilter, error) {
	def, err := seccompAction(s.DefaultAction, s.DefaultErrnoRet, "linux.seccomp.defaultAction")
	if err != nil {
		return nil, err
	}
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: create filter: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Release()
		}
	}()
	// The runtime sets no_new_privs itself when the config asks for it.
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	for i, a := range s.Architectures {
		name, known := seccompArchs[a]
		if !known {
			return nil, fmt.Errorf("linux.seccomp.architectures[%d]: unknown architecture %q", i, a)
		}
		arch, err := libseccomp.GetArchFromString(name)
		if err != nil {
			return nil, fmt.Errorf("linux.seccomp.architectures[%d]: %q: %w", i, a, err)
		}
		if err := f.AddArch(arch); err != nil {
			return nil, fmt.Errorf("linux.seccomp.architectures[%d]: %q: %w", i, a, err)
		}
	}
	for i, fl := range s.Flags {
		field := fmt.Sprintf("linux.seccomp.flags[%d]", i)
		switch fl {
		case "SECCOMP_FILTER_FLAG_TSYNC":
			// Only the thread that execs keeps the filter; nothing to do.
		case "SECCOMP_FILTER_FLAG_LOG":
			err = f.SetLogBit(true)
		case "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
			err = f.SetSSB(true)
		case "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV":
			err = f.SetWaitKill(true)
		default:
			return nil, fmt.Errorf("%s: unknown flag %q", field, fl)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", field, fl, err)
		}
	}
	for i, sc := range s.Syscalls {
		field := fmt.Sprintf("linux.seccomp.syscalls[%d]", i)
		act, err := seccompAction(sc.Action, sc.ErrnoRet, field+".action")
		if err != nil {
			return nil, err
		}
		if act == def {
			continue // libseccomp refuses a rule that repeats the default
		}
		var conds []libseccomp.ScmpCondition
		sameIndex := false
		seen := map[uint]bool{}
		for j, a := range sc.Args {
			op, known := seccompOps[a.Op]
			if !known {
				return nil, fmt.Errorf("%s.args[%d].op: unknown operator %q", field, j, a.Op)
			}
			if a.Index > 5 {
				return nil, fmt.Errorf("%s.args[%d].index: %d is above 5", field, j, a.Index)
			}
			vals := []uint64{a.Value}
			if op == libseccomp.CompareMaskedEqual {
				vals = []uint64{a.Value, a.ValueTwo}
			}
			c, err := libseccomp.MakeCondition(a.Index, op, vals...)
			if err != nil {
				return nil, fmt.Errorf("%s.args[%d]: %w", field, j, err)
			}
			sameIndex = sameIndex || seen[a.Index]
			seen[a.Index] = true
			conds = append(conds, c)
		}
		for _, name := range sc.Names {
			call, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // unknown here: skip, as runc does
			}
			switch {
			case len(conds) == 0:
				err = f.AddRule(call, act)
			case sameIndex:
				// Several conditions on one argument cannot be ANDed by
				// libseccomp: each becomes its own rule (runc's reading).
				for _, c := range conds {
					if err = f.AddRuleConditional(call, act, []libseccomp.ScmpCondition{c}); err != nil {
						break
					}
				}
			default:
				err = f.AddRuleConditional(call, act, conds)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: rule for %q: %w", field, name, err)
			}
		}
	}
	ok = true
	return f, nil
}

// Seccomp is a compiled filter: the BPF program and the flags to load it
// with. Compiling allocates (libseccomp generates the program); loading
// then only makes one system call, so it works however tight the
// process's rlimits (RLIMIT_AS) already are.
type Seccomp struct {
	prog   []unix.SockFilter
	raw    []byte // prog as libseccomp exported it (struct sock_filter[])
	flags  uintptr
	notify bool
}

// CompileSeccomp builds the filter for s and exports it as BPF.
func CompileSeccomp(s *specs.LinuxSeccomp) (*Seccomp, error) {
	f, err := SeccompFilter(s)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	// ExportBPFMem needs libseccomp 2.6; a memfd works with 2.5 too.
	mfd, err := unix.MemfdCreate("seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: memfd: %w", err)
	}
	mf := os.NewFile(uintptr(mfd), "seccomp-bpf")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, fmt.Errorf("linux.seccomp: generate the BPF program: %w", err)
	}
	var raw []byte
	if _, err = mf.Seek(0, io.SeekStart); err == nil {
		raw, err = io.ReadAll(mf)
	}
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: read the BPF program: %w", err)
	}
	if len(raw)%8 != 0 || len(raw) == 0 {
		return nil, fmt.Errorf("linux.seccomp: BPF program of %d bytes", len(raw))
	}
	c := &Seccomp{prog: make([]unix.SockFilter, len(raw)/8), raw: raw, notify: HasNotify(s)}
	for i := range c.prog {
		b := raw[i*8:]
		c.prog[i] = unix.SockFilter{
			Code: uint16(b[0]) | uint16(b[1])<<8, Jt: b[2], Jf: b[3],
			K: uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24,
		}
	}
	for _, fl := range s.Flags {
		switch fl {
		case "SECCOMP_FILTER_FLAG_LOG":
			c.flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
			c.flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV":
			c.flags |= 1 << 5 // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19)
		}
	}
	if c.notify {
		c.flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	}
	return c, nil
}

// Load installs the filter on the calling thread, which must be the one
// that execs; with SCMP_ACT_NOTIFY rules it returns the listener fd.
func (c *Seccomp) Load() (*os.File, error) {
	prog := unix.SockFprog{Len: uint16(len(c.prog)), Filter: &c.prog[0]}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, c.flags, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(c.prog)
	if e != 0 {
		return nil, fmt.Errorf("linux.seccomp: load filter: %w", e)
	}
	if !c.notify {
		return nil, nil
	}
	return os.NewFile(r, "seccomp-notify"), nil
}

// Program returns the BPF program as the kernel's struct sock_filter
// array (8 bytes per instruction, little endian) and the flags for
// seccomp(SECCOMP_SET_MODE_FILTER), for a loader outside this process.
func (c *Seccomp) Program() (prog []byte, flags uint32) {
	return c.raw, uint32(c.flags)
}

// HasNotify reports whether the profile uses SCMP_ACT_NOTIFY.
func HasNotify(s *specs.LinuxSeccomp) bool {
	if s.DefaultAction == specs.ActNotify {
		return true
	}
	for _, sc := range s.Syscalls {
		if sc.Action == specs.ActNotify {
			return true
		}
	}
	return false
}
