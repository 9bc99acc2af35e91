// Package ociruntime is the engine's only way to run containers: it drives
// an OCI runtime binary (warren, runc, crun) through the command line all
// of them share, so the engine never links a runtime's internals and any
// of them can be swapped in per container.
//
// Every call runs the binary with the runtime's --root and a JSON --log
// file; a failure becomes an error carrying the runtime's own last message
// (from the log, else stderr), classified with errdefs where the message
// says what happened (no such container, already exists).
package ociruntime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// Runtime is one OCI runtime binary with its state directory.
type Runtime struct {
	// Path is the binary (a name is looked up in $PATH).
	Path string
	// Root is its --root state directory.
	Root string
	// Log is the file given as --log (--log-format json); default
	// Root/runtime.log.
	Log string
	// Args go before the command (global options a runtime needs, such
	// as crun's --cgroup-manager).
	Args []string
}

// State is what `state` and `list` report of a container.
type State struct {
	specs.State
	Created string `json:"created,omitempty"`
}

// IO is the standard streams and extra files of a runtime call that
// starts a process (create, exec); nil streams are /dev/null. They must
// be files (or terminals), not pipes the caller waits on: the process
// keeps them.
type IO struct {
	Stdin, Stdout, Stderr *os.File
	ExtraFiles            []*os.File
	// Wrapper, when set, runs the runtime command under it: the
	// command's argv is appended to Wrapper's.
	Wrapper []string
}

// CreateOpts are the inputs of Create.
type CreateOpts struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	IO            IO
}

// ExecOpts are the inputs of Exec.
type ExecOpts struct {
	PidFile       string
	ConsoleSocket string
	Detach        bool
	IO            IO
	// WaitDetached: Detach under an IO.Wrapper that waits for the
	// detached process and exits with its status, which Exec returns.
	WaitDetached bool
}

func (r *Runtime) logPath() string {
	if r.Log != "" {
		return r.Log
	}
	return filepath.Join(r.Root, "runtime.log")
}

// Error is a failed runtime call.
type Error struct {
	Command  string // the runtime command (create, start, ...)
	ID       string
	ExitCode int
	Message  string // the runtime's own words
	// Logged: Message came from the runtime's log (an error of the
	// runtime), not from stderr (which may be the process's own).
	Logged bool
	class  error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("exit status %d", e.ExitCode)
	}
	return fmt.Sprintf("runtime %s %s: %s", e.Command, e.ID, msg)
}

func (e *Error) Unwrap() error { return e.class }

// classify maps the runtime's words to an error class: the runtimes agree
// on little more than the words.
func classify(msg string) error {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "does not exist") || strings.Contains(m, "not found") || strings.Contains(m, "no such"):
		return errdefs.ErrNotFound
	case strings.Contains(m, "already exists") || strings.Contains(m, "exists already"):
		return errdefs.ErrExists
	case strings.Contains(m, "not running") || strings.Contains(m, "not stopped") || strings.Contains(m, "cannot") && strings.Contains(m, "state"):
		return errdefs.ErrState
	}
	return nil
}

// lastLogMessage returns the last "msg" of a JSON log written after off.
func lastLogMessage(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return ""
	}
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg != "" && (rec.Level == "" || rec.Level == "error" || rec.Level == "fatal" || rec.Level == "ERROR") {
			last = rec.Msg
		}
	}
	return last
}

// run runs one runtime command and returns its stdout.
func (r *Runtime) run(ctx context.Context, io *IO, command, id string, args ...string) ([]byte, error) {
	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		return nil, fmt.Errorf("runtime %s: state directory %s: %w", r.Path, r.Root, err)
	}
	log := r.logPath()
	var off int64
	if st, err := os.Stat(log); err == nil {
		off = st.Size()
	}
	full := append(append([]string{}, r.Args...), "--root", r.Root, "--log", log, "--log-format", "json", command)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, r.Path, full...)
	if io != nil && len(io.Wrapper) > 0 {
		cmd = exec.CommandContext(ctx, io.Wrapper[0], append(append(io.Wrapper[1:len(io.Wrapper):len(io.Wrapper)], r.Path), full...)...)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	// stderr goes to a file, never a pipe: a container created or a
	// process started detached keeps the runtime's stdio, and waiting for
	// a pipe's writers would wait for the container.
	errFile, err := os.CreateTemp(r.Root, "stderr-*")
	if err != nil {
		return nil, fmt.Errorf("runtime %s %s: %w", command, id, err)
	}
	defer os.Remove(errFile.Name())
	defer errFile.Close()
	cmd.Stderr = errFile
	if io != nil {
		// The same for stdout: a container's streams are files or nothing.
		cmd.Stdout = nil
		if io.Stdin != nil {
			cmd.Stdin = io.Stdin
		}
		if io.Stdout != nil {
			cmd.Stdout = io.Stdout
		}
		if io.Stderr != nil {
			cmd.Stderr = io.Stderr
		}
		cmd.ExtraFiles = io.ExtraFiles
	}
	err = cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	e := &Error{Command: command, ID: id, ExitCode: -1}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		e.ExitCode = ee.ExitCode()
	} else {
		return nil, fmt.Errorf("runtime %s %s: %w", command, id, err)
	}
	e.Message = lastLogMessage(log, off)
	e.Logged = e.Message != ""
	if e.Message == "" {
		b, _ := os.ReadFile(errFile.Name())
		e.Message = strings.TrimSpace(string(b))
	}
	e.class = classify(e.Message)
	return nil, e
}

