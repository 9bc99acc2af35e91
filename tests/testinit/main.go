//go:build linux

// Keep the runtime from holding a cgroup cpu.max descriptor open for the
// whole process lifetime; it would show up in the fd report.
//go:debug containermaxprocs=0

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FileResult is printed by "read" and "write".
type FileResult struct {
	Path  string `json:"path"`
	OK    bool   `json:"ok"`
	Error string `json:"error"` // "" when ok
	Errno int    `json:"errno"` // numeric errno of the failure, 0 when ok
	Bytes int64  `json:"bytes"` // bytes read or written
	// read only: the first 64 KiB of what was read.
	Content string `json:"content,omitempty"`
}

// StatResult is printed by "stat" (lstat semantics: symlinks are not
// followed; LinkTarget holds their target).
type StatResult struct {
	Path       string `json:"path"`
	Exists     bool   `json:"exists"`
	Error      string `json:"error"` // lstat error, "" on success
	Errno      int    `json:"errno"`
	Mode       string `json:"mode"` // ls -l style, e.g. "drwxr-xr-x"
	Perm       uint32 `json:"perm"` // mode & 07777 as a number (0o644 == 420)
	Type       string `json:"type"` // file, dir, symlink, char, block, fifo, socket
	UID        uint32 `json:"uid"`
	GID        uint32 `json:"gid"`
	Size       int64  `json:"size"`
	Ino        uint64 `json:"ino"`
	Major      uint32 `json:"major"` // device nodes only
	Minor      uint32 `json:"minor"` // device nodes only
	LinkTarget string `json:"linkTarget"`
}

