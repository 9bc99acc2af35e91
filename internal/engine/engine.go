// Package engine is warrend's core: containers made from images, run
// through an OCI runtime binary (internal/ociruntime) under a small
// per-container monitor (internal/monitor) that owns their stdio, logs
// and exit status, so the daemon can die and come back without touching
// them. Records live in internal/store; every state change is written
// there before and after the step it names, so Recover can finish or undo
// whatever a killed daemon left half-done.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/images"
	"github.com/warren-runtime/warren/internal/network"
	"github.com/warren-runtime/warren/internal/ociruntime"
	"github.com/warren-runtime/warren/internal/store"
)

// RuntimeConfig is one OCI runtime the engine may use.
type RuntimeConfig struct {
	Path string   // binary
	Args []string // global options before the command
	// SpecVersion is the config.json version written for it: the
	// highest its `features` reports (runc 1.1: 1.0.2), or 1.0.2 when it
	// has no features command (crun 1.8), which refuses newer ones.
	SpecVersion string
}

// probeSpecVersion asks a runtime which config version it takes.
func probeSpecVersion(rc RuntimeConfig) string {
	out, err := exec.Command(rc.Path, append(slices.Clone(rc.Args), "features")...).Output()
	var f struct {
		OCIVersionMax string `json:"ociVersionMax"`
	}
	if err != nil || json.Unmarshal(out, &f) != nil || f.OCIVersionMax == "" {
		return "1.0.2"
	}
	v, _, _ := strings.Cut(f.OCIVersionMax, "-")
	return v
}

// Config wires an engine.
type Config struct {
	// Root holds images (internal/images), engine.db, containers/<id>
	// and volumes/<name>. Default /var/lib/warren.
	Root string
	// RunRoot holds the runtimes' --root directories (tmpfs /run: a
	// reboot forgets them with the containers). Default /run/warrend.
	RunRoot string
	// MonitorPath is the warren-monitor binary.
	MonitorPath    string
	Runtimes       map[string]RuntimeConfig
	DefaultRuntime string
	// LogMaxSize (bytes) and LogMaxFiles rotate each container's log.
	LogMaxSize  int64
	LogMaxFiles int
	// NetnsDir is where named network namespaces are pinned (default
	// /run/netns, so `ip netns` lists them).
	NetnsDir string
	// UsernsBase, UsernsSize, UsernsCount: the host id ranges of
	// --userns auto (default 2000000000 + n*65536, 1000 ranges).
	UsernsBase, UsernsSize, UsernsCount uint32
	Logger                              *slog.Logger
}

// Engine is the running engine.
type Engine struct {
	cfg    Config
	db     *store.Store
	images *images.Store
	log    *slog.Logger
	events *broker

	netMu sync.Mutex // making the default network

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	exits map[string]chan struct{} // closed when the container's current run ends
	// restarts holds pending restart timers, cancelled by stop/rm.
	restarts map[string]*time.Timer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens the engine's stores. Call Recover before serving.
func New(cfg Config) (*Engine, error) {
	if cfg.Root == "" {
		cfg.Root = images.DefaultRoot
	}
	if cfg.RunRoot == "" {
		cfg.RunRoot = "/run/warrend"
	}
	if cfg.NetnsDir == "" {
		cfg.NetnsDir = network.DefaultNetnsDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.UsernsSize == 0 {
		cfg.UsernsBase, cfg.UsernsSize, cfg.UsernsCount = 2000000000, 65536, 1000
	}
	if cfg.LogMaxFiles == 0 {
		cfg.LogMaxFiles = 3
	}
	if _, ok := cfg.Runtimes[cfg.DefaultRuntime]; !ok {
		return nil, fmt.Errorf("default runtime %q is not among the configured runtimes %v: %w", cfg.DefaultRuntime, runtimeNames(cfg.Runtimes), errdefs.ErrInvalid)
	}
	if st, err := os.Stat(cfg.MonitorPath); err != nil || st.IsDir() {
		return nil, fmt.Errorf("monitor binary %q: not found (build it with make warren-monitor or pass --monitor): %w", cfg.MonitorPath, errdefs.ErrNotFound)
	}
	rts := map[string]RuntimeConfig{}
	for n, rc := range cfg.Runtimes {
		if rc.SpecVersion == "" {
			rc.SpecVersion = probeSpecVersion(rc)
		}
		rts[n] = rc
	}
	cfg.Runtimes = rts
	for _, d := range []string{cfg.Root, filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.Root, "volumes"), cfg.RunRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("engine directory %s: %w", d, err)
		}
	}
	// Search (not read) permission for everyone on the path to the
	// containers and volumes: the root of a --userns auto container is an
	// unmapped id on the host and must reach its rootfs and volumes.
	// Nothing is listable.
	for _, d := range []string{cfg.Root, filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.Root, "volumes")} {
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("engine directory %s: %w", d, err)
		}
	}
	imgs, err := images.Open(cfg.Root)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(cfg.Root, "engine.db"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		cfg: cfg, db: db, images: imgs, log: cfg.Logger, events: newBroker(),
		locks: map[string]*sync.Mutex{}, exits: map[string]chan struct{}{}, restarts: map[string]*time.Timer{},
		ctx: ctx, cancel: cancel,
	}, nil
}

