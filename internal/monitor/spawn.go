package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spawnGiveUpTimeout bounds how long Spawn waits, after its context ended,
// for the monitor to remove what it created and exit before killing it.
const spawnGiveUpTimeout = 10 * time.Second

// spawnError is a creation failure reported by the monitor: the runtime's
// message, testable for its errdefs class.
type spawnError struct {
	msg   string
	class error
}

func (e *spawnError) Error() string { return e.msg }
func (e *spawnError) Unwrap() error { return e.class }

// Spawn starts `binary` (the warren-monitor executable) for cfg, detached in its own session
// (Setsid), stdio /dev/null, and waits until the container is created (runtime create done)
// or creation failed. It returns the monitor's pid and the container init's pid. On failure
// the error carries the runtime's message (wrap ociruntime's error text; classify with errdefs
// when possible) and no monitor is left running. Spawn reaps the monitor process in a
// background goroutine (the caller may exit earlier; then init reparents it).
//
// When ctx ends before the container is created, the monitor deletes what
// the runtime made and exits; Spawn waits for that (at most 10 s, then
// kills it) and returns ctx's error.
func Spawn(ctx context.Context, binary string, cfg Config) (monitorPid, initPid int, err error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("spawn monitor for %s: %w", cfg.ID, err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("spawn monitor for %s: control socket: %w", cfg.ID, err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "monitor-control")
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		theirs.Close()
		return 0, 0, fmt.Errorf("spawn monitor for %s: control socket: %w", cfg.ID, err)
	}
	ctl := os.NewFile(uintptr(fds[0]), "monitor-control")
	defer ctl.Close()

	cmd := exec.Command(binary)
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{theirs} // fd 3 in the monitor
	// Its own session: no terminal signal of ours (SIGHUP, ^C to the
	// foreground group) reaches it, and it outlives our process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("spawn monitor %s for %s: %w", binary, cfg.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	// On failure the monitor is gone before Spawn returns.
	waitGone := func() {
		select {
		case <-exited:
		case <-time.After(spawnGiveUpTimeout):
			cmd.Process.Kill()
			<-exited
		}
	}

	// ctx ending interrupts the wait for the answer, not the ack.
	var ackMu sync.Mutex
	acking := false
	stop := context.AfterFunc(ctx, func() {
		ackMu.Lock()
		if !acking {
			ctl.SetDeadline(time.Now())
		}
		ackMu.Unlock()
	})
	defer stop()
	line, err := func() ([]byte, error) {
		if _, err := ctl.Write(append(data, '\n')); err != nil {
			return nil, err
		}
		return bufio.NewReader(ctl).ReadBytes('\n')
	}()
	if err != nil {
		// Closing our end is the monitor's cue to clean up and exit.
		ctl.Close()
		waitGone()
		if ctx.Err() != nil {
			return 0, 0, fmt.Errorf("create container %s: %w", cfg.ID, ctx.Err())
		}
		return 0, 0, fmt.Errorf("create container %s: monitor exited before the container was created (%s)", cfg.ID, cmd.ProcessState)
	}
	var r reply
	if err := json.Unmarshal(line, &r); err != nil || (r.Error == "" && r.Pid <= 0) {
		ctl.Close()
		waitGone()
		return 0, 0, fmt.Errorf("create container %s: bad answer from the monitor: %q", cfg.ID, line)
	}
	if r.Error != "" {
		ctl.Close()
		waitGone()
		e := &spawnError{msg: r.Error}
		for _, c := range classes {
			if c.name == r.Class {
				e.class = c.err
			}
		}
		return 0, 0, e
	}
	// The ack: from here the container is the caller's, even if ctx
	// ends now.
	ackMu.Lock()
	acking = true
	ctl.SetDeadline(time.Time{})
	ackMu.Unlock()
	if _, err := ctl.Write([]byte{'k'}); err != nil {
		ctl.Close()
		waitGone()
		return 0, 0, fmt.Errorf("create container %s: monitor exited after creating it: %w", cfg.ID, err)
	}
	return cmd.Process.Pid, r.Pid, nil
}
