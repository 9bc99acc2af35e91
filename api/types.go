// Package api is warrend's versioned API: HTTP/JSON on a unix socket (and
// optionally TCP with mutual TLS), every path under /v1. openapi.yaml in
// this directory is its contract; these are the Go types of its bodies,
// shared by the server (internal/server) and clients (warrenctl, tests).
//
// Errors are JSON bodies {"message": ...} with a status code per class:
// 400 invalid input, 404 not found, 409 name in use or wrong state,
// 501 not supported, 500 anything else.
//
// Interactive calls (attach, exec) are HTTP/1.1 upgrades: the client
// sends "Connection: Upgrade", "Upgrade: warren-stream/1"; the server
// answers 101 and both sides then speak frames (stream.go).
package api

import "time"

// Version is the API version this package describes: the path prefix.
const Version = "v1"

// DefaultSocket is where warrend listens unless told otherwise.
const DefaultSocket = "/run/warrend.sock"

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Message string `json:"message"`
}

// VersionInfo answers GET /v1/version.
type VersionInfo struct {
	Version    string `json:"version"`
	APIVersion string `json:"apiVersion"`
	GoVersion  string `json:"goVersion"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

// Info answers GET /v1/info.
type Info struct {
	Root              string            `json:"root"`
	Containers        int               `json:"containers"`
	ContainersRunning int               `json:"containersRunning"`
	ContainersPaused  int               `json:"containersPaused"`
	ContainersStopped int               `json:"containersStopped"`
	Images            int               `json:"images"`
	DefaultRuntime    string            `json:"defaultRuntime"`
	Runtimes          map[string]string `json:"runtimes"` // name -> binary
	CgroupVersion     string            `json:"cgroupVersion"`
	Kernel            string            `json:"kernel"`
	MonitorPath       string            `json:"monitorPath"`
}

// Mount is one -v: a bind mount of a host path, or a named volume the
// engine keeps under its root.
type Mount struct {
	Type        string `json:"type"`        // "bind" or "volume"
	Source      string `json:"source"`      // host path or volume name
	Destination string `json:"destination"` // path in the container
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// RestartPolicy says when the engine starts a container again after it
// exits: "no" (default), "on-failure" (non-zero exit, at most
// MaximumRetryCount times when > 0), "always", "unless-stopped".
type RestartPolicy struct {
	Name              string `json:"name"`
	MaximumRetryCount int    `json:"maximumRetryCount,omitempty"`
}

// Resources are a container's cgroup limits.
type Resources struct {
	Memory    int64 `json:"memory,omitempty"`    // bytes
	NanoCPUs  int64 `json:"nanoCpus,omitempty"`  // CPUs × 1e9
	PidsLimit int64 `json:"pidsLimit,omitempty"` // >0 limits
}

// ContainerConfig is the body of POST /v1/containers. Unset fields take
// the image's values (command, env, working directory, user) or the
// engine's defaults.
type ContainerConfig struct {
	Name       string    `json:"name,omitempty"`
	Image      string    `json:"image"`
	Entrypoint []string  `json:"entrypoint,omitempty"` // replaces the image's; [""] clears it
	Cmd        []string  `json:"cmd,omitempty"`
	Env        []string  `json:"env,omitempty"` // KEY=VALUE, added to the image's
	WorkingDir string    `json:"workingDir,omitempty"`
	User       string    `json:"user,omitempty"` // name, uid, uid:gid, name:group
	Hostname   string    `json:"hostname,omitempty"`
	Tty        bool      `json:"tty,omitempty"`
	OpenStdin  bool      `json:"openStdin,omitempty"`
	Mounts     []Mount   `json:"mounts,omitempty"`
	ReadOnly   bool      `json:"readOnly,omitempty"` // read-only root filesystem
	Resources  Resources `json:"resources,omitempty"`
	CapAdd     []string  `json:"capAdd,omitempty"`
	CapDrop    []string  `json:"capDrop,omitempty"`
	Privileged bool      `json:"privileged,omitempty"`
	// Namespace modes: "" (new, the default), "host" (the engine's own),
	// "container:ID" (join that running container's), and for Network
	// also "none" (a new namespace with only lo), "bridge" (the default
	// network) or a network's name; "" is the default network.
	PidMode     string        `json:"pidMode,omitempty"`
	IpcMode     string        `json:"ipcMode,omitempty"`
	UTSMode     string        `json:"utsMode,omitempty"`
	NetworkMode string        `json:"networkMode,omitempty"`
	UsernsMode  string        `json:"usernsMode,omitempty"` // "" or "host": none; "auto": a private 65536-id range
	Restart     RestartPolicy `json:"restartPolicy,omitempty"`
	AutoRemove  bool          `json:"autoRemove,omitempty"`
	Runtime     string        `json:"runtime,omitempty"` // a runtime name from /v1/info; default the engine's
	// Pod makes the container a member of a pod: it joins the pod's
	// network, IPC and UTS (and with SharePid, pid) namespaces; the
	// namespace modes must then be unset.
	Pod string `json:"pod,omitempty"`
	// Ports are published on a bridge network (not with a pod: the
	// pod's ports are).
	Ports       []PortMapping     `json:"ports,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	StopSignal  string            `json:"stopSignal,omitempty"`
	StopTimeout *int              `json:"stopTimeout,omitempty"` // seconds; default 10
}

