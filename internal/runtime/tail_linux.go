package runtime

import (
	"encoding/binary"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/linux"
	"github.com/warren-runtime/warren/internal/spec"
)

// The C tail (nsexec/tail.c) applies a process's settings and execs it
// without starting the Go runtime in the container process: `exec` uses
// it whenever the process needs nothing only the Go init has (a terminal,
// a seccomp notify listener), and so does `create` when the runtime can
// prepare the rootfs itself (prepare_linux.go). The runtime encodes the plan; every check
// that needs the container's view (cwd, PATH, /etc/passwd) stays in the
// tail, which words its errors as the Go init does.

// msgTail carries the plan (see tailPlan).
const msgTail = 'T'

// Plan flags; keep in step with tail.c.
const (
	tailNNP          = 1 << 0
	tailSeccompEarly = 1 << 1
	tailHome         = 1 << 2
	tailSetsid       = 1 << 3
)

// tailInit holds what only a container's init (create) gets from the
// tail: its own session, a session keyring, and the wait on the exec fifo.
type tailInit struct {
	Setsid  bool
	FifoFd  int    // the exec fifo as the init sees it; 0 for exec
	Keyring string // session keyring to join; "" for none
}

// useTail reports whether the C tail can run p: it has no terminal
// (which needs the pty and console-socket code of the Go init) and no
// seccomp notify action (whose listener fd goes through the runtime).
func useTail(p *specs.Process, sc *specs.LinuxSeccomp) bool {
	return !p.Terminal && (sc == nil || !linux.HasNotify(sc))
}

// tailPlan encodes p for the C tail, little endian:
//
//	u32 flags, u32 close_from, u32 fifo fd, str keyring
//	u32 umask, u32 uid, u32 gid
//	u32 n, n x u32 additional gids
//	u64 bounding, effective, permitted, inheritable, ambient; u32 last cap
//	u32 n, n x {u32 resource, u64 soft, u64 hard, str OCI name}
//	u32 seccomp flags, u32 n, n x 8-byte struct sock_filter
//	str cwd; u32 n, n x str args; u32 n, n x str env
//
// where str is u32 length + bytes. The seccomp filter is compiled here,
// in the runtime, so a bad profile fails before any process starts.
func tailPlan(p *specs.Process, sc *specs.LinuxSeccomp, closeFrom, lastCap int, ti tailInit) ([]byte, error) {
	var prog []byte
	var scFlags uint32
	if sc != nil {
		filter, err := linux.CompileSeccomp(sc)
		if err != nil {
			return nil, err
		}
		prog, scFlags = filter.Program()
	}
	var flags uint32
	if p.NoNewPrivileges {
		flags |= tailNNP
	} else if prog != nil {
		// Loading a filter without no_new_privs needs CAP_SYS_ADMIN: do
		// it before the capabilities change (as runc does).
		flags |= tailSeccompEarly
	}
	if !hasEnv(p.Env, "HOME") {
		flags |= tailHome
	}
	if ti.Setsid {
		flags |= tailSetsid
	}
	umask := uint32(0o022)
	if p.User.Umask != nil {
		umask = *p.User.Umask
	}
	u32 := binary.LittleEndian.AppendUint32
	u64 := binary.LittleEndian.AppendUint64
	str := func(b []byte, s string) []byte { return append(u32(b, uint32(len(s))), s...) }

	b := make([]byte, 0, 512+len(prog))
	b = u32(b, flags)
	b = u32(b, uint32(closeFrom))
	b = u32(b, uint32(ti.FifoFd))
	b = str(b, ti.Keyring)
	b = u32(b, umask)
	b = u32(b, p.User.UID)
	b = u32(b, p.User.GID)
	b = u32(b, uint32(len(p.User.AdditionalGids)))
	for _, g := range p.User.AdditionalGids {
		b = u32(b, g)
	}
	caps := capSets(p)
	for _, m := range []uint64{caps.Bounding, caps.Effective, caps.Permitted, caps.Inheritable, caps.Ambient} {
		b = u64(b, m)
	}
	b = u32(b, uint32(min(max(lastCap, 0), 63)))
	b = u32(b, uint32(len(p.Rlimits)))
	for i, rl := range p.Rlimits {
		res, ok := spec.RlimitResource(rl.Type)
		if !ok {
			return nil, fmt.Errorf("process.rlimits[%d].type: unknown rlimit %q", i, rl.Type)
		}
		b = u32(b, uint32(res))
		b = u64(b, rl.Soft)
		b = u64(b, rl.Hard)
		b = str(b, rl.Type)
	}
	b = u32(b, scFlags)
	b = u32(b, uint32(len(prog)/8))
	b = append(b, prog...)
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if strings.IndexByte(cwd, 0) >= 0 {
		return nil, fmt.Errorf("process.cwd: contains a NUL byte")
	}
	for i, a := range p.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("process.args[%d]: contains a NUL byte", i)
		}
	}
	for i, e := range p.Env {
		if strings.IndexByte(e, 0) >= 0 {
			return nil, fmt.Errorf("process.env[%d]: contains a NUL byte", i)
		}
	}
	b = str(b, cwd)
	b = u32(b, uint32(len(p.Args)))
	for _, a := range p.Args {
		b = str(b, a)
	}
	b = u32(b, uint32(len(p.Env)))
	for _, e := range p.Env {
		b = str(b, e)
	}
	return b, nil
}