// Create creates container id from a bundle; it is "created" when this
// returns, its process waiting for Start.
func (r *Runtime) Create(ctx context.Context, id string, o CreateOpts) error {
	args := []string{"--bundle", o.Bundle}
	if o.PidFile != "" {
		args = append(args, "--pid-file", o.PidFile)
	}
	if o.ConsoleSocket != "" {
		args = append(args, "--console-socket", o.ConsoleSocket)
	}
	_, err := r.run(ctx, &o.IO, "create", id, append(args, id)...)
	return err
}

// Start runs the process of a created container.
func (r *Runtime) Start(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "start", id, id)
	return err
}

// State returns a container's state.
func (r *Runtime) State(ctx context.Context, id string) (*State, error) {
	out, err := r.run(ctx, nil, "state", id, id)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("runtime state %s: %w", id, err)
	}
	return &st, nil
}

// List returns every container the runtime knows under its root.
func (r *Runtime) List(ctx context.Context) ([]State, error) {
	out, err := r.run(ctx, nil, "list", "", "--format", "json")
	if err != nil {
		return nil, err
	}
	var raw []struct {
		ID      string `json:"id"`
		Pid     int    `json:"pid"`
		Status  string `json:"status"`
		Bundle  string `json:"bundle"`
		Created string `json:"created"`
	}
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &raw); err != nil {
			return nil, fmt.Errorf("runtime list: %w", err)
		}
	}
	sts := make([]State, 0, len(raw))
	for _, c := range raw {
		sts = append(sts, State{State: specs.State{ID: c.ID, Pid: c.Pid, Status: specs.ContainerState(c.Status), Bundle: c.Bundle}, Created: c.Created})
	}
	return sts, nil
}

// Kill sends sig to the container's init, or with all to every process.
func (r *Runtime) Kill(ctx context.Context, id string, sig string, all bool) error {
	args := []string{}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, nil, "kill", id, append(args, id, sig)...)
	return err
}

// Delete removes a container; force kills it first if it still runs.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(ctx, nil, "delete", id, append(args, id)...)
	return err
}

// Pause freezes every process of the container; Resume thaws them.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "pause", id, id)
	return err
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "resume", id, id)
	return err
}

// Exec runs p in the running container. Without Detach it returns when p
// exits, with its exit status; detached, when p has started (status 0).
func (r *Runtime) Exec(ctx context.Context, id string, p *specs.Process, o ExecOpts) (int, error) {
	f, err := os.CreateTemp(r.Root, "exec-process-*.json")
	if err != nil {
		return -1, err
	}
	defer os.Remove(f.Name())
	if err := json.NewEncoder(f).Encode(p); err != nil {
		f.Close()
		return -1, err
	}
	f.Close()
	args := []string{"--process", f.Name()}
	if o.Detach {
		args = append(args, "--detach")
	}
	if o.PidFile != "" {
		args = append(args, "--pid-file", o.PidFile)
	}
	if o.ConsoleSocket != "" {
		args = append(args, "--console-socket", o.ConsoleSocket)
	}
	_, err = r.run(ctx, &o.IO, "exec", id, append(args, id)...)
	var e *Error
	if errors.As(err, &e) && (!o.Detach || o.WaitDetached) && !e.Logged && e.ExitCode > 0 {
		// The process ran and exited non-zero: that is its status,
		// not a runtime failure.
		return e.ExitCode, nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// ReadPidFile reads a pid file a runtime wrote.
func ReadPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Ps returns the pids of the container's processes (`ps --format json`).
func (r *Runtime) Ps(ctx context.Context, id string) ([]int, error) {
	out, err := r.run(ctx, nil, "ps", id, "--format", "json", id)
	if err != nil {
		return nil, err
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, fmt.Errorf("runtime ps %s: %w", id, err)
	}
	return pids, nil
}
