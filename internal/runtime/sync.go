package runtime

// The parent↔child protocol of `warren create`.
//
//	warren create (parent)                       warren init (child)
//	  start /proc/self/fd/N init ──────────────────> stage 0 (C, nsexec.c)
//	  place stage 0 in the container's cgroups
//	  ── msgBootstrap {flags, joins} ─────────────> setns joins, unshare new
//	  <── msgIDMapReq (new user or time ns) ───────
//	  write uid_map, gid_map, timens_offsets
//	  ── msgIDMapAck ─────────────────────────────>
//	  <── msgPid {init pid} ─────────────────────── fork (pid/time ns); Go starts
//	  ── msgConfig {initConfig JSON} ─────────────> Go init: mounts, devices
//	  <── msgHooks (only with such hooks) ────────
//	  run prestart, createRuntime hooks
//	  ── msgHooksDone ────────────────────────────> createContainer hooks,
//	                                                 pivot_root, hostname,
//	                                                 sysctl, rlimits, user,
//	                                                 caps, no_new_privs
//	  <── msgReady ──────────────────────────────── (or msgError at any point)
//	  write state.json, pid file; exit             block on exec.fifo
//	warren start: write exec.fifo ───────────────> execve(process.args)
//
// `exec` runs the same protocol with only joins; unless the process needs
// a terminal or a seccomp notify listener, msgTail {binary plan} replaces
// msgConfig and stage 0's C tail (nsexec/tail.c) applies it and execs: no
// Go runtime starts in the container (see tail_linux.go).
//
// Framing: 1 byte type, 4 bytes little-endian payload length, payload.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
)

const (
	msgBootstrap = 'B'
	msgIDMapReq  = 'U'
	msgIDMapAck  = 'u'
	msgPid       = 'P'
	msgConfig    = 'C'
	msgReady     = 'R'
	msgError     = 'E'
	msgHooks     = 'H' // init: rootfs mounted, run prestart/createRuntime hooks
	msgHooksDone = 'h' // parent: they ran
	// msgSeccompFd is a single byte sent with the seccomp notify fd
	// (SCM_RIGHTS) outside the framing; msgSeccompDone answers it once the
	// fd reached linux.seccomp.listenerPath.
	msgSeccompFd   = 'S'
	msgSeccompDone = 's'
)

const maxMsg = 16 << 20

func writeMsg(w io.Writer, typ byte, payload []byte) error {
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.LittleEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// childError is an error reported by the container's init over the sync socket.
type childError struct{ msg string }

func (e *childError) Error() string { return e.msg }

// readMsg reads one message and fails unless it has type want. A msgError
// from the child is returned as *childError.
func readMsg(r io.Reader, want byte) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		// ECONNRESET: it died with our last message still unread.
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, errors.New("container init exited before reporting (see its stderr)")
		}
		return nil, fmt.Errorf("read from container init: %w", err)
	}
	n := binary.LittleEndian.Uint32(hdr[1:])
	if n > maxMsg {
		return nil, fmt.Errorf("sync message of %d bytes is too large", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, fmt.Errorf("read from container init: %w", err)
	}
	if hdr[0] == msgError {
		return nil, &childError{msg: string(payload)}
	}
	if hdr[0] != want {
		return nil, fmt.Errorf("sync protocol: expected message %q, got %q", want, hdr[0])
	}
	return payload, nil
}