// CreateResponse answers POST /v1/containers.
type CreateResponse struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Warnings []string `json:"warnings,omitempty"`
}

// Container states as the API reports them.
const (
	StateCreating = "creating" // being created; never seen once create returns
	StateCreated  = "created"
	StateStarting = "starting"
	StateRunning  = "running"
	StatePaused   = "paused"
	StateExited   = "exited"
	StateRemoving = "removing"
)

// ContainerState is the live part of a container's record.
type ContainerState struct {
	Status       string    `json:"status"`
	Pid          int       `json:"pid,omitempty"`
	MonitorPid   int       `json:"monitorPid,omitempty"`
	ExitCode     int       `json:"exitCode"`
	OOMKilled    bool      `json:"oomKilled,omitempty"`
	Error        string    `json:"error,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	RestartCount int       `json:"restartCount"`
	// StoppedByUser: the last exit followed stop or kill through the
	// engine (unless-stopped and always then keep it stopped).
	StoppedByUser bool `json:"stoppedByUser,omitempty"`
}

// Container answers GET /v1/containers/{id} and is an element of the list.
type Container struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Image   string          `json:"image"`
	ImageID string          `json:"imageId"`
	Created time.Time       `json:"created"`
	Runtime string          `json:"runtime"`
	Bundle  string          `json:"bundle"`
	Command []string        `json:"command"`
	Config  ContainerConfig `json:"config"`
	State   ContainerState  `json:"state"`
	// Network and Addresses: its bridge network and addresses there
	// (a pod member reports its pod's).
	Network   string   `json:"network,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// ExecConfig is the body of POST /v1/containers/{id}/exec.
type ExecConfig struct {
	Cmd        []string `json:"cmd"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
	Tty        bool     `json:"tty,omitempty"`
	OpenStdin  bool     `json:"openStdin,omitempty"`
	Privileged bool     `json:"privileged,omitempty"`
}

// WaitResponse answers POST /v1/containers/{id}/wait.
type WaitResponse struct {
	ExitCode  int    `json:"exitCode"`
	OOMKilled bool   `json:"oomKilled,omitempty"`
	Error     string `json:"error,omitempty"`
}

// LogLine is one line of GET /v1/containers/{id}/logs (JSON lines).
type LogLine struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"`
	Log    string    `json:"log"`
}

// Stats answers GET /v1/containers/{id}/stats: one sample of its cgroup.
type Stats struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Read        time.Time `json:"read"`
	CPUUsageNs  uint64    `json:"cpuUsageNs"`
	MemoryUsage uint64    `json:"memoryUsage"`
	MemoryLimit uint64    `json:"memoryLimit,omitempty"`
	Pids        uint64    `json:"pids"`
	PidsLimit   uint64    `json:"pidsLimit,omitempty"`
}

// Process is a row of GET /v1/containers/{id}/top.
type Process struct {
	Pid     int    `json:"pid"`
	PPid    int    `json:"ppid"`
	UID     int    `json:"uid"`
	State   string `json:"state"`
	Command string `json:"command"`
}

