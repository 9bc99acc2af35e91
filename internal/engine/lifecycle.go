package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/monitor"
	"github.com/warren-runtime/warren/internal/store"
)

// Start runs a created or exited container: a monitor creates it through
// the runtime (and from then on owns its stdio and exit status), then the
// runtime starts it. Starting a running container is a no-op.
func (e *Engine) Start(ctx context.Context, ref string) error {
	r, unlock, err := e.locked(ref)
	if err != nil {
		return err
	}
	defer unlock()
	e.cancelRestart(r.ID)
	_, err = e.start(ctx, r, nil)
	return err
}

// StartAttached starts a created or exited container with s attached
// to its streams before its process runs (nothing it writes is missed)
// and returns how it ended.
func (e *Engine) StartAttached(ctx context.Context, ref string, s Stdio) (*api.WaitResponse, error) {
	r, unlock, err := e.locked(ref)
	if err != nil {
		return nil, err
	}
	if r.State.Status == api.StateRunning || r.State.Status == api.StatePaused {
		unlock()
		return nil, fmt.Errorf("container %s is already running: attach to it instead: %w", r.Name, errdefs.ErrState)
	}
	e.cancelRestart(r.ID)
	res, err := e.start(ctx, r, &s)
	// Closed when the engine has recorded this run's end (and removed
	// an --rm container).
	ended := e.exitChan(r.ID)
	unlock()
	if err != nil {
		return nil, err
	}
	out := <-res
	if out.err != nil {
		return nil, out.err
	}
	select {
	case <-ended:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// The code is the monitor's; the record (if not removed) adds
	// whether the OOM killer ended it.
	resp := &api.WaitResponse{ExitCode: out.st.Code}
	if cur, err := e.db.Get(r.ID); err == nil {
		resp.OOMKilled, resp.Error = cur.State.OOMKilled, cur.State.Error
	}
	return resp, nil
}

type attachResult struct {
	st  monitor.ExitStatus
	err error
}

// start runs r, with attach connected before its process runs when
// given; the caller holds its lock.
func (e *Engine) start(ctx context.Context, r *store.Record, attach *Stdio) (<-chan attachResult, error) {
	switch r.State.Status {
	case api.StateRunning, api.StatePaused:
		return nil, nil
	case api.StateCreated, api.StateExited:
	default:
		return nil, fmt.Errorf("container %s is %s: %w", r.Name, r.State.Status, errdefs.ErrState)
	}
	if !r.Infra {
		img, err := e.images.Get(r.Image)
		if err != nil {
			return nil, fmt.Errorf("container %s: image %s: %w", r.Name, r.Image, err)
		}
		if _, err := e.mountRootfs(r, img); err != nil {
			return nil, err
		}
	}
	rt := e.runtimeOf(r)
	// What an earlier run left: the runtime's record (normally deleted
	// when that run ended: one runtime exec saved per start when it
	// was), the monitor's files.
	if _, err := os.Stat(filepath.Join(r.RuntimeRoot, r.ID)); err == nil {
		rt.Delete(ctx, r.ID, true)
	}
	for _, f := range []string{"exit", "pid"} {
		os.Remove(filepath.Join(r.Dir, f))
	}
	r.State = api.ContainerState{Status: api.StateStarting, RestartCount: r.State.RestartCount}
	if err := e.db.Put(r); err != nil {
		return nil, err
	}
	// From here a crash leaves "starting": Recover asks the monitor.
	e.exitChan(r.ID)
	if err := e.connect(r); err != nil {
		e.startFailed(r, err)
		return nil, fmt.Errorf("container %s: network: %w", r.Name, err)
	}
	if err := e.refreshPodPid(r); err != nil {
		e.startFailed(r, err)
		return nil, fmt.Errorf("container %s: %w", r.Name, err)
	}
	mpid, pid, err := monitor.Spawn(ctx, e.cfg.MonitorPath, monitor.Config{
		ID: r.ID, Bundle: r.Bundle, Dir: r.Dir,
		RuntimePath: r.RuntimePath, RuntimeRoot: r.RuntimeRoot, RuntimeArgs: r.RuntimeArgs,
		Terminal: r.Config.Tty, Stdin: r.Config.OpenStdin,
		LogMaxSize: e.cfg.LogMaxSize, LogMaxFiles: e.cfg.LogMaxFiles,
	})
	if err != nil {
		e.startFailed(r, err)
		return nil, fmt.Errorf("container %s: %w", r.Name, err)
	}
	fault("start:spawned")
	// Recorded with "running" below, not now: recovery of a "starting"
	// record asks the monitor and the runtime, not the record.
	r.State.Pid, r.State.MonitorPid = pid, mpid
	conn, err := monitor.Dial(r.Dir)
	if err != nil {
		rt.Delete(ctx, r.ID, true)
		e.startFailed(r, err)
		return nil, fmt.Errorf("container %s: monitor: %w", r.Name, err)
	}
	var res chan attachResult
	if attach != nil {
		if res, err = e.attachEarly(ctx, r, attach); err != nil {
			conn.Close()
			rt.Delete(context.Background(), r.ID, true)
			e.startFailed(r, err)
			return nil, fmt.Errorf("container %s: attach: %w", r.Name, err)
		}
	}
	if err := rt.Start(ctx, r.ID); err != nil {
		conn.Close()
		rt.Delete(context.Background(), r.ID, true)
		e.startFailed(r, err)
		return nil, fmt.Errorf("container %s: %w", r.Name, err)
	}
	fault("start:started")
	r.State.Status = api.StateRunning
	r.State.StartedAt = time.Now().UTC()
	if err := e.db.Put(r); err != nil {
		e.log.Error("recording a start", "id", r.ID, "err", err)
	}
	e.emit("container", "start", r.ID, r.Name, nil)
	e.watch(r.ID, conn)
	return res, nil
}

// attachEarly connects s to the container's monitor and returns once
// the monitor has registered it (the process has not run yet).
func (e *Engine) attachEarly(ctx context.Context, r *store.Record, s *Stdio) (chan attachResult, error) {
	conn, err := monitor.Dial(r.Dir)
	if err != nil {
		return nil, err
	}
	stdin := s.Stdin
	if !r.Config.OpenStdin && !r.Config.Tty {
		stdin = nil
	}
	ready := make(chan struct{})
	res := make(chan attachResult, 1)
	go func() {
		defer conn.Close()
		st, err := conn.AttachReady(context.WithoutCancel(ctx), stdin, s.Stdout, s.Stderr, s.Resize, func() { close(ready) })
		res <- attachResult{st, err}
	}()
	select {
	case <-ready:
		return res, nil
	case out := <-res:
		if out.err == nil {
			out.err = fmt.Errorf("the monitor ended the attach before the start")
		}
		return nil, out.err
	}
}

// startFailed records a start that failed: an exited container (code
// 127, the error kept), or none at all with --rm, as docker does. Caller
// holds the lock.
func (e *Engine) startFailed(r *store.Record, err error) {
	e.finishRun(r, api.ContainerState{Status: api.StateExited, ExitCode: 127, Error: err.Error(), FinishedAt: time.Now().UTC()})
	e.emit("container", "die", r.ID, r.Name, map[string]string{"exitCode": "127"})
	if r.Config.AutoRemove {
		if err := e.remove(r); err != nil {
			e.log.Error("removing an --rm container that failed to start", "id", r.ID, "err", err)
		}
	}
}

// watch waits (in the background) for the container's exit through its
// monitor and handles it.
func (e *Engine) watch(id string, conn *monitor.Conn) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer conn.Close()
		st, err := conn.Wait(e.ctx)
		if e.ctx.Err() != nil {
			return // the engine is shutting down: the next one recovers it
		}
		if err != nil {
			e.log.Warn("container's monitor went away without an exit status", "id", id, "err", err)
			st = monitor.ExitStatus{Code: 255, FinishedAt: time.Now().UTC()}
		}
		e.exited(id, st, errString(err))
	}()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// exited records the end of a run and applies the restart policy.
