package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/linux"
)

// consoleSetup decides where a terminal's pty master goes: to the
// --console-socket the caller gave (containerd, conmon), or, in the
// foreground, to warren itself, which then relays the user's terminal.
type consoleSetup struct {
	send  *os.File // the socket the init sends the master on
	recv  *os.File // our end, when we relay (foreground without a socket)
	relay bool
}

func newConsole(path string, terminal, detach bool) (*consoleSetup, error) {
	if !terminal {
		return &consoleSetup{}, nil
	}
	if path != "" {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("--console-socket %s: connect: %w", path, err)
		}
		return &consoleSetup{send: os.NewFile(uintptr(fd), path)}, nil
	}
	if detach {
		return nil, fmt.Errorf("process.terminal: cannot allocate a tty for a detached process without --console-socket: %w", errdefs.ErrInvalid)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &consoleSetup{send: os.NewFile(uintptr(fds[0]), "console-send"), recv: os.NewFile(uintptr(fds[1]), "console-recv"), relay: true}, nil
}

// size returns the window size of our terminal when we relay, for
// process.consoleSize: the pty gets it before the process runs.
func (c *consoleSetup) size() *specs.Box {
	if !c.relay {
		return nil
	}
	ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return nil
	}
	return &specs.Box{Height: uint(ws.Row), Width: uint(ws.Col)}
}

func (c *consoleSetup) close() {
	if c.send != nil {
		c.send.Close()
	}
	if c.recv != nil {
		c.recv.Close()
	}
}

// relay receives the pty master and copies between it and our stdio, with
// our terminal (if stdin is one) in raw mode and window size changes
// forwarded. stop restores the terminal after the output is drained.
func (c *consoleSetup) startRelay() (stop func(), err error) {
	if !c.relay {
		return func() {}, nil
	}
	master, err := linux.RecvFd(c.recv)
	if err != nil {
		return nil, err
	}
	in := int(os.Stdin.Fd())
	var saved *linux.Termios
	if linux.IsTerminal(in) {
		_ = linux.CopyWinsize(in, int(master.Fd()))
		if saved, err = linux.MakeRaw(in); err != nil {
			master.Close()
			return nil, fmt.Errorf("put the terminal in raw mode: %w", err)
		}
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		for range winch {
			_ = linux.CopyWinsize(in, int(master.Fd()))
		}
	}()
	go func() { _, _ = io.Copy(master, os.Stdin) }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// EIO once every peer fd is closed: the process is gone.
		_, err := io.Copy(os.Stdout, master)
		if err != nil && !errors.Is(err, unix.EIO) {
			fmt.Fprintln(os.Stderr, "warren: terminal relay:", err)
		}
	}()
	return func() {
		wg.Wait()
		signal.Stop(winch)
		if saved != nil {
			_ = linux.RestoreTerminal(in, saved)
		}
		master.Close()
	}, nil
}
