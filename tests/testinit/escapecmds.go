//go:build linux

package main

// Probes for the container-escape regression suite (integration/escape).
// None of them ever writes to a file it did not create: "write" probes only
// open for writing and close again, so a runtime that failed to protect a
// path is reported, not exploited.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Try is the outcome of one system call.
type Try struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Errno int    `json:"errno,omitempty"`
}

func tryOf(err error) Try {
	if err == nil {
		return Try{OK: true}
	}
	return Try{Error: err.Error(), Errno: errnoOf(err)}
}

// ---------------------------------------------------------------------------
// exeprobe: CVE-2019-5736

// ExeProbe is printed by "exeprobe".
type ExeProbe struct {
	Target int    `json:"target"`
	Found  bool   `json:"found"`
	Open   Try    `json:"open"` // open(/proc/<target>/exe, O_PATH)
	Link   string `json:"link"` // readlink of the magic link
	// statfs of the held handle: the file system the runtime binary is on.
	FsType   int64 `json:"fsType"`
	FsFlags  int64 `json:"fsFlags"`
	ReadOnly bool  `json:"readOnly"`
	// Reopening the held handle O_WRONLY through /proc/self/fd while the
	// target still executes it, and after it stopped doing so.
	WriteWhileRunning Try            `json:"writeWhileRunning"`
	TargetChanged     bool           `json:"targetChanged"`
	WriteAfter        Try            `json:"writeAfter"`
	WriteAfterTries   int            `json:"writeAfterTries"`
	WriteAfterErrnos  map[string]int `json:"writeAfterErrnos"`
	Errors            []string       `json:"errors"`
}

