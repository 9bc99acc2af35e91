//go:build linux

package engines

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ptyRun is a client (ctr -t, crictl exec -it) running with a real
// pseudo-terminal as its controlling terminal and stdio, the way a person
// at a terminal runs it: those clients refuse -t when stdin is not a tty.
type ptyRun struct {
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	read   chan struct{} // closed when the master reads EOF/EIO
	exited chan struct{}
	err    error
}

// openPTY returns a pty master and its slave, with the given window size.
func openPTY(rows, cols uint16) (*os.File, *os.File, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		m.Close()
		s.Close()
		return nil, nil, fmt.Errorf("TIOCSWINSZ: %w", err)
	}
	return m, s, nil
}

// startPTY starts name args with a new session whose controlling terminal
// is a fresh pty (rows×cols).
func startPTY(t *testing.T, rows, cols uint16, name string, args ...string) *ptyRun {
	t.Helper()
	m, s, err := openPTY(rows, cols)
	if err != nil {
		t.Fatalf("opening a pty: %v", err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		m.Close()
		s.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	s.Close()
	t.Logf("$ %s %s   (on a %dx%d pty)", filepath.Base(name), strings.Join(args, " "), rows, cols)
	p := &ptyRun{master: m, cmd: cmd, read: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			if n > 0 {
				p.mu.Lock()
				p.out.Write(buf[:n])
				p.mu.Unlock()
			}
			if err != nil {
				close(p.read)
				return
			}
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		m.Close()
	})
	return p
}

func (p *ptyRun) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitOutput waits until the terminal has shown want.
func (p *ptyRun) waitOutput(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.output(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal did not show %q within %v; it shows:\n%q", want, timeout, p.output())
		}
		select {
		case <-p.exited:
			// Give the reader a moment to drain what is left.
			select {
			case <-p.read:
			case <-time.After(time.Second):
			}
			if !strings.Contains(p.output(), want) {
				t.Fatalf("%s exited (%v) before the terminal showed %q; it shows:\n%q", filepath.Base(p.cmd.Path), p.err, want, p.output())
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *ptyRun) write(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		t.Fatalf("writing to the pty: %v", err)
	}
}

// wait waits for the client to exit and returns its exit status.
func (p *ptyRun) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case <-p.exited:
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("%s did not exit within %v; the terminal shows:\n%q", filepath.Base(p.cmd.Path), timeout, p.output())
	}
	select {
	case <-p.read:
	case <-time.After(2 * time.Second):
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatalf("%s: %v", filepath.Base(p.cmd.Path), p.err)
	}
	code := p.cmd.ProcessState.ExitCode()
	t.Logf("%s exited %d; the terminal showed:\n%s", filepath.Base(p.cmd.Path), code, p.output())
	return code
}
