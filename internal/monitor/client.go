package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Conn is a connection to a running monitor's socket Dir/monitor.sock.
// One Conn serves one Wait or one Attach.
type Conn struct {
	dir string
	f   *os.File
	r   *bufio.Reader
	wmu sync.Mutex // frames from the stdin and resize goroutines interleave whole
}

// Dial connects to the monitor of the container whose directory is dir;
// errdefs.ErrNotFound (wrapped) when no monitor listens.
func Dial(dir string) (*Conn, error) {
	f, err := dialUnix(dir, sockName)
	if err != nil {
		return nil, err
	}
	return &Conn{dir: dir, f: f, r: bufio.NewReaderSize(f, 32<<10)}, nil
}

// Close closes the connection; the container is not affected.
func (c *Conn) Close() error { return c.f.Close() }

func (c *Conn) send(typ byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.f.Write(appendFrame(make([]byte, 0, frameHeaderLen+len(payload)), typ, payload))
	return err
}

// interruptOn makes ctx ending interrupt the connection's I/O.
func (c *Conn) interruptOn(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.f.SetDeadline(time.Now()) })
}

// Wait blocks until the container exits and returns its status (the monitor sends it to every
// connected client). If the monitor goes away without sending it, Wait falls back to ReadExit(dir).
func (c *Conn) Wait(ctx context.Context) (ExitStatus, error) {
	defer c.interruptOn(ctx)()
	if err := c.send(frameHello, []byte{protoVersion, 0}); err != nil {
		return c.lost(ctx, err)
	}
	var buf []byte
	for {
		typ, p, err := readFrame(c.r, &buf)
		if err != nil {
			return c.lost(ctx, err)
		}
		if typ == frameExit {
			return decodeExit(c.dir, p)
		}
	}
}

func decodeExit(dir string, p []byte) (ExitStatus, error) {
	var st ExitStatus
	if err := json.Unmarshal(p, &st); err != nil {
		return ExitStatus{}, fmt.Errorf("monitor %s: bad exit status %q: %w", filepath.Join(dir, sockName), p, err)
	}
	return st, nil
}

// lost handles a connection that ended without an exit frame: the
// monitor died, or exited between writing Dir/exit and telling us.
func (c *Conn) lost(ctx context.Context, cause error) (ExitStatus, error) {
	if ctx.Err() != nil {
		return ExitStatus{}, ctx.Err()
	}
	st, err := ReadExit(c.dir)
	if err != nil {
		return ExitStatus{}, fmt.Errorf("monitor %s went away without the exit status (%v): %w", filepath.Join(c.dir, sockName), cause, err)
	}
	return *st, nil
}

// Attach streams: bytes from stdin go to the container's stdin (if cfg.Stdin or Terminal);
// container output goes to stdout/stderr (with a terminal, all output is stdout) from the moment
// of attaching (no replay); when stdin reaches EOF and the container has no terminal, the
// container's stdin is closed (docker's stdin-once); resize delivers terminal sizes (rows, cols)
// to the pty (TIOCSWINSZ on the master). Attach returns when the container exits, with its status,
// after all output has been delivered. stdin/resize may be nil.
//
// A Read of stdin in progress when Attach returns cannot be interrupted:
// its goroutine ends at its next send, which fails once the Conn is
// closed. A failed write to stdout or stderr ends Attach with that error
// (the client is gone: the container goes on).
func (c *Conn) Attach(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, resize <-chan [2]uint16) (ExitStatus, error) {
	return c.AttachReady(ctx, stdin, stdout, stderr, resize, nil)
}

// AttachReady is Attach that calls ready (if not nil) once the monitor
// has registered the client: output the container writes after that
// reaches stdout/stderr. An engine attaching before it starts the
// container waits for ready so that nothing is missed.
func (c *Conn) AttachReady(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, resize <-chan [2]uint16, ready func()) (ExitStatus, error) {
	defer c.interruptOn(ctx)()
	if err := c.send(frameHello, []byte{protoVersion, helloAttach}); err != nil {
		return c.lost(ctx, err)
	}
	done := make(chan struct{})
	defer close(done)
	if resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-resize:
					if !ok {
						return
					}
					if c.send(frameResize, resizePayload(sz[0], sz[1])) != nil {
						return
					}
				case <-done:
					return
				}
			}
		}()
	}
	if stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					if c.send(frameStdin, buf[:n]) != nil {
						return
					}
				}
				if errors.Is(err, io.EOF) {
					c.send(frameCloseStdin, nil)
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	var buf []byte
	for {
		typ, p, err := readFrame(c.r, &buf)
		if err != nil {
			return c.lost(ctx, err)
		}
		switch typ {
		case frameStdout:
			_, err = stdout.Write(p)
		case frameStderr:
			_, err = stderr.Write(p)
		case frameReady:
			if ready != nil {
				ready()
				ready = nil
			}
		case frameExit:
			return decodeExit(c.dir, p)
		}
		if err != nil {
			return ExitStatus{}, fmt.Errorf("attach to %s: %w", filepath.Join(c.dir, sockName), err)
		}
	}
}
