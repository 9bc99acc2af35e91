package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/monitor"
	"github.com/warren-runtime/warren/internal/network"
	"github.com/warren-runtime/warren/internal/ociruntime"
	"github.com/warren-runtime/warren/internal/store"
)

// Recover makes the records true again after warrend (re)starts: what a
// killed daemon left half-done is finished or undone, running containers
// are watched again through their monitors, those that exited meanwhile
// are recorded (and restarted per policy), and anything of the engine's
// that no record owns — runtime containers, mounts, directories — is
// removed.
func (e *Engine) Recover(ctx context.Context) error {
	rs, err := e.db.List()
	if err != nil {
		return err
	}
	// Networks first (after a reboot their bridges and rules are gone),
	// then pods (their pins), then containers.
	if ns, err := e.db.Networks(); err == nil {
		for _, n := range ns {
			if err := network.Setup(toNetwork(n)); err != nil {
				e.log.Error("recovery: network", "network", n.Name, "err", err)
			}
		}
	}
	e.recoverPods(ctx)
	// Before any restart a policy schedules below makes a namespace the
	// sweep would not know.
	e.sweepNetwork()
	known := map[string]bool{}
	for _, r := range rs {
		known[r.ID] = true
		if st, why := e.recoverOne(ctx, r); st != nil {
			e.exited(r.ID, *st, why)
		}
	}
	e.sweep(ctx, known)
	return nil
}

// sweepNetwork removes endpoints (veths and their rules) and named
// network namespaces that no running container or pod owns: a daemon
// killed between attaching and recording cannot leave them behind.
func (e *Engine) sweepNetwork() {
	owners := map[string]bool{}
	netns := map[string]bool{}
	if rs, err := e.db.List(); err == nil {
		for _, r := range rs {
			if r.Netns != "" && (r.State.Status == api.StateRunning || r.State.Status == api.StatePaused || r.State.Status == api.StateStarting) {
				owners[r.ID] = true
				netns[filepath.Base(r.Netns)] = true
			}
		}
	}
	if ps, err := e.db.Pods(); err == nil {
		for _, p := range ps {
			owners[p.ID] = true
			netns[netnsName("pod", p.Name)] = true
		}
	}
	if rules, err := network.EndpointRules(); err == nil {
		for id := range rules {
			if !owners[id] {
				e.log.Info("recovery: removing a network endpoint no container or pod owns", "id", id)
				network.Detach(&network.Endpoint{ID: id})
			}
		}
	}
	ents, _ := os.ReadDir(e.cfg.NetnsDir)
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), netnsPrefix) && !netns[ent.Name()] {
			e.log.Info("recovery: removing a network namespace no container or pod owns", "netns", ent.Name())
			network.DeleteNetns(e.cfg.NetnsDir, ent.Name())
		}
	}
}

