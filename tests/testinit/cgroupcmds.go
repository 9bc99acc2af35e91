package main

import (
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// cmdMknodDev makes a character device node MAJOR:MINOR at PATH (devices
// cgroup tests: mknod needs the 'm' permission for that device).
func cmdMknodDev(args []string) int {
	maj, err1 := strconv.ParseUint(args[1], 10, 32)
	min, err2 := strconv.ParseUint(args[2], 10, 32)
	if err1 != nil || err2 != nil {
		return fail("mknoddev: bad major/minor %q %q", args[1], args[2])
	}
	res := OpResult{Path: args[0]}
	if err := unix.Mknod(args[0], unix.S_IFCHR|0o666, int(unix.Mkdev(uint32(maj), uint32(min)))); err != nil {
		res.Error = (&os.PathError{Op: "mknod", Path: args[0], Err: err}).Error()
		res.Errno = errnoOf(err)
	} else {
		res.OK = true
	}
	return emit(res)
}

// cmdOpen opens PATH read-write (falling back to read-only for read-only
// files) and reports whether the kernel allowed it.
func cmdOpen(args []string) int {
	res := OpResult{Path: args[0]}
	fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err == unix.EROFS || err == unix.EACCES {
		fd, err = unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		res.Error = (&os.PathError{Op: "open", Path: args[0], Err: err}).Error()
		res.Errno = errnoOf(err)
	} else {
		unix.Close(fd)
		res.OK = true
	}
	return emit(res)
}

// cmdAlloc allocates and touches MIB mebibytes, then reports. Under a
// memory limit the OOM killer ends it before it can report.
func cmdAlloc(args []string) int {
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		return fail("alloc: bad size %q", args[0])
	}
	mem, err := unix.Mmap(-1, 0, n<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fail("alloc: mmap %d MiB: %v", n, err)
	}
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	return emit(struct {
		MiB int  `json:"mib"`
		OK  bool `json:"ok"`
	}{n, true})
}

// cmdForks starts up to N children (each sleeping) and reports how many
// started before fork failed (pids.max), then kills them.
func cmdForks(args []string) int {
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		return fail("forks: bad count %q", args[0])
	}
	// A single-threaded child (busybox sleep) counts as one task against
	// pids.max; a Go child would count its runtime threads too.
	prog, argv := "/bin/sleep", []string{"sleep", "30"}
	if _, err := os.Stat(prog); err != nil {
		prog, argv = "/proc/self/exe", []string{"testinit", "sleep", "30"}
	}
	res := struct {
		Started int    `json:"started"`
		Error   string `json:"error"`
		Errno   int    `json:"errno"`
	}{}
	var pids []int
	for i := 0; i < n; i++ {
		pid, err := syscall.ForkExec(prog, argv, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		if err != nil {
			res.Error = err.Error()
			res.Errno = errnoOf(err)
			break
		}
		pids = append(pids, pid)
		res.Started++
	}
	for _, p := range pids {
		unix.Kill(p, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(p, &ws, 0, nil)
	}
	return emit(res)
}
