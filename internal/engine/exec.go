package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/images"
	"github.com/warren-runtime/warren/internal/monitor"
	"github.com/warren-runtime/warren/internal/ociruntime"
)

// Stdio is the client's side of an attach or exec.
type Stdio struct {
	Stdin          io.Reader // nil: none
	Stdout, Stderr io.Writer
	Resize         <-chan [2]uint16
}

// Exec runs a process in a running container and returns its exit code.
// Its streams are the caller's; with a terminal the engine holds the
// pty master for the call's duration.
func (e *Engine) Exec(ctx context.Context, ref string, cfg api.ExecConfig, io_ Stdio) (int, error) {
	if len(cfg.Cmd) == 0 {
		return -1, fmt.Errorf("exec: no command: %w", errdefs.ErrInvalid)
	}
	r, err := e.get(ref)
	if err != nil {
		return -1, err
	}
	if r.State.Status != api.StateRunning {
		return -1, fmt.Errorf("container %s is %s, not running: %w", r.Name, r.State.Status, errdefs.ErrState)
	}
	b, err := os.ReadFile(filepath.Join(r.Dir, "config.json"))
	if err != nil {
		return -1, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return -1, fmt.Errorf("container %s: config.json: %w", r.Name, err)
	}
	p := *spec.Process
	p.Args = cfg.Cmd
	p.Terminal = cfg.Tty
	p.Env = slices.Clone(p.Env)
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		p.Env = slices.DeleteFunc(p.Env, func(old string) bool { o, _, _ := strings.Cut(old, "="); return o == k })
		p.Env = append(p.Env, kv)
	}
	if cfg.WorkingDir != "" {
		p.Cwd = cfg.WorkingDir
	}
	if cfg.User != "" {
		u, err := images.ResolveUser(spec.Root.Path, cfg.User)
		if err != nil {
			return -1, err
		}
		p.User = u
	}
	if cfg.Privileged {
		p.Capabilities = &specs.LinuxCapabilities{Bounding: allCaps, Effective: allCaps, Permitted: allCaps}
	}
	p.ConsoleSize = nil
	rt := e.runtimeOf(r)
	e.emit("container", "exec_start", r.ID, r.Name, map[string]string{"cmd": strings.Join(cfg.Cmd, " ")})
	if cfg.Tty {
		return e.execTty(ctx, rt, r.ID, &p, cfg.OpenStdin, io_)
	}
	return e.execPipes(ctx, rt, r.ID, &p, cfg.OpenStdin, io_)
}

func (e *Engine) execPipes(ctx context.Context, rt *ociruntime.Runtime, id string, p *specs.Process, openStdin bool, s Stdio) (int, error) {
	var files ociruntime.IO
	var closeAfter []*os.File
	var copies sync.WaitGroup
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}()
	out := func(w io.Writer) (*os.File, error) {
		if w == nil {
			return nil, nil
		}
		rd, wr, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		closeAfter = append(closeAfter, wr)
		copies.Add(1)
		go func() {
			defer copies.Done()
			defer rd.Close()
			io.Copy(w, rd)
		}()
		return wr, nil
	}
	var err error
	if files.Stdout, err = out(s.Stdout); err != nil {
		return -1, err
	}
	if files.Stderr, err = out(s.Stderr); err != nil {
		return -1, err
	}
	if openStdin && s.Stdin != nil {
		rd, wr, err := os.Pipe()
		if err != nil {
			return -1, err
		}
		closeAfter = append(closeAfter, rd)
		files.Stdin = rd
		go func() {
			io.Copy(wr, s.Stdin)
			wr.Close()
		}()
	}
	code, err := rt.Exec(ctx, id, p, ociruntime.ExecOpts{IO: files})
	for _, f := range closeAfter {
		f.Close()
	}
	closeAfter = nil
	// Output still in the pipes is delivered; a process the exec left
	// behind holding them does not hold the call forever.
	done := make(chan struct{})
	go func() { copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return code, err
}

