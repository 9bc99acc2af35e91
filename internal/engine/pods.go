package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/network"
	"github.com/warren-runtime/warren/internal/pods"
	"github.com/warren-runtime/warren/internal/store"
)

// CreatePod makes a pod: its record, its pinned IPC and UTS namespaces
// (host name set), its network namespace (pinned under NetnsDir as
// warren-pod-NAME, visible to `ip netns`) on its network with its
// ports, its cgroup with the pod's limits, and with SharePid an infra
// process holding the shared pid namespace.
func (e *Engine) CreatePod(ctx context.Context, cfg api.PodConfig) (*api.Pod, error) {
	id := newID()
	if cfg.Name == "" {
		cfg.Name = id[:12]
	}
	if !validName.MatchString(cfg.Name) || len(cfg.Name) > 40 {
		return nil, fmt.Errorf("pod name %q: letters, digits, '_', '.', '-', at most 40: %w", cfg.Name, errdefs.ErrInvalid)
	}
	if err := validatePorts(cfg.Ports); err != nil {
		return nil, err
	}
	var netRec *store.NetworkRecord
	var err error
	switch cfg.Network {
	case "none", "host":
		if len(cfg.Ports) > 0 {
			return nil, fmt.Errorf("pod %s: ports need a bridge network, not %q: %w", cfg.Name, cfg.Network, errdefs.ErrInvalid)
		}
	default:
		if netRec, err = e.resolveNetwork(cfg.Network); err != nil {
			return nil, err
		}
		cfg.Network = netRec.Name
	}
	if err := e.portInUse(cfg.Ports, ""); err != nil {
		return nil, err
	}
	if cfg.Hostname == "" {
		cfg.Hostname = cfg.Name
	}
	p := &store.PodRecord{Pod: api.Pod{ID: id, Name: cfg.Name, Created: time.Now().UTC(), Config: cfg, Status: api.StateCreating},
		Dir: filepath.Join(e.cfg.RunRoot, "pods", id), CgroupPath: "/warren/pod-" + id[:12]}
	if err := e.db.CreatePod(p); err != nil {
		return nil, err
	}
	fault("pod:recorded")
	fail := func(err error) (*api.Pod, error) {
		e.undoPod(p)
		return nil, err
	}
	if err := pods.Pin(p.Dir, cfg.Hostname); err != nil {
		return fail(err)
	}
	if err := pods.SetupCgroup(p.CgroupPath, pods.Limits{Memory: cfg.Resources.Memory, NanoCPUs: cfg.Resources.NanoCPUs, PidsLimit: cfg.Resources.PidsLimit}); err != nil {
		return fail(err)
	}
	if cfg.Network != "host" {
		if p.Netns, err = e.newNetns(netnsName("pod", cfg.Name)); err != nil {
			return fail(err)
		}
	}
	if netRec != nil {
		addrs, err := e.lease(netRec, id)
		if err != nil {
			return fail(err)
		}
		for _, a := range addrs {
			p.Addresses = append(p.Addresses, a.String())
		}
		ep, err := endpoint(netRec, id, p.Netns, p.Addresses, cfg.Ports)
		if err == nil {
			err = network.Attach(ep)
		}
		if err != nil {
			return fail(err)
		}
		if err := writeNetFiles(p.Dir, p.Name, p.Addresses, e.peersOn(netRec.Name, id)); err != nil {
			return fail(err)
		}
	}
	fault("pod:network")
	if cfg.SharePid {
		infra, err := e.createInfra(ctx, p)
		if err != nil {
			return fail(err)
		}
		p.InfraID = infra
	}
	p.Status = api.StateRunning
	if err := e.db.PutPod(p); err != nil {
		return fail(err)
	}
	if netRec != nil {
		e.refreshHosts(netRec.Name)
	}
	e.emit("pod", "create", id, p.Name, nil)
	return &p.Pod, nil
}

// undoPod removes whatever a pod has; recovery and rm call it too.
func (e *Engine) undoPod(p *store.PodRecord) {
	if p.InfraID != "" {
		if err := e.Remove(context.Background(), p.InfraID, true); err != nil && !errdefs.IsNotFound(err) {
			e.log.Warn("removing a pod's infra container", "pod", p.ID, "err", err)
		}
	}
	if n, err := e.db.Network(p.Config.Network); err == nil {
		if ep, err := endpoint(n, p.ID, p.Netns, p.Addresses, p.Config.Ports); err == nil {
			network.Detach(ep)
		}
	}
	if p.Config.Network != "host" {
		network.DeleteNetns(e.cfg.NetnsDir, netnsName("pod", p.Name))
	}
	pods.Unpin(p.Dir)
	os.RemoveAll(p.Dir)
	pods.RemoveCgroup(p.CgroupPath)
	e.db.ReleaseOwner(p.ID)
	e.db.DeletePod(p.ID)
	if p.Config.Network != "" && p.Config.Network != "host" && p.Config.Network != "none" {
		e.refreshHosts(p.Config.Network)
	}
}

