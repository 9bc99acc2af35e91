package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/images"
	"github.com/warren-runtime/warren/internal/store"
)

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Create makes a container from an image: its record, its bundle (the
// image's overlay mounted on rootfs, config.json) — no process yet.
func (e *Engine) Create(cfg api.ContainerConfig) (*api.CreateResponse, error) {
	if cfg.Image == "" {
		return nil, fmt.Errorf("image: a container needs an image: %w", errdefs.ErrInvalid)
	}
	if cfg.Name != "" && !validName.MatchString(cfg.Name) {
		return nil, fmt.Errorf("name %q: use letters, digits, '_', '.', '-' (starting with a letter or digit, at most 128): %w", cfg.Name, errdefs.ErrInvalid)
	}
	rtName := cfg.Runtime
	if rtName == "" {
		rtName = e.cfg.DefaultRuntime
	}
	rt, ok := e.cfg.Runtimes[rtName]
	if !ok {
		return nil, fmt.Errorf("runtime %q: not configured (known: %s): %w", rtName, strings.Join(runtimeNames(e.cfg.Runtimes), ", "), errdefs.ErrInvalid)
	}
	if err := validateConfig(&cfg); err != nil {
		return nil, err
	}
	img, err := e.images.Get(cfg.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("no such image %q: pull or import it first: %w", cfg.Image, errdefs.ErrNotFound)
		}
		return nil, err
	}
	imgCfg, err := e.images.Config(img)
	if err != nil {
		return nil, err
	}
	// Joined namespaces are checked before anything is made.
	nsPaths := map[specs.LinuxNamespaceType]string{}
	for typ, mode := range map[specs.LinuxNamespaceType]string{
		specs.PIDNamespace: cfg.PidMode, specs.IPCNamespace: cfg.IpcMode,
		specs.UTSNamespace: cfg.UTSMode, specs.NetworkNamespace: cfg.NetworkMode,
	} {
		ref, ok := strings.CutPrefix(mode, "container:")
		if !ok {
			continue
		}
		other, err := e.get(ref)
		if err != nil {
			return nil, fmt.Errorf("%s namespace of container %q: %w", typ, ref, err)
		}
		if other.State.Status != api.StateRunning || other.State.Pid == 0 {
			return nil, fmt.Errorf("%s namespace of container %q: it is %s, not running: %w", typ, ref, other.State.Status, errdefs.ErrState)
		}
		nsPaths[typ] = fmt.Sprintf("/proc/%d/ns/%s", other.State.Pid, nsFile[typ])
	}

	var netRec *store.NetworkRecord
	var pod *store.PodRecord
	if cfg.Pod != "" {
		if pod, err = e.db.Pod(cfg.Pod); err != nil {
			return nil, err
		}
		cfg.Pod = pod.ID // the record names the pod by id
		if err := e.podPaths(pod, nsPaths); err != nil {
			return nil, err
		}
	} else if netRec, err = e.resolveNetwork(cfg.NetworkMode); err != nil {
		return nil, err
	}
	if len(cfg.Ports) > 0 && netRec == nil {
		return nil, fmt.Errorf("ports: publishing needs a bridge network, not --network %q: %w", cfg.NetworkMode, errdefs.ErrInvalid)
	}
	if err := e.portInUse(cfg.Ports, ""); err != nil {
		return nil, err
	}

	id := newID()
	if cfg.Name == "" {
		cfg.Name = id[:12]
	}
	r := &store.Record{
		Container: api.Container{ID: id, Name: cfg.Name, Image: img.Name, ImageID: img.Manifest.String(),
			Created: time.Now().UTC(), Runtime: rtName, Config: cfg,
			State: api.ContainerState{Status: api.StateCreating}},
		Dir:         filepath.Join(e.cfg.Root, "containers", id),
		RuntimePath: rt.Path, RuntimeRoot: filepath.Join(e.cfg.RunRoot, rtName), RuntimeArgs: rt.Args,
		CgroupsPath: "/warren/" + id,
	}
	if pod != nil {
		r.CgroupsPath = pod.CgroupPath + "/" + id
		r.Network, r.Addresses = pod.Config.Network, pod.Addresses
	}
	r.Bundle = r.Dir
	// The record (and the name) first: from here on, a crash leaves a
	// "creating" record that Recover undoes.
	if err := e.db.Create(r); err != nil {
		return nil, err
	}
	unlock := e.lock(id)
	defer unlock()
	fault("create:recorded")
	fail := func(err error) (*api.CreateResponse, error) {
		e.undoCreate(r)
		return nil, err
	}
	if cfg.UsernsMode == "auto" {
		start, err := e.db.AllocUserns(id, e.cfg.UsernsBase, e.cfg.UsernsSize, e.cfg.UsernsCount)
		if err != nil {
			return fail(err)
		}
		r.UsernsStart = start
	}
	if err := os.Mkdir(r.Dir, 0o700); err != nil {
		return fail(fmt.Errorf("container directory %s: %w", r.Dir, err))
	}
	if netRec != nil {
		addrs, err := e.lease(netRec, id)
		if err != nil {
			return fail(err)
		}
		r.Network = netRec.Name
		for _, a := range addrs {
			r.Addresses = append(r.Addresses, a.String())
		}
		r.Netns = filepath.Join(e.cfg.NetnsDir, netnsName("c", id[:12]))
		nsPaths[specs.NetworkNamespace] = r.Netns
		if err := writeNetFiles(r.Dir, r.Name, r.Addresses, e.peersOn(netRec.Name, id)); err != nil {
			return fail(err)
		}
	}
	rootfs, err := e.mountRootfs(r, img)
	if err != nil {
		return fail(err)
	}
	fault("create:mounted")
	spec, err := e.buildSpec(r, imgCfg, rootfs, nsPaths)
	if err != nil {
		return fail(err)
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err == nil {
		err = writeFileSync(filepath.Join(r.Dir, "config.json"), b)
	}
	if err != nil {
		return fail(fmt.Errorf("bundle %s: %w", r.Dir, err))
	}
	r.Command = spec.Process.Args
	r.State.Status = api.StateCreated
	if err := e.db.Put(r); err != nil {
		return fail(err)
	}
	if r.Network != "" && pod == nil {
		e.refreshHosts(r.Network)
	}
	e.emit("container", "create", id, r.Name, map[string]string{"image": img.Name})
	return &api.CreateResponse{ID: id, Name: r.Name}, nil
}

var nsFile = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace: "pid", specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.NetworkNamespace: "net",
}