// recoverOne returns the exit status of a container that ended while no
// warrend watched, for the caller to record without the lock.
func (e *Engine) recoverOne(ctx context.Context, r *store.Record) (*monitor.ExitStatus, string) {
	unlock := e.lock(r.ID)
	defer unlock()
	log := e.log.With("id", r.ID, "status", r.State.Status)
	switch r.State.Status {
	case api.StateCreating:
		// Create never returned: the client saw an error. Undo.
		log.Info("recovery: removing a container whose create was interrupted")
		e.runtimeOf(r).Delete(ctx, r.ID, true)
		e.undoCreate(r)
		e.emit("container", "destroy", r.ID, r.Name, map[string]string{"reason": "interrupted create"})
	case api.StateRemoving:
		log.Info("recovery: finishing an interrupted removal")
		if err := e.remove(r); err != nil {
			log.Error("recovery: removal", "err", err)
		}
	case api.StateStarting, api.StateRunning, api.StatePaused:
		conn, err := monitor.Dial(r.Dir)
		if err == nil {
			st, serr := e.runtimeOf(r).State(ctx, r.ID)
			if serr == nil && (st.Status == "running" || st.Status == "paused") {
				if r.State.Status == api.StateStarting {
					r.State.StartedAt = time.Now().UTC()
				}
				r.State.Status = api.StateRunning
				if st.Status == "paused" {
					r.State.Status = api.StatePaused
				}
				r.State.Pid = st.Pid
				e.db.Put(r)
				log.Info("recovery: container still runs", "pid", st.Pid)
				e.watch(r.ID, conn)
				return nil, ""
			}
			// Created but never started (the daemon died between the
			// runtime's create and start): a half-done start, undone.
			conn.Close()
			log.Info("recovery: stopping a container whose start was interrupted")
			e.runtimeOf(r).Delete(ctx, r.ID, true)
			if c2, err := monitor.Dial(r.Dir); err == nil {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				c2.Wait(wctx)
				cancel()
				c2.Close()
			}
			e.finishRun(r, api.ContainerState{Status: api.StateExited, ExitCode: 128 + 9,
				Error: "warrend stopped while starting it", FinishedAt: time.Now().UTC()})
			return nil, ""
		}
		// No monitor: the container ended while nobody watched (or the
		// machine rebooted).
		st, rerr := monitor.ReadExit(r.Dir)
		if rerr != nil {
			st = &monitor.ExitStatus{Code: 255, FinishedAt: time.Now().UTC()}
		}
		log.Info("recovery: container exited while warrend was away", "exitCode", st.Code)
		if rerr != nil {
			return st, "its monitor is gone and left no exit status (host rebooted?)"
		}
		return st, ""
	case api.StateExited:
		// docker's rule: "always" restarts even a user-stopped container
		// when the daemon starts; "unless-stopped" does not.
		if r.Config.Restart.Name == "always" && r.State.StoppedByUser {
			r.State.StoppedByUser = false
			e.db.Put(r)
			e.scheduleRestart(r.ID, 0)
		} else if r.Config.Restart.Name != "" {
			if ok, d := e.shouldRestart(r, r.State.StartedAt, r.State.FinishedAt); ok {
				e.scheduleRestart(r.ID, d)
			}
		}
		e.unmountRootfs(r)
	}
	return nil, ""
}

// sweep removes what the engine made but no record owns: a crash between
// making a thing and recording it cannot leak it past the next start.
func (e *Engine) sweep(ctx context.Context, known map[string]bool) {
	for name, rc := range e.cfg.Runtimes {
		rt := &ociruntime.Runtime{Path: rc.Path, Args: rc.Args, Root: filepath.Join(e.cfg.RunRoot, name)}
		if _, err := os.Stat(rt.Root); err != nil {
			continue
		}
		sts, err := rt.List(ctx)
		if err != nil {
			e.log.Warn("recovery: listing runtime containers", "runtime", name, "err", err)
			continue
		}
		for _, st := range sts {
			if !known[st.ID] {
				e.log.Info("recovery: deleting a runtime container no record owns", "runtime", name, "id", st.ID)
				if err := rt.Delete(ctx, st.ID, true); err != nil && !errdefs.IsNotFound(err) {
					e.log.Warn("recovery: delete", "id", st.ID, "err", err)
				}
			}
		}
	}
	dir := filepath.Join(e.cfg.Root, "containers")
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		if known[ent.Name()] {
			continue
		}
		p := filepath.Join(dir, ent.Name())
		e.log.Info("recovery: removing a container directory no record owns", "dir", p)
		r := &store.Record{Dir: p}
		r.ID = ent.Name()
		if conn, err := monitor.Dial(p); err == nil {
			// A monitor whose container never got a record: kill through
			// it is not possible, but its runtime container was deleted
			// above, so it is about to exit.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			conn.Wait(wctx)
			cancel()
			conn.Close()
		}
		e.unmountRootfs(r)
		os.RemoveAll(p)
	}
	// Mounts under the containers directory whose directory is gone.
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || !strings.HasPrefix(f[4], dir+"/") {
				continue
			}
			id, _, _ := strings.Cut(strings.TrimPrefix(f[4], dir+"/"), "/")
			if !known[id] {
				unix.Unmount(f[4], unix.MNT_DETACH)
			}
		}
	}
}