func (e *Engine) exited(id string, st monitor.ExitStatus, why string) {
	unlock := e.lock(id)
	r, err := e.db.Get(id)
	if err != nil {
		unlock()
		e.signalExit(id)
		return
	}
	switch r.State.Status {
	case api.StateRunning, api.StatePaused, api.StateStarting:
	default:
		unlock()
		return
	}
	oom := oomKilled(r.CgroupsPath)
	startedAt := r.State.StartedAt
	// Waiters wake at the end: after the removal of an --rm container,
	// so `run --rm` returns when it is gone.
	defer e.signalExit(id)
	e.endRun(r, api.ContainerState{Status: api.StateExited, ExitCode: st.Code, OOMKilled: oom, Error: why,
		StartedAt: startedAt, FinishedAt: st.FinishedAt, StoppedByUser: r.State.StoppedByUser})
	attrs := map[string]string{"exitCode": strconv.Itoa(st.Code)}
	if oom {
		e.emit("container", "oom", id, r.Name, nil)
	}
	e.emit("container", "die", id, r.Name, attrs)
	restart, delay := e.shouldRestart(r, startedAt, st.FinishedAt)
	unlock()
	switch {
	case restart:
		e.scheduleRestart(id, delay)
	case r.Config.AutoRemove:
		if err := e.Remove(context.Background(), id, true); err != nil && !errdefs.IsNotFound(err) {
			e.log.Error("removing an exited --rm container", "id", id, "err", err)
		}
	}
}