// cmdExeProbe plays the CVE-2019-5736 attacker: it takes an O_PATH handle
// on /proc/<pid>/exe of a process running the runtime binary (TARGET is a
// pid, or "scan" for the first process whose executable is neither this
// binary nor /bin/busybox), prints {"event":"holding"} and then waits until
// the target stops executing that file (it exec'd or exited). Then it tries,
// for up to a second (or until EROFS), to reopen the handle for writing, as the original
// exploit did once the runtime had exited. It never writes: a successful
// open is closed at once and reported.
func cmdExeProbe(args []string) int {
	res := ExeProbe{WriteAfterErrnos: map[string]int{}, Errors: []string{}}
	deadline := time.Now().Add(30 * time.Second)
	target := 0
	if args[0] == "scan" {
		var self, bb unix.Stat_t
		if err := unix.Stat("/proc/self/exe", &self); err != nil {
			return fail("exeprobe: stat /proc/self/exe: %v", err)
		}
		_ = unix.Stat("/bin/busybox", &bb)
		for target == 0 && time.Now().Before(deadline) {
			for _, pid := range listPids() {
				if pid == os.Getpid() {
					continue
				}
				var st unix.Stat_t
				if unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st) != nil {
					continue
				}
				if (st.Dev == self.Dev && st.Ino == self.Ino) || (st.Dev == bb.Dev && st.Ino == bb.Ino) {
					continue
				}
				target = pid
				break
			}
			if target == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		if target == 0 {
			res.Errors = append(res.Errors, "scan: no process running a foreign binary appeared")
			return emit(res)
		}
	} else {
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return fail("exeprobe: bad target %q", args[0])
		}
		target = n
	}
	res.Target = target
	exe := fmt.Sprintf("/proc/%d/exe", target)
	fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
	res.Open = tryOf(err)
	if err != nil {
		emit(map[string]any{"event": "holding", "pid": target, "ok": false})
		return emit(res)
	}
	res.Found = true
	defer unix.Close(fd)
	res.Link, _ = readlinkRaw(exe)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		res.Errors = append(res.Errors, "fstatfs: "+err.Error())
	} else {
		res.FsType, res.FsFlags = int64(sfs.Type), int64(sfs.Flags)
		res.ReadOnly = sfs.Flags&unix.ST_RDONLY != 0
	}
	var held unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		res.Errors = append(res.Errors, "fstat: "+err.Error())
	}
	reopen := "/proc/self/fd/" + strconv.Itoa(fd)
	tryWrite := func() Try {
		w, err := unix.Open(reopen, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err == nil {
			unix.Close(w) // never write: the point is that the open worked
		}
		return tryOf(err)
	}
	res.WriteWhileRunning = tryWrite()
	emit(map[string]any{"event": "holding", "pid": target, "ok": true})

	for time.Now().Before(deadline) {
		var st unix.Stat_t
		if err := unix.Stat(exe, &st); err != nil || st.Dev != held.Dev || st.Ino != held.Ino {
			res.TargetChanged = true
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if !res.TargetChanged {
		res.Errors = append(res.Errors, "the target kept running the runtime binary")
		return emit(res)
	}
	// The runtime's processes that executed the file are gone or have
	// exec'd something else; a vulnerable runtime's binary is now
	// writable (no ETXTBSY). Keep trying for a while: the runtime's CLI
	// may still be exiting.
	end := time.Now().Add(time.Second)
	for {
		res.WriteAfterTries++
		res.WriteAfter = tryWrite()
		if res.WriteAfter.OK {
			break
		}
		res.WriteAfterErrnos[unix.ErrnoName(unix.Errno(res.WriteAfter.Errno))]++
		// EROFS is final (the handle's mount is read-only); ETXTBSY is
		// not: some runtime process may still be executing the file.
		if res.WriteAfter.Errno == int(unix.EROFS) || time.Now().After(end) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return emit(res)
}

func listPids() []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var pids []int
	for _, n := range names {
		if p, err := strconv.Atoi(n); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// ---------------------------------------------------------------------------
// procpeek: the runtime's exec process must be non-dumpable until it execs

// PeekProbe is one look at another process's /proc entries.
type PeekProbe struct {
	Phase    string `json:"phase"`
	Cmdline  string `json:"cmdline"`
	Exe      Try    `json:"exe"`      // open /proc/P/exe O_PATH
	ExeLink  Try    `json:"exeLink"`  // readlink /proc/P/exe
	Cwd      Try    `json:"cwd"`      // readlink /proc/P/cwd
	FdDir    Try    `json:"fdDir"`    // open /proc/P/fd
	FdsOpen  []int  `json:"fdsOpen"`  // n for which open(/proc/P/fd/n, O_PATH) worked
	FdErrnos []int  `json:"fdErrnos"` // distinct errnos of the others
	Environ  Try    `json:"environ"`  // open /proc/P/environ
	Mem      Try    `json:"mem"`      // open /proc/P/mem
}

// PeekResult is printed by "procpeek".
type PeekResult struct {
	Target   int         `json:"target"`
	Probes   []PeekProbe `json:"probes"`
	Blocked  bool        `json:"blocked"` // the target was seen blocked on FIFO
	Released bool        `json:"released"`
	Errors   []string    `json:"errors"`
}

func peek(pid int, phase string) PeekProbe {
	base := fmt.Sprintf("/proc/%d/", pid)
	p := PeekProbe{Phase: phase, FdsOpen: []int{}, FdErrnos: []int{}}
	if b, err := os.ReadFile(base + "cmdline"); err == nil {
		p.Cmdline = strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
	}
	fd, err := unix.Open(base+"exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	p.Exe = tryOf(err)
	_, err = readlinkRaw(base + "exe")
	p.ExeLink = tryOf(err)
	_, err = readlinkRaw(base + "cwd")
	p.Cwd = tryOf(err)
	fd, err = unix.Open(base+"fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	p.FdDir = tryOf(err)
	seen := map[int]bool{}
	for n := 0; n < 32; n++ {
		fd, err := unix.Open(base+"fd/"+strconv.Itoa(n), unix.O_PATH|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			p.FdsOpen = append(p.FdsOpen, n)
			continue
		}
		if e := errnoOf(err); !seen[e] {
			seen[e] = true
			p.FdErrnos = append(p.FdErrnos, e)
		}
	}
	fd, err = unix.Open(base+"environ", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	p.Environ = tryOf(err)
	fd, err = unix.Open(base+"mem", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	p.Mem = tryOf(err)
	return p
}

// cmdProcPeek waits for another process to appear in this pid namespace
// (a process the runtime is joining into the container), and probes its
// /proc entries (exe, cwd, fds, environ, mem) while it is still the
// runtime. FIFO is a fifo the runtime's process is expected to block on
// (it reads the container's /etc/passwd before exec); once it is blocked
// there, one more probe is taken and the fifo is released with a passwd
// line. Prints the probes, then sleeps SECONDS so the container outlives
// the joined process.
func cmdProcPeek(args []string) int {
	fifo := args[0]
	linger, err := parseSeconds(args[1])
	if err != nil {
		return fail("procpeek: %v", err)
	}
	res := PeekResult{Probes: []PeekProbe{}, Errors: []string{}}
	self := os.Getpid()
	emit(map[string]any{"event": "ready"})
	deadline := time.Now().Add(20 * time.Second)
	for res.Target == 0 && time.Now().Before(deadline) {
		for _, pid := range listPids() {
			if pid != self {
				res.Target = pid
				break
			}
		}
		if res.Target == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if res.Target == 0 {
		res.Errors = append(res.Errors, "no other process appeared")
		emit(res)
		return 0
	}
	res.Probes = append(res.Probes, peek(res.Target, "found"))
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		// A writer's non-blocking open fails with ENXIO until a reader
		// has the fifo open: then the target is parked in open/read.
		w, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			res.Blocked = true
			res.Probes = append(res.Probes, peek(res.Target, "blocked"))
			line := "root:x:0:0:root:/root:/bin/sh\n"
			_, werr := unix.Write(w, []byte(line))
			unix.Close(w)
			res.Released = werr == nil
			break
		}
		if err != unix.ENXIO {
			res.Errors = append(res.Errors, "open fifo: "+err.Error())
			break
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", res.Target)); err != nil {
			res.Errors = append(res.Errors, "the target exited before blocking on the fifo")
			break
		}
		res.Probes = append(res.Probes[:1], peek(res.Target, "running"))
		time.Sleep(2 * time.Millisecond)
	}
	emit(res)
	time.Sleep(linger)
	return 0
}

// ---------------------------------------------------------------------------
// probe: what a path really is, seen from inside

// StatInfo is a (l)stat result.
type StatInfo struct {
	Exists     bool   `json:"exists"`
	Errno      int    `json:"errno,omitempty"`
	Type       string `json:"type,omitempty"`
	Major      uint32 `json:"major,omitempty"`
	Minor      uint32 `json:"minor,omitempty"`
	Ino        uint64 `json:"ino,omitempty"`
	Size       int64  `json:"size,omitempty"`
	LinkTarget string `json:"linkTarget,omitempty"`
}

// PathProbe is one entry printed by "probe".
type PathProbe struct {
	Path   string   `json:"path"`
	Lstat  StatInfo `json:"lstat"`
	Stat   StatInfo `json:"stat"`   // following symlinks
	FsType int64    `json:"fsType"` // statfs f_type, 0 if it failed
	// Read: open O_RDONLY|O_NONBLOCK and one read of up to 4 KiB (a
	// directory: the number of entries besides . and ..).
	Read    Try    `json:"read"`
	Bytes   int    `json:"bytes"`
	Head    string `json:"head,omitempty"`
	Entries int    `json:"entries"`
	// WriteOpen: open O_WRONLY|O_NONBLOCK, closed at once, never written.
	WriteOpen Try `json:"writeOpen"`
}

func statInfo(path string, follow bool) StatInfo {
	var st unix.Stat_t
	var err error
	if follow {
		err = unix.Stat(path, &st)
	} else {
		err = unix.Lstat(path, &st)
	}
	if err != nil {
		return StatInfo{Errno: errnoOf(err)}
	}
	si := StatInfo{Exists: true, Type: fileType(st.Mode), Ino: st.Ino, Size: st.Size}
	if si.Type == "char" || si.Type == "block" {
		si.Major, si.Minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
	if si.Type == "symlink" {
		si.LinkTarget, _ = readlinkRaw(path)
	}
	return si
}

// cmdProbe reports, for each PATH, what it is (lstat and stat), the file
// system it is on, whether it can be read and what, and whether it can be
// opened for writing. It never writes.
func cmdProbe(args []string) int {
	out := make([]PathProbe, 0, len(args))
	for _, path := range args {
		p := PathProbe{Path: path, Lstat: statInfo(path, false), Stat: statInfo(path, true)}
		var sfs unix.Statfs_t
		if unix.Statfs(path, &sfs) == nil {
			p.FsType = int64(sfs.Type)
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err == nil {
			if p.Stat.Type == "dir" {
				f := os.NewFile(uintptr(fd), path)
				names, rerr := f.Readdirnames(-1)
				f.Close()
				p.Entries = len(names)
				err = rerr
			} else {
				buf := make([]byte, 4096)
				n, rerr := unix.Read(fd, buf)
				unix.Close(fd)
				if n > 0 {
					p.Bytes = n
					p.Head = string(buf[:min(n, 64)])
				}
				err = rerr
			}
		}
		p.Read = tryOf(err)
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		p.WriteOpen = tryOf(err)
		out = append(out, p)
	}
	return emit(map[string]any{"probes": out})
}