func (e *Engine) execTty(ctx context.Context, rt *ociruntime.Runtime, id string, p *specs.Process, openStdin bool, s Stdio) (int, error) {
	sock := filepath.Join(e.cfg.RunRoot, "exec-"+newID()[:16]+".sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return -1, fmt.Errorf("exec console socket %s: %w", sock, err)
	}
	defer os.Remove(sock)
	defer l.Close()
	masterCh := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			masterCh <- nil
			return
		}
		defer c.Close()
		cf, err := c.File()
		if err != nil {
			masterCh <- nil
			return
		}
		defer cf.Close()
		f, err := monitor.RecvConsole(cf)
		if err != nil {
			masterCh <- nil
			return
		}
		masterCh <- f
	}()
	var relay sync.WaitGroup
	var master *os.File
	stopRelay := make(chan struct{})
	relay.Add(1)
	go func() {
		defer relay.Done()
		select {
		case master = <-masterCh:
		case <-stopRelay:
			return
		}
		if master == nil {
			return
		}
		if openStdin && s.Stdin != nil {
			go io.Copy(master, s.Stdin)
		}
		if s.Resize != nil {
			go func() {
				for sz := range s.Resize {
					unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz[0], Col: sz[1]})
				}
			}()
		}
		// Until the pty's last user goes (EIO).
		io.Copy(s.Stdout, master)
	}()
	// Detached with a pid file: runc takes a console socket only so.
	// The monitor binary's --exec-wait runs the runtime as a child
	// subreaper, inherits the process when the runtime exits, and exits
	// with its status. (warrend itself must not be a subreaper: an
	// orphan from the container's pid namespace reparented to it and
	// never reaped would keep that namespace's init from ever exiting.)
	pidFile := sock + ".pid"
	defer os.Remove(pidFile)
	code, err := rt.Exec(ctx, id, p, ociruntime.ExecOpts{ConsoleSocket: sock, Detach: true, PidFile: pidFile, WaitDetached: true,
		IO: ociruntime.IO{Wrapper: []string{e.cfg.MonitorPath, "--exec-wait", pidFile, "--"}}})
	close(stopRelay)
	done := make(chan struct{})
	go func() { relay.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	if master != nil {
		master.Close()
	}
	return code, err
}

// Attach connects the caller to the container's streams through its
// monitor and returns its exit status when it ends.
func (e *Engine) Attach(ctx context.Context, ref string, s Stdio) (*api.WaitResponse, error) {
	r, err := e.get(ref)
	if err != nil {
		return nil, err
	}
	switch r.State.Status {
	case api.StateRunning, api.StatePaused, api.StateStarting:
	default:
		return nil, fmt.Errorf("container %s is %s: start it to attach: %w", r.Name, r.State.Status, errdefs.ErrState)
	}
	conn, err := monitor.Dial(r.Dir)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stdin := s.Stdin
	if !r.Config.OpenStdin && !r.Config.Tty {
		stdin = nil
	}
	st, err := conn.Attach(ctx, stdin, s.Stdout, s.Stderr, s.Resize)
	if err != nil {
		return nil, err
	}
	return &api.WaitResponse{ExitCode: st.Code}, nil
}

// Logs writes the container's log lines to fn: the last tail (<0: all),
// then with follow new ones until the container's run ends.
func (e *Engine) Logs(ctx context.Context, ref string, tail int, follow bool, fn func(api.LogLine) error) error {
	r, err := e.get(ref)
	if err != nil {
		return err
	}
	stop := func() bool {
		cur, err := e.db.Get(r.ID)
		if err != nil {
			return true
		}
		switch cur.State.Status {
		case api.StateRunning, api.StatePaused, api.StateStarting:
			return false
		}
		return true
	}
	return monitor.ReadLogs(ctx, r.Dir, tail, follow, stop, func(l monitor.LogEntry) error {
		return fn(api.LogLine{Time: l.Time, Stream: l.Stream, Log: l.Log})
	})
}
