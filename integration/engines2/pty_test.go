//go:build linux

package engines2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The window size the test's terminal reports; a tty process in the
// container should see the same (engines copy it to the container's pty).
const ptyRows, ptyCols = 37, 101

// ttyScript prints the exec'd process's terminal and its size. The size is
// asked for up to 20 times: an engine may set it just after the process
// started, and busybox's first `stty size` on a fresh exec pty fails now and
// then ("standard input: No child processes", with runc as well).
var ttyScript = fmt.Sprintf(`tty; i=0; while [ $i -lt 20 ]; do s=$(stty size 2>&1); [ "$s" = "%d %d" ] && break; i=$((i+1)); sleep 0.1; done; echo "size: $s"; echo tty-done`, ptyRows, ptyCols)

// assertTTYOutput checks what ttyScript printed through a terminal.
func assertTTYOutput(t *testing.T, r result) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^/dev/pts/\d+$`).MatchString(r.stdout) {
		t.Errorf("want the process's stdin to be a pty (/dev/pts/N): %s", r)
	}
	if !strings.Contains(r.stdout, "tty-done") {
		t.Errorf("want the output through the terminal: %s", r)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("size: %d %d", ptyRows, ptyCols)) {
		t.Errorf("want the container's terminal sized like the client's (%d %d): %s", ptyRows, ptyCols, r)
	}
}

// openPTY opens a new pseudo-terminal pair with the test's window size.
func openPTY() (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(mfd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	// TIOCGPTPEER opens the peer without a path lookup through /dev/pts.
	r1, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	sfd := int(r1)
	if errno != 0 {
		// Older kernels: fall back to the name.
		n, err2 := unix.IoctlGetInt(mfd, unix.TIOCGPTN)
		if err2 != nil {
			master.Close()
			return nil, nil, fmt.Errorf("ptsname: %w", err2)
		}
		sfd, err = unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			master.Close()
			return nil, nil, err
		}
	}
	slave = os.NewFile(uintptr(sfd), "pty-slave")
	if err := unix.IoctlSetWinsize(sfd, unix.TIOCSWINSZ, &unix.Winsize{Row: ptyRows, Col: ptyCols}); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("TIOCSWINSZ: %w", err)
	}
	return master, slave, nil
}

// runInPTY runs a command as a terminal client would: in a new session whose
// controlling terminal is a fresh pty, with stdin, stdout and stderr on it.
// It returns what appeared on the terminal, without carriage returns.
func runInPTY(env []string, name string, args ...string) result {
	r := result{cmdline: name + " " + strings.Join(args, " ") + "   (in a pty)", code: -1}
	master, slave, err := openPTY()
	if err != nil {
		r.err = err
		return r
	}
	defer master.Close()

	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		slave.Close()
		r.err = err
		return r
	}
	slave.Close()

	var out bytes.Buffer
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil { // EIO once no process holds the slave open
				return
			}
		}
	}()
	err = cmd.Wait()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		// A daemon-side process still holds the slave (it should not):
		// take what arrived.
	}
	mu.Lock()
	// Each pty on the way (the container's, then the test's unless the
	// client made it raw) may turn "\n" into "\r\n".
	r.stdout = strings.ReplaceAll(out.String(), "\r", "")
	mu.Unlock()
	r.err = err
	var ee *exec.ExitError
	if err == nil {
		r.code = 0
	} else if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v: %w", cmdTimeout, err)
	}
	return r
}