// finishRun ends a run: the runtime forgets the container, its rootfs is
// unmounted, the record says how it ended, waiters wake. Caller holds
// the lock.
func (e *Engine) finishRun(r *store.Record, st api.ContainerState) {
	e.endRun(r, st)
	e.signalExit(r.ID)
}

// endRun is finishRun without waking the waiters.
func (e *Engine) endRun(r *store.Record, st api.ContainerState) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.runtimeOf(r).Delete(ctx, r.ID, true); err != nil && !errdefs.IsNotFound(err) {
		e.log.Warn("runtime delete after exit", "id", r.ID, "err", err)
	}
	e.unmountRootfs(r)
	e.disconnect(r)
	st.RestartCount = r.State.RestartCount
	r.State = st
	if err := e.db.Put(r); err != nil {
		e.log.Error("recording an exit", "id", r.ID, "err", err)
	}
}

// shouldRestart applies the restart policy to an exit; the delay doubles
// from 100 ms per consecutive restart (up to a minute) and starts again
// when the run lasted 10 s or more, as docker's does.
func (e *Engine) shouldRestart(r *store.Record, started, finished time.Time) (bool, time.Duration) {
	p := r.Config.Restart
	switch p.Name {
	case "always", "unless-stopped":
		if r.State.StoppedByUser {
			return false, 0
		}
	case "on-failure":
		if r.State.ExitCode == 0 || r.State.StoppedByUser {
			return false, 0
		}
		if p.MaximumRetryCount > 0 && r.State.RestartCount >= p.MaximumRetryCount {
			return false, 0
		}
	default:
		return false, 0
	}
	n := r.State.RestartCount
	if !started.IsZero() && finished.Sub(started) >= 10*time.Second {
		n = 0
	}
	d := 100 * time.Millisecond
	for i := 0; i < n && d < time.Minute; i++ {
		d *= 2
	}
	return true, min(d, time.Minute)
}

func (e *Engine) scheduleRestart(id string, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil {
		return
	}
	if t := e.restarts[id]; t != nil {
		t.Stop()
	}
	e.restarts[id] = time.AfterFunc(d, func() {
		e.mu.Lock()
		delete(e.restarts, id)
		e.mu.Unlock()
		unlock := e.lock(id)
		defer unlock()
		r, err := e.db.Get(id)
		if err != nil || r.State.Status != api.StateExited || r.State.StoppedByUser {
			return
		}
		r.State.RestartCount++
		if _, err := e.start(e.ctx, r, nil); err != nil {
			e.log.Error("restarting", "id", id, "err", err)
			return
		}
		e.emit("container", "restart", id, r.Name, map[string]string{"restartCount": strconv.Itoa(r.State.RestartCount)})
	})
}

func (e *Engine) cancelRestart(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.restarts[id]; t != nil {
		t.Stop()
		delete(e.restarts, id)
	}
}