// undoCreate removes whatever a failed or interrupted Create made.
func (e *Engine) undoCreate(r *store.Record) {
	e.db.ReleaseOwner(r.ID)
	e.unmountRootfs(r)
	os.RemoveAll(r.Dir)
	if err := e.db.Delete(r.ID); err != nil {
		e.log.Error("forgetting a failed container", "id", r.ID, "err", err)
	}
}

func (e *Engine) mountRootfs(r *store.Record, img *images.Image) (string, error) {
	rootfs := filepath.Join(r.Dir, "rootfs")
	if isMountpoint(rootfs) {
		return rootfs, nil
	}
	if r.UsernsStart != 0 {
		return e.mountIdmapped(r, img)
	}
	return e.images.MountImage(img, r.Dir)
}

// unmountRootfs unmounts the container's rootfs if it is mounted.
func (e *Engine) unmountRootfs(r *store.Record) {
	rootfs := filepath.Join(r.Dir, "rootfs")
	for isMountpoint(rootfs) {
		if err := unix.Unmount(rootfs, 0); err != nil {
			// Busy (a process outside the container holds it): detach,
			// the kernel frees it when the last user goes.
			unix.Unmount(rootfs, unix.MNT_DETACH)
		}
	}
}

// isMountpoint: p is the root of a mount (its mount id differs from
// its parent's).
func isMountpoint(p string) bool {
	var a, b unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &a) != nil {
		return false
	}
	if unix.Statx(unix.AT_FDCWD, filepath.Dir(p), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &b) != nil {
		return false
	}
	return a.Mnt_id != b.Mnt_id
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// validateConfig checks what can be checked without the image.
func validateConfig(c *api.ContainerConfig) error {
	if c.Resources.Memory < 0 {
		return fmt.Errorf("memory: %d bytes is negative: %w", c.Resources.Memory, errdefs.ErrInvalid)
	}
	if c.Resources.Memory > 0 && c.Resources.Memory < 1<<20 {
		return fmt.Errorf("memory: %d bytes is below the minimum of 1 MiB: %w", c.Resources.Memory, errdefs.ErrInvalid)
	}
	if c.Resources.NanoCPUs < 0 {
		return fmt.Errorf("cpus: %d is negative: %w", c.Resources.NanoCPUs, errdefs.ErrInvalid)
	}
	if c.Resources.NanoCPUs > 0 && c.Resources.NanoCPUs < 10_000_000 {
		return fmt.Errorf("cpus: %.3f is below the minimum of 0.01: %w", float64(c.Resources.NanoCPUs)/1e9, errdefs.ErrInvalid)
	}
	if c.Resources.PidsLimit < 0 {
		return fmt.Errorf("pids-limit: %d is negative: %w", c.Resources.PidsLimit, errdefs.ErrInvalid)
	}
	switch c.Restart.Name {
	case "", "no", "always", "unless-stopped":
		if c.Restart.MaximumRetryCount != 0 {
			return fmt.Errorf("restart policy %q: a maximum retry count is only for on-failure: %w", c.Restart.Name, errdefs.ErrInvalid)
		}
	case "on-failure":
		if c.Restart.MaximumRetryCount < 0 {
			return fmt.Errorf("restart policy on-failure: retry count %d is negative: %w", c.Restart.MaximumRetryCount, errdefs.ErrInvalid)
		}
	default:
		return fmt.Errorf("restart policy %q: use no, on-failure[:N], always or unless-stopped: %w", c.Restart.Name, errdefs.ErrInvalid)
	}
	if c.AutoRemove && c.Restart.Name != "" && c.Restart.Name != "no" {
		return fmt.Errorf("--rm and restart policy %q conflict: a removed container cannot restart: %w", c.Restart.Name, errdefs.ErrInvalid)
	}
	for field, mode := range map[string]string{"pid": c.PidMode, "ipc": c.IpcMode, "uts": c.UTSMode} {
		if mode != "" && mode != "host" && mode != "private" && !strings.HasPrefix(mode, "container:") {
			return fmt.Errorf("--%s %q: use host, private or container:NAME: %w", field, mode, errdefs.ErrInvalid)
		}
	}
	switch m := c.NetworkMode; {
	case m == "", m == "none", m == "host", m == "private", m == "bridge", strings.HasPrefix(m, "container:"):
	case validName.MatchString(m):
		// a network's name: checked against the store
	default:
		return fmt.Errorf("--network %q: use bridge, a network's name, none, host or container:NAME: %w", m, errdefs.ErrInvalid)
	}
	if err := validatePorts(c.Ports); err != nil {
		return err
	}
	if c.Pod != "" && (c.NetworkMode != "" || c.IpcMode != "" || c.UTSMode != "" || c.PidMode != "" || len(c.Ports) > 0 || c.Hostname != "") {
		return fmt.Errorf("pod %s: a member takes its network, ipc, uts and pid namespaces, ports and host name from the pod: %w", c.Pod, errdefs.ErrInvalid)
	}
	switch c.UsernsMode {
	case "", "host", "auto":
	default:
		return fmt.Errorf("--userns %q: use host or auto: %w", c.UsernsMode, errdefs.ErrInvalid)
	}
	if c.UsernsMode == "auto" && (c.PidMode == "host" || c.NetworkMode == "host" || c.IpcMode == "host" || c.UTSMode == "host") {
		return fmt.Errorf("--userns auto with a host namespace: a user namespace cannot own the host's namespaces: %w", errdefs.ErrInvalid)
	}
	for i, m := range c.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mounts[%d]: destination %q is not an absolute path: %w", i, m.Destination, errdefs.ErrInvalid)
		}
		switch m.Type {
		case "bind":
			if !filepath.IsAbs(m.Source) {
				return fmt.Errorf("mounts[%d]: bind source %q is not an absolute path: %w", i, m.Source, errdefs.ErrInvalid)
			}
			if _, err := os.Stat(m.Source); err != nil {
				return fmt.Errorf("mounts[%d]: bind source %s does not exist: create it first: %w", i, m.Source, errdefs.ErrInvalid)
			}
		case "volume":
			if !validName.MatchString(m.Source) {
				return fmt.Errorf("mounts[%d]: volume name %q: use letters, digits, '_', '.', '-': %w", i, m.Source, errdefs.ErrInvalid)
			}
		default:
			return fmt.Errorf("mounts[%d]: type %q: use bind or volume: %w", i, m.Type, errdefs.ErrInvalid)
		}
	}
	for _, cp := range append(append([]string{}, c.CapAdd...), c.CapDrop...) {
		if _, err := capName(cp); err != nil {
			return err
		}
	}
	if c.StopSignal != "" {
		if _, err := parseSignal(c.StopSignal); err != nil {
			return err
		}
	}
	return nil
}

// applyImageOverrides returns the image config with the container's
// command, env, working directory and user applied (docker's rules: an
// entrypoint given drops the image's cmd unless a cmd is given too).
func applyImageOverrides(img *v1.ConfigFile, c *api.ContainerConfig) *v1.ConfigFile {
	out := *img
	oc := img.Config
	oc.Env = append([]string{}, img.Config.Env...)
	if c.Entrypoint != nil {
		oc.Entrypoint = c.Entrypoint
		if len(c.Entrypoint) == 1 && c.Entrypoint[0] == "" {
			oc.Entrypoint = nil
		}
		oc.Cmd = nil
	}
	if c.Cmd != nil {
		oc.Cmd = c.Cmd
	}
	for _, kv := range c.Env {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range oc.Env {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				oc.Env[i] = kv
				replaced = true
			}
		}
		if !replaced {
			oc.Env = append(oc.Env, kv)
		}
	}
	if c.WorkingDir != "" {
		oc.WorkingDir = c.WorkingDir
	}
	if c.User != "" {
		oc.User = c.User
	}
	if c.StopSignal != "" {
		oc.StopSignal = c.StopSignal
	}
	out.Config = oc
	return &out
}