// podPaths fills the namespaces a member joins.
func (e *Engine) podPaths(p *store.PodRecord, paths map[specs.LinuxNamespaceType]string) error {
	if p.Status != api.StateRunning {
		return fmt.Errorf("pod %s is %s: %w", p.Name, p.Status, errdefs.ErrState)
	}
	paths[specs.IPCNamespace] = filepath.Join(p.Dir, pods.IPC)
	paths[specs.UTSNamespace] = filepath.Join(p.Dir, pods.UTS)
	if p.Netns != "" {
		paths[specs.NetworkNamespace] = p.Netns
	} else {
		paths[specs.NetworkNamespace] = "host"
	}
	if p.InfraID != "" {
		infra, err := e.db.Get(p.InfraID)
		if err != nil || infra.State.Status != api.StateRunning {
			return fmt.Errorf("pod %s: its infra process (the shared pid namespace) is not running: stop and start the pod: %w", p.Name, errdefs.ErrState)
		}
		paths[specs.PIDNamespace] = fmt.Sprintf("/proc/%d/ns/pid", infra.State.Pid)
	}
	return nil
}

// refreshPodPid points a pod member's config at the infra process's
// current pid namespace path (the infra may have been restarted since).
func (e *Engine) refreshPodPid(r *store.Record) error {
	if r.Config.Pod == "" || r.Infra {
		return nil
	}
	p, err := e.db.Pod(r.Config.Pod)
	if err != nil {
		return fmt.Errorf("pod %s: %w", r.Config.Pod, err)
	}
	if p.InfraID == "" {
		return nil
	}
	if infra, err := e.db.Get(p.InfraID); err == nil && infra.State.Status != api.StateRunning {
		if err := e.Start(context.Background(), p.InfraID); err != nil {
			return fmt.Errorf("pod %s: starting its infra process: %w", p.Name, err)
		}
	}
	paths := map[specs.LinuxNamespaceType]string{}
	if err := e.podPaths(p, paths); err != nil {
		return err
	}
	cfgPath := filepath.Join(r.Dir, "config.json")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			spec.Linux.Namespaces[i].Path = paths[specs.PIDNamespace]
		}
	}
	b, err = json.MarshalIndent(&spec, "", "\t")
	if err != nil {
		return err
	}
	return writeFileSync(cfgPath, b)
}

// createInfra makes and starts a pod's infra container: pid 1 of the
// shared pid namespace (warren-monitor --pause from a rootfs holding only
// it), in the pod's other namespaces and cgroup, run like any container
// (monitor, runtime) so its exit is seen and recovery finds it.
func (e *Engine) createInfra(ctx context.Context, p *store.PodRecord) (string, error) {
	id := newID()
	rt := e.cfg.Runtimes[e.cfg.DefaultRuntime]
	r := &store.Record{
		Container: api.Container{ID: id, Name: p.Name + "-infra", Image: "", Created: time.Now().UTC(),
			Runtime: e.cfg.DefaultRuntime, Config: api.ContainerConfig{Name: p.Name + "-infra", Pod: p.ID, Restart: api.RestartPolicy{Name: "always"}},
			State: api.ContainerState{Status: api.StateCreating}},
		Dir: filepath.Join(e.cfg.Root, "containers", id), RuntimePath: rt.Path, RuntimeRoot: filepath.Join(e.cfg.RunRoot, e.cfg.DefaultRuntime),
		RuntimeArgs: rt.Args, CgroupsPath: p.CgroupPath + "/infra", Infra: true,
	}
	r.Bundle = r.Dir
	if err := e.db.Create(r); err != nil {
		return "", err
	}
	unlock := e.lock(id)
	fail := func(err error) (string, error) {
		e.undoCreate(r)
		unlock()
		return "", err
	}
	rootfs := filepath.Join(r.Dir, "rootfs")
	for _, d := range []string{"proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return fail(err)
		}
	}
	if err := copyFile(e.cfg.MonitorPath, filepath.Join(rootfs, "pause"), 0o555); err != nil {
		return fail(fmt.Errorf("pod %s: infra rootfs: %w", p.Name, err))
	}
	nss := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
		{Type: specs.IPCNamespace, Path: filepath.Join(p.Dir, pods.IPC)}, {Type: specs.UTSNamespace, Path: filepath.Join(p.Dir, pods.UTS)}}
	if p.Netns != "" {
		nss = append(nss, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: p.Netns})
	}
	spec := &specs.Spec{
		Version: rt.SpecVersion,
		Process: &specs.Process{Args: []string{"/pause", "--pause"}, Cwd: "/", Env: []string{"PATH=/"}, NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{}},
		Root:        &specs.Root{Path: rootfs, Readonly: true},
		Annotations: map[string]string{"org.warren.container.name": r.Name, "org.warren.pod": p.ID},
		Linux: &specs.Linux{Namespaces: nss, CgroupsPath: r.CgroupsPath,
			MaskedPaths: []string{"/proc/kcore", "/proc/keys"}, ReadonlyPaths: []string{"/proc/sys"}},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			// Runtimes make their default devices under /dev (crun
			// insists on one): a tmpfs, as the root is read-only.
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=64k"}},
		},
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err == nil {
		err = writeFileSync(filepath.Join(r.Dir, "config.json"), b)
	}
	if err != nil {
		return fail(err)
	}
	r.Command = spec.Process.Args
	r.State.Status = api.StateCreated
	if err := e.db.Put(r); err != nil {
		return fail(err)
	}
	if _, err := e.start(ctx, r, nil); err != nil {
		unlock()
		e.Remove(context.Background(), id, true)
		return "", err
	}
	unlock()
	return id, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (e *Engine) podView(p *store.PodRecord) api.Pod {
	v := p.Pod
	if rs, err := e.db.List(); err == nil {
		for _, r := range rs {
			if r.Config.Pod == p.ID && !r.Infra {
				v.Members = append(v.Members, r.ID)
			}
		}
	}
	return v
}