// Event is one line of GET /v1/events: Type "container" with Action
// create, start, die, oom, stop, kill, pause, unpause, restart, destroy;
// Type "image" with Action pull, import, remove.
type Event struct {
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"`
	Action     string            `json:"action"`
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Image is an element of GET /v1/images and the answer of
// GET /v1/images/{name}.
type Image struct {
	Name     string    `json:"name"`
	Manifest string    `json:"manifest"` // digest
	Config   string    `json:"config"`   // digest
	Size     int64     `json:"size"`
	Created  time.Time `json:"created,omitzero"`
	Layers   int       `json:"layers"`
	Platform string    `json:"platform,omitempty"`
}

// PullRequest is the body of POST /v1/images/pull; ImportRequest of
// POST /v1/images/import. Both answer with a stream of progress lines
// (JSON, ImageProgress) ending in one with Result or Error set.
type PullRequest struct {
	Reference string `json:"reference"`
	Insecure  bool   `json:"insecure,omitempty"`
}

// ImportRequest names a source on the daemon's file system.
type ImportRequest struct {
	Source string `json:"source"` // oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:TAG]
	Name   string `json:"name,omitempty"`
}

// ImageProgress is one line of a pull or import: a layer's phase
// ("fetch", "unpack", ...), bytes done of its size, or the end.
type ImageProgress struct {
	Phase  string `json:"phase,omitempty"`
	Layer  int    `json:"layer,omitempty"`
	Layers int    `json:"layers,omitempty"`
	Digest string `json:"digest,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Done   int64  `json:"done,omitempty"`
	Stored bool   `json:"stored,omitempty"`
	Result *Image `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// PruneResponse answers POST /v1/images/prune.
type PruneResponse struct {
	Removed []string `json:"removed"`
}

// PortMapping publishes a container (or pod) port on the host:
// -p [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp].
type PortMapping struct {
	HostIP        string `json:"hostIp,omitempty"` // "" all addresses
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"` // tcp (default) or udp
}

// NetworkConfig is the body of POST /v1/networks. Subnets are CIDR
// strings; a gateway defaults to the subnet's first address. At least
// one of Subnet and Subnet6.
type NetworkConfig struct {
	Name     string `json:"name"`
	Subnet   string `json:"subnet,omitempty"`
	Gateway  string `json:"gateway,omitempty"`
	Subnet6  string `json:"subnet6,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
	Internal bool   `json:"internal,omitempty"` // no outbound NAT
}

// Network is a bridge network as GET /v1/networks reports it.
type Network struct {
	Name     string    `json:"name"`
	Bridge   string    `json:"bridge"`
	Subnet   string    `json:"subnet,omitempty"`
	Gateway  string    `json:"gateway,omitempty"`
	Subnet6  string    `json:"subnet6,omitempty"`
	Gateway6 string    `json:"gateway6,omitempty"`
	Internal bool      `json:"internal,omitempty"`
	Default  bool      `json:"default,omitempty"`
	Created  time.Time `json:"created"`
	// Endpoints: owner id -> its addresses (inspect only).
	Endpoints map[string][]string `json:"endpoints,omitempty"`
}

// PodConfig is the body of POST /v1/pods.
type PodConfig struct {
	Name string `json:"name,omitempty"`
	// SharePid: members share one pid namespace, held by an infra
	// process (Kubernetes' shareProcessNamespace).
	SharePid  bool              `json:"sharePid,omitempty"`
	Network   string            `json:"network,omitempty"` // a network name (default: the default network), "none" or "host"
	Ports     []PortMapping     `json:"ports,omitempty"`
	Hostname  string            `json:"hostname,omitempty"` // default: the pod's name
	Resources Resources         `json:"resources,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Pod is a pod as GET /v1/pods reports it.
type Pod struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Config  PodConfig `json:"config"`
	// Status: "creating", "running" (its namespaces exist), "removing".
	Status    string   `json:"status"`
	Netns     string   `json:"netns,omitempty"`     // the pinned network namespace (visible to `ip netns`)
	Addresses []string `json:"addresses,omitempty"` // on its network
	InfraID   string   `json:"infraId,omitempty"`   // with SharePid
	Members   []string `json:"members,omitempty"`   // container ids
}