// OpResult is printed by "mknod".
type OpResult struct {
	Path  string `json:"path"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Errno int    `json:"errno"`
}

// KillResult is printed by "kill".
type KillResult struct {
	PID    int    `json:"pid"`
	Signal int    `json:"signal"`
	OK     bool   `json:"ok"`
	Error  string `json:"error"`
	Errno  int    `json:"errno"`
}

type command struct {
	usage string
	nargs int // exact number of arguments, -1 for any
	run   func(args []string) int
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"report":   {"report", 0, cmdReport},
		"exit":     {"exit N", 1, cmdExit},
		"sleep":    {"sleep SECONDS", 1, cmdSleep},
		"read":     {"read PATH", 1, cmdRead},
		"write":    {"write PATH", 1, cmdWrite},
		"stat":     {"stat PATH", 1, cmdStat},
		"kill":     {"kill PID SIG", 2, cmdKill},
		"mknod":    {"mknod PATH", 1, cmdMknod},
		"echo":     {"echo ARGS...", -1, cmdEcho},
		"mknoddev": {"mknoddev PATH MAJOR MINOR", 3, cmdMknodDev},
		"open":     {"open PATH", 1, cmdOpen},
		"alloc":    {"alloc MIB", 1, cmdAlloc},
		"forks":    {"forks N", 1, cmdForks},
		"exeprobe": {"exeprobe PID|scan", 1, cmdExeProbe},
		"procpeek": {"procpeek FIFO SECONDS", 2, cmdProcPeek},
		"probe":    {"probe PATH...", -1, cmdProbe},
		"clock":    {"clock", 0, cmdClock},
		"ptrace":   {"ptrace PID", 1, cmdPtrace},
	}
}

func main() {
	os.Exit(run(os.Args))
}

func run(argv []string) int {
	var name string
	var args []string
	if len(argv) > 0 {
		if _, ok := commands[filepath.Base(argv[0])]; ok {
			name, args = filepath.Base(argv[0]), argv[1:]
		}
	}
	if name == "" {
		switch {
		case len(argv) < 2:
			name = "report"
		default:
			name, args = argv[1], argv[2:]
		}
	}
	cmd, ok := commands[name]
	if !ok {
		return usage(fmt.Sprintf("unknown subcommand %q", name))
	}
	if cmd.nargs >= 0 && len(args) != cmd.nargs {
		return usage(fmt.Sprintf("%s: want %d argument(s), got %d", name, cmd.nargs, len(args)))
	}
	return cmd.run(args)
}

func usage(msg string) int {
	fmt.Fprintf(os.Stderr, "testinit: %s\nusage:\n", msg)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  testinit %s\n", commands[n].usage)
	}
	return 1
}

func fail(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "testinit: "+format+"\n", a...)
	return 1
}

// emit writes v as one JSON object and a newline to stdout.
func emit(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return fail("encoding JSON: %v", err)
	}
	b = append(b, '\n')
	for len(b) > 0 {
		n, err := unix.Write(1, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fail("writing stdout: %v", err)
		}
		b = b[n:]
	}
	return 0
}

func errnoOf(err error) int {
	var e syscall.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return 0
}

func cmdReport([]string) int {
	return emit(collectReport())
}

func cmdExit(args []string) int {
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 || n > 255 {
		return fail("exit: bad status %q (want 0-255)", args[0])
	}
	return n
}

func cmdSleep(args []string) int {
	d, err := parseSeconds(args[0])
	if err != nil {
		return fail("sleep: %v", err)
	}
	// As PID 1 of a pid namespace the kernel drops signals whose action is
	// the default, so handle the usual termination signals explicitly, and
	// two more a runtime forwards another way (see warren's nsexec.c):
	// SIGUSR1 and the real-time signal 40.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.Signal(40))
	// Tests that signal the sleeper wait for this line: before Notify the
	// Go runtime already shows SIGTERM as caught but would re-raise it
	// with the default action, which the kernel drops for a pidns init.
	fmt.Fprintln(os.Stderr, "sleep: ready")
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case s := <-sigc:
		if sig, ok := s.(syscall.Signal); ok {
			return 128 + int(sig)
		}
		return 1
	}
}

const (
	maxContent = 64 << 10 // bytes of content echoed back by "read"
	maxRead    = 64 << 20 // stop reading endless files such as /dev/zero
)

func cmdRead(args []string) int {
	res := FileResult{Path: args[0]}
	f, err := os.Open(args[0])
	if err == nil {
		var content strings.Builder
		var n int64
		n, err = io.Copy(&limitedBuilder{b: &content, max: maxContent}, io.LimitReader(f, maxRead))
		f.Close()
		res.Bytes = n
		res.Content = content.String()
	}
	if err != nil {
		res.Error, res.Errno = err.Error(), errnoOf(err)
	} else {
		res.OK = true
	}
	return emit(res)
}

// limitedBuilder keeps the first max bytes and discards the rest while
// still reporting every byte as written.
type limitedBuilder struct {
	b   *strings.Builder
	max int
}

func (l *limitedBuilder) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func cmdWrite(args []string) int {
	res := FileResult{Path: args[0]}
	f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err == nil {
		var n int
		n, err = f.Write([]byte("x"))
		res.Bytes = int64(n)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		res.Error, res.Errno = err.Error(), errnoOf(err)
	} else {
		res.OK = true
	}
	return emit(res)
}

func cmdStat(args []string) int {
	res := StatResult{Path: args[0]}
	var st unix.Stat_t
	if err := unix.Lstat(args[0], &st); err != nil {
		res.Error = (&os.PathError{Op: "lstat", Path: args[0], Err: err}).Error()
		res.Errno = errnoOf(err)
		return emit(res)
	}
	res.Exists = true
	res.Mode = modeString(st.Mode)
	res.Perm = st.Mode & 0o7777
	res.Type = fileType(st.Mode)
	res.UID, res.GID = st.Uid, st.Gid
	res.Size = st.Size
	res.Ino = st.Ino
	if res.Type == "char" || res.Type == "block" {
		res.Major, res.Minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
	if res.Type == "symlink" {
		t, err := readlinkRaw(args[0])
		if err != nil {
			res.Error, res.Errno = err.Error(), errnoOf(err)
		}
		res.LinkTarget = t
	}
	return emit(res)
}

func cmdKill(args []string) int {
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		return fail("kill: bad pid %q", args[0])
	}
	sig, err := parseSignal(args[1])
	if err != nil {
		return fail("kill: %v", err)
	}
	res := KillResult{PID: pid, Signal: int(sig)}
	if err := unix.Kill(pid, sig); err != nil {
		res.Error, res.Errno = err.Error(), errnoOf(err)
	} else {
		res.OK = true
	}
	return emit(res)
}

func cmdMknod(args []string) int {
	res := OpResult{Path: args[0]}
	err := unix.Mknod(args[0], unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	if err != nil {
		res.Error = (&os.PathError{Op: "mknod", Path: args[0], Err: err}).Error()
		res.Errno = errnoOf(err)
	} else {
		res.OK = true
	}
	return emit(res)
}

func cmdEcho(args []string) int {
	if _, err := io.WriteString(os.Stdout, strings.Join(args, " ")+"\n"); err != nil {
		return fail("echo: %v", err)
	}
	return 0
}