// ListPods lists the pods.
func (e *Engine) ListPods() ([]api.Pod, error) {
	ps, err := e.db.Pods()
	if err != nil {
		return nil, err
	}
	out := []api.Pod{}
	for _, p := range ps {
		out = append(out, e.podView(p))
	}
	return out, nil
}

// InspectPod returns a pod.
func (e *Engine) InspectPod(ref string) (*api.Pod, error) {
	p, err := e.db.Pod(ref)
	if err != nil {
		return nil, err
	}
	v := e.podView(p)
	return &v, nil
}

// StopPod stops every member (then the infra process); the pod's
// namespaces stay, so its members can start again.
func (e *Engine) StopPod(ctx context.Context, ref string, timeout *int) error {
	p, err := e.db.Pod(ref)
	if err != nil {
		return err
	}
	v := e.podView(p)
	for _, id := range v.Members {
		if err := e.Stop(ctx, id, timeout); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	if p.InfraID != "" {
		if err := e.Stop(ctx, p.InfraID, timeout); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	e.emit("pod", "stop", p.ID, p.Name, nil)
	return nil
}

// RemovePod removes a pod; its members too with force, else it must
// have none.
func (e *Engine) RemovePod(ctx context.Context, ref string, force bool) error {
	p, err := e.db.Pod(ref)
	if err != nil {
		return err
	}
	v := e.podView(p)
	if len(v.Members) > 0 && !force {
		return fmt.Errorf("pod %s has %d containers: remove them or use --force: %w", p.Name, len(v.Members), errdefs.ErrState)
	}
	for _, id := range v.Members {
		if err := e.Remove(ctx, id, true); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	p.Status = api.StateRemoving
	if err := e.db.PutPod(p); err != nil {
		return err
	}
	e.undoPod(p)
	e.emit("pod", "remove", p.ID, p.Name, nil)
	return nil
}

// recoverPods makes each pod's namespaces and network true again: after
// a reboot (/run is tmpfs) the pins are gone and are made anew; an
// interrupted create or removal is finished.
func (e *Engine) recoverPods(ctx context.Context) {
	ps, err := e.db.Pods()
	if err != nil {
		e.log.Error("recovery: pods", "err", err)
		return
	}
	for _, p := range ps {
		switch p.Status {
		case api.StateCreating, api.StateRemoving:
			e.log.Info("recovery: removing a pod whose create or removal was interrupted", "pod", p.Name)
			if p.InfraID == "" {
				// The infra may exist without the record knowing it.
				if rs, err := e.db.List(); err == nil {
					for _, r := range rs {
						if r.Infra && r.Config.Pod == p.ID {
							p.InfraID = r.ID
						}
					}
				}
			}
			if rs, err := e.db.List(); err == nil {
				for _, r := range rs {
					if r.Config.Pod == p.ID && !r.Infra {
						e.Remove(ctx, r.ID, true)
					}
				}
			}
			e.undoPod(p)
			continue
		}
		if !pods.Pinned(p.Dir) {
			if err := pods.Pin(p.Dir, p.Config.Hostname); err != nil {
				e.log.Error("recovery: pinning a pod's namespaces", "pod", p.Name, "err", err)
			}
		}
		if p.Config.Network != "host" {
			if _, err := e.newNetns(netnsName("pod", p.Name)); err != nil {
				e.log.Error("recovery: a pod's network namespace", "pod", p.Name, "err", err)
			}
		}
		if n, err := e.db.Network(p.Config.Network); err == nil {
			if ep, err := endpoint(n, p.ID, p.Netns, p.Addresses, p.Config.Ports); err == nil {
				if err := network.Attach(ep); err != nil {
					e.log.Error("recovery: a pod's network", "pod", p.Name, "err", err)
				}
			}
			writeNetFiles(p.Dir, p.Name, p.Addresses, e.peersOn(n.Name, p.ID))
		}
		pods.SetupCgroup(p.CgroupPath, pods.Limits{Memory: p.Config.Resources.Memory, NanoCPUs: p.Config.Resources.NanoCPUs, PidsLimit: p.Config.Resources.PidsLimit})
	}
}
