package linux

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSeccompFilterCompiles(t *testing.T) {
	e := uint(13)
	f, err := SeccompFilter(&specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "no_such_syscall_anywhere"}, Action: specs.ActAllow},
			{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &e}, // same as default: skipped
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0, Op: specs.OpEqualTo}, {Index: 0, Value: 8, Op: specs.OpEqualTo}}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0x7e020000, Op: specs.OpMaskedEqual}}},
			{Names: []string{"kill"}, Action: specs.ActKillProcess},
			{Names: []string{"getpid"}, Action: specs.ActLog},
		},
	})
	if err != nil {
		t.Fatalf("valid profile: %v", err)
	}
	f.Release()
}

func TestSeccompFilterErrorsNameTheField(t *testing.T) {
	for want, sc := range map[string]*specs.LinuxSeccomp{
		"linux.seccomp.defaultAction":          {DefaultAction: "SCMP_ACT_NOPE"},
		"linux.seccomp.architectures[0]":       {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_VAX"}},
		"linux.seccomp.flags[0]":               {DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_NOPE"}},
		"linux.seccomp.syscalls[0].action":     {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: "X"}}},
		"linux.seccomp.syscalls[0].args[0].op": {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_NOPE"}}}}},
		"linux.seccomp.syscalls[0].args[0].index": {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
	} {
		_, err := SeccompFilter(sc)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
}

func TestHasNotify(t *testing.T) {
	if HasNotify(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow}) {
		t.Error("no notify rule reported as notify")
	}
	if !HasNotify(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"x"}, Action: specs.ActNotify}}}) {
		t.Error("notify rule not seen")
	}
}
