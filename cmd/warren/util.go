package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/rawfile"
	"github.com/warren-runtime/warren/internal/runtime"
	"github.com/warren-runtime/warren/internal/runtime/nsexec"
)

func specVersion() string { return specs.Version }
func goVersion() string   { return goruntime.Version() }

// plainHandler writes bare messages to a terminal: what a person running
// warren by hand reads.
type plainHandler struct {
	w     io.Writer
	level slog.Level
}

func (h plainHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h plainHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	if r.Level < slog.LevelError {
		msg = r.Level.String() + ": " + msg
	}
	_, err := fmt.Fprintln(h.w, msg)
	return err
}
func (h plainHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h plainHandler) WithGroup(string) slog.Handler      { return h }

// rootDir is --root, or by default /run/warren for root and
// $XDG_RUNTIME_DIR/warren for an unprivileged user (runc's rule), so a
// rootless user's containers live in a directory it owns.
func rootDir(c *cli.Context) string {
	r := c.GlobalString("root")
	if !c.GlobalIsSet("root") {
		r = runtime.DefaultRoot
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && os.Geteuid() != 0 {
			r = filepath.Join(x, "warren")
		}
	}
	if abs, err := filepath.Abs(r); err == nil {
		r = abs
	}
	return r
}

// requireID checks the argument count and returns the container id.
func requireID(c *cli.Context, min, max int) (string, error) {
	n := c.NArg()
	if n < min || (max >= 0 && n > max) {
		return "", fmt.Errorf("%s: %w: %q requires %s", c.Command.Name, errdefs.ErrInvalid, c.Command.Name, argsDesc(min, max))
	}
	id := c.Args().First()
	if id == "" {
		return "", fmt.Errorf("%s: container id cannot be empty: %w", c.Command.Name, errdefs.ErrInvalid)
	}
	return id, nil
}

func argsDesc(min, max int) string {
	switch {
	case min == max && min == 1:
		return "exactly 1 argument"
	case min == max:
		return "exactly " + strconv.Itoa(min) + " arguments"
	case max < 0:
		return "at least " + strconv.Itoa(min) + " argument(s)"
	default:
		return fmt.Sprintf("%d to %d arguments", min, max)
	}
}

func isNotExist(err error) bool {
	return errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, os.ErrNotExist)
}

// rootlessMode is --rootless: in rootless mode cgroups that are not
// delegated to the caller are skipped instead of failing. "auto" (runc's
// default) means an unprivileged user, or root inside a user namespace
// (whose root is not the host's and so owns no cgroup either).
func rootlessMode(c *cli.Context) bool {
	switch c.GlobalString("rootless") {
	case "true":
		return true
	case "false":
		return false
	}
	return os.Geteuid() != 0 || inUserNamespace()
}

// inUserNamespace reports whether this process is in a user namespace other
// than the initial one, whose uid_map is the identity over all 2^32 ids.
func inUserNamespace() bool {
	b, err := rawfile.Read("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// catchAll starts catching every signal into ch (for forwarding to the
// container's process) on another goroutine and returns a function that
// waits until that is done; the caller waits before the container's process
// starts. The signals the C constructor blocked for this verb (nsexec.c:
// all but those the Go runtime unblocks in its threads or needs, and those
// warren does not forward) are read from a signalfd, including any that
// arrived before main; the 12 the Go runtime unblocks (SIGTERM, SIGINT,
// SIGHUP, SIGQUIT, SIGABRT, SIGSTKFLT and the synchronous faults) through
// os/signal, whose handshake with the runtime's signal thread per signal is
// why the other 50 are not.
func catchAll(ch chan os.Signal) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		set, _, blocked := nsexec.BlockedSignals()
		if !blocked {
			signal.Notify(ch)
			return
		}
		f, err := signalFile(set)
		if err != nil {
			// Blocked signals still reach os/signal: its thread
			// unblocks what it is asked for.
			slog.Debug("signalfd failed; catching signals with os/signal", "err", err)
			signal.Notify(ch)
			return
		}
		signal.Notify(ch, unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGABRT, unix.SIGTERM, unix.SIGSTKFLT,
			unix.SIGILL, unix.SIGTRAP, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, unix.SIGSYS)
		go readSignals(f, ch)
	}()
	return func() { <-done }
}

// signalFile opens a signalfd for the signals in set (bit n-1 for signal n),
// non-blocking so that reads park a goroutine, not a thread.
func signalFile(set uint64) (*os.File, error) {
	var mask unix.Sigset_t
	mask.Val[0] = set
	fd, err := unix.Signalfd(-1, &mask, unix.SFD_NONBLOCK|unix.SFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("signalfd", err)
	}
	return os.NewFile(uintptr(fd), "signalfd"), nil
}

// readSignals passes every signal read from f to ch, until f fails.
func readSignals(f *os.File, ch chan<- os.Signal) {
	const size = int(unsafe.Sizeof(unix.SignalfdSiginfo{}))
	buf := make([]byte, 16*size)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		for i := 0; i+size <= n; i += size {
			ch <- unix.Signal(binary.NativeEndian.Uint32(buf[i:]))
		}
	}
}