// Stop sends the container's stop signal (its own, the image's, else
// SIGTERM), waits up to timeout for it to exit, then kills it.
func (e *Engine) Stop(ctx context.Context, ref string, timeout *int) error {
	r, unlock, err := e.locked(ref)
	if err != nil {
		return err
	}
	e.cancelRestart(r.ID)
	if r.State.Status != api.StateRunning && r.State.Status != api.StatePaused {
		if r.State.Status == api.StateExited && !r.State.StoppedByUser {
			r.State.StoppedByUser = true
			e.db.Put(r)
		}
		unlock()
		return nil
	}
	r.State.StoppedByUser = true
	if err := e.db.Put(r); err != nil {
		unlock()
		return err
	}
	exit := e.exitChan(r.ID)
	sig := "SIGTERM"
	if s := r.Config.StopSignal; s != "" {
		sig = s
	} else if s := e.stopSignalOf(r); s != "" {
		sig = s
	}
	t := 10
	if r.Config.StopTimeout != nil {
		t = *r.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	rt := e.runtimeOf(r)
	if r.State.Status == api.StatePaused {
		// A frozen process cannot act on its signal.
		rt.Resume(ctx, r.ID)
	}
	sigErr := rt.Kill(ctx, r.ID, sig, false)
	unlock()
	e.emit("container", "kill", r.ID, r.Name, map[string]string{"signal": sig})
	if sigErr == nil && t != 0 {
		select {
		case <-exit:
			e.emit("container", "stop", r.ID, r.Name, nil)
			return nil
		case <-time.After(time.Duration(max(t, 0)) * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := rt.Kill(ctx, r.ID, "SIGKILL", true); err != nil && !errdefs.IsNotFound(err) {
		select {
		case <-exit:
		default:
			return fmt.Errorf("container %s: kill: %w", r.Name, err)
		}
	}
	select {
	case <-exit:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.emit("container", "stop", r.ID, r.Name, nil)
	return nil
}

func (e *Engine) stopSignalOf(r *store.Record) string {
	img, err := e.images.Get(r.Image)
	if err != nil {
		return ""
	}
	cfg, err := e.images.Config(img)
	if err != nil {
		return ""
	}
	return cfg.Config.StopSignal
}

// Kill sends a signal to the container's process.
func (e *Engine) Kill(ctx context.Context, ref, sig string) error {
	if sig == "" {
		sig = "SIGKILL"
	}
	if _, err := parseSignal(sig); err != nil {
		return err
	}
	r, unlock, err := e.locked(ref)
	if err != nil {
		return err
	}
	defer unlock()
	if r.State.Status != api.StateRunning && r.State.Status != api.StatePaused {
		return fmt.Errorf("container %s is not running (%s): %w", r.Name, r.State.Status, errdefs.ErrState)
	}
	// A signal meant to end it counts as a stop by the user (no restart
	// policy brings it back); one meant to be handled (HUP, USR1) does
	// not.
	if s, _ := parseSignal(sig); s == unix.SIGKILL || s == unix.SIGTERM || s == unix.SIGINT {
		r.State.StoppedByUser = true
		e.db.Put(r)
	}
	if err := e.runtimeOf(r).Kill(ctx, r.ID, sig, false); err != nil {
		return err
	}
	e.emit("container", "kill", r.ID, r.Name, map[string]string{"signal": sig})
	return nil
}

// Pause freezes a running container; Unpause thaws it.
func (e *Engine) Pause(ctx context.Context, ref string) error { return e.freeze(ctx, ref, true) }

// Unpause thaws a paused container.
func (e *Engine) Unpause(ctx context.Context, ref string) error { return e.freeze(ctx, ref, false) }

func (e *Engine) freeze(ctx context.Context, ref string, pause bool) error {
	r, unlock, err := e.locked(ref)
	if err != nil {
		return err
	}
	defer unlock()
	want, to, action := api.StateRunning, api.StatePaused, "pause"
	if !pause {
		want, to, action = api.StatePaused, api.StateRunning, "unpause"
	}
	if r.State.Status != want {
		return fmt.Errorf("container %s is %s, not %s: %w", r.Name, r.State.Status, want, errdefs.ErrState)
	}
	rt := e.runtimeOf(r)
	if pause {
		err = rt.Pause(ctx, r.ID)
	} else {
		err = rt.Resume(ctx, r.ID)
	}
	if err != nil {
		return err
	}
	r.State.Status = to
	if err := e.db.Put(r); err != nil {
		return err
	}
	e.emit("container", action, r.ID, r.Name, nil)
	return nil
}

// Wait blocks until the container is not running and returns how its
// last run ended.
func (e *Engine) Wait(ctx context.Context, ref string) (*api.WaitResponse, error) {
	r, err := e.get(ref)
	if err != nil {
		return nil, err
	}
	for {
		unlock := e.lock(r.ID)
		cur, err := e.db.Get(r.ID)
		var exit chan struct{}
		if err == nil {
			switch cur.State.Status {
			case api.StateRunning, api.StatePaused, api.StateStarting:
				exit = e.exitChan(r.ID)
			}
		}
		unlock()
		if err != nil {
			if errdefs.IsNotFound(err) {
				// Removed (--rm): the exit was recorded in the event.
				return &api.WaitResponse{ExitCode: r.State.ExitCode}, nil
			}
			return nil, err
		}
		if exit == nil {
			return &api.WaitResponse{ExitCode: cur.State.ExitCode, OOMKilled: cur.State.OOMKilled, Error: cur.State.Error}, nil
		}
		select {
		case <-exit:
			// The run ended: its record (a restart policy may start the
			// next run later; wait reports this one, as docker's does).
			cur, err := e.db.Get(r.ID)
			if err != nil {
				return e.lastExit(r), nil
			}
			return &api.WaitResponse{ExitCode: cur.State.ExitCode, OOMKilled: cur.State.OOMKilled, Error: cur.State.Error}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (e *Engine) lastExit(r *store.Record) *api.WaitResponse {
	if st, err := monitor.ReadExit(r.Dir); err == nil {
		return &api.WaitResponse{ExitCode: st.Code}
	}
	return &api.WaitResponse{ExitCode: r.State.ExitCode}
}

// Remove deletes a container: with force a running one is killed first.
func (e *Engine) Remove(ctx context.Context, ref string, force bool) error {
	r, unlock, err := e.locked(ref)
	if err != nil {
		return err
	}
	e.cancelRestart(r.ID)
	switch r.State.Status {
	case api.StateRunning, api.StatePaused, api.StateStarting:
		if !force {
			unlock()
			return fmt.Errorf("container %s is %s: stop it first or remove it with --force: %w", r.Name, r.State.Status, errdefs.ErrState)
		}
		r.State.StoppedByUser = true
		e.db.Put(r)
		exit := e.exitChan(r.ID)
		rt := e.runtimeOf(r)
		if r.State.Status == api.StatePaused {
			rt.Resume(ctx, r.ID)
		}
		rt.Kill(ctx, r.ID, "SIGKILL", true)
		unlock()
		select {
		case <-exit:
		case <-time.After(30 * time.Second):
			// The monitor did not report: make sure nothing stays.
			rt.Delete(ctx, r.ID, true)
		case <-ctx.Done():
			return ctx.Err()
		}
		unlock = e.lock(r.ID)
		if r, err = e.db.Get(r.ID); err != nil {
			unlock()
			if errdefs.IsNotFound(err) {
				return nil // an --rm container removed itself meanwhile
			}
			return err
		}
	}
	defer unlock()
	return e.remove(r)
}

// remove deletes a stopped container's files and record; caller holds
// the lock.
func (e *Engine) remove(r *store.Record) error {
	r.State.Status = api.StateRemoving
	if err := e.db.Put(r); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.runtimeOf(r).Delete(ctx, r.ID, true); err != nil && !errdefs.IsNotFound(err) {
		e.log.Warn("runtime delete", "id", r.ID, "err", err)
	}
	e.unmountRootfs(r)
	e.disconnect(r)
	e.db.ReleaseOwner(r.ID)
	if err := os.RemoveAll(r.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("container %s: removing %s: %w", r.Name, r.Dir, err)
	}
	if err := e.db.Delete(r.ID); err != nil {
		return err
	}
	e.mu.Lock()
	delete(e.locks, r.ID)
	e.mu.Unlock()
	if r.Network != "" && r.Config.Pod == "" {
		e.refreshHosts(r.Network)
	}
	e.emit("container", "destroy", r.ID, r.Name, nil)
	return nil
}

// locked resolves a reference, takes the container's lock and reads its
// record under it (a request waiting for the lock sees what the one
// before it left).
func (e *Engine) locked(ref string) (*store.Record, func(), error) {
	r, err := e.get(ref)
	if err != nil {
		return nil, nil, err
	}
	unlock := e.lock(r.ID)
	if r, err = e.db.Get(r.ID); err != nil {
		unlock()
		return nil, nil, err
	}
	return r, unlock, nil
}