// Close stops watching containers (they keep running under their
// monitors) and closes the store.
func (e *Engine) Close() error {
	e.cancel()
	e.mu.Lock()
	for _, t := range e.restarts {
		t.Stop()
	}
	e.mu.Unlock()
	e.wg.Wait()
	return e.db.Close()
}

func runtimeNames(m map[string]RuntimeConfig) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// lock serialises the operations on one container.
func (e *Engine) lock(id string) func() {
	e.mu.Lock()
	l := e.locks[id]
	if l == nil {
		l = new(sync.Mutex)
		e.locks[id] = l
	}
	e.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// exitChan is closed when the container's current run ends.
func (e *Engine) exitChan(id string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.exits[id]
	if ch == nil {
		ch = make(chan struct{})
		e.exits[id] = ch
	}
	return ch
}

func (e *Engine) signalExit(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch := e.exits[id]; ch != nil {
		close(ch)
		delete(e.exits, id)
	}
}

func (e *Engine) runtimeOf(r *store.Record) *ociruntime.Runtime {
	return &ociruntime.Runtime{Path: r.RuntimePath, Root: r.RuntimeRoot, Args: r.RuntimeArgs,
		Log: filepath.Join(r.Dir, "runtime.log")}
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// get resolves a reference (id, name, id prefix) to its record.
func (e *Engine) get(ref string) (*store.Record, error) {
	id, err := e.db.Resolve(ref)
	if err != nil {
		return nil, err
	}
	return e.db.Get(id)
}

// Inspect returns a container.
func (e *Engine) Inspect(ref string) (*api.Container, error) {
	r, err := e.get(ref)
	if err != nil {
		return nil, err
	}
	return &r.Container, nil
}

// List returns containers, all of them or only those running or paused.
func (e *Engine) List(all bool) ([]api.Container, error) {
	rs, err := e.db.List()
	if err != nil {
		return nil, err
	}
	out := []api.Container{}
	for _, r := range rs {
		if all || r.State.Status == api.StateRunning || r.State.Status == api.StatePaused {
			out = append(out, r.Container)
		}
	}
	return out, nil
}

// Info describes the engine.
func (e *Engine) Info() (*api.Info, error) {
	rs, err := e.db.List()
	if err != nil {
		return nil, err
	}
	in := &api.Info{Root: e.cfg.Root, Containers: len(rs), DefaultRuntime: e.cfg.DefaultRuntime,
		Runtimes: map[string]string{}, MonitorPath: e.cfg.MonitorPath, CgroupVersion: cgroupVersion()}
	for n, rt := range e.cfg.Runtimes {
		in.Runtimes[n] = rt.Path
	}
	for _, r := range rs {
		switch r.State.Status {
		case api.StateRunning, api.StateStarting:
			in.ContainersRunning++
		case api.StatePaused:
			in.ContainersPaused++
		default:
			in.ContainersStopped++
		}
	}
	if imgs, err := e.images.List(); err == nil {
		in.Images = len(imgs)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		in.Kernel = strings.TrimSpace(string(b))
	}
	return in, nil
}

// Events subscribes to the event stream; cancel ctx to stop.
func (e *Engine) Events(ctx context.Context, since time.Time) <-chan api.Event {
	return e.events.subscribe(ctx, since)
}

func (e *Engine) emit(typ, action, id, name string, attrs map[string]string) {
	e.events.publish(api.Event{Time: time.Now().UTC(), Type: typ, Action: action, ID: id, Name: name, Attributes: attrs})
}
