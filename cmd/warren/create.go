package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
	"github.com/warren-runtime/warren/internal/spec"
)

var createFlags = []cli.Flag{
	cli.StringFlag{Name: "bundle, b", Value: "", Usage: "path to the root of the bundle directory, defaults to the current directory"},
	cli.StringFlag{Name: "console-socket", Value: "", Usage: "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"},
	cli.StringFlag{Name: "pid-file", Value: "", Usage: "specify the file to write the process id to"},
	cli.BoolFlag{Name: "no-pivot", Usage: "do not use pivot root to jail process inside rootfs"},
	cli.BoolFlag{Name: "no-new-keyring", Usage: "do not create a new session keyring for the container"},
	cli.IntFlag{Name: "preserve-fds", Usage: "pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)"},
}

var createCommand = cli.Command{
	Name:  "create",
	Usage: "create a container",
	ArgsUsage: `<container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.`,
	Description: `The create command creates an instance of a container for a bundle. The bundle
is a directory with a specification file named "config.json" and a root
filesystem. The container's init waits until "warren start" runs the user
process.`,
	Flags: createFlags,
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, 1)
		if err != nil {
			return err
		}
		_, _, cons, err := createContainer(c, id, true)
		if cons != nil {
			cons.close()
		}
		return err
	},
}

// loadBundle loads and validates the bundle's config.json.
func loadBundle(c *cli.Context) (string, *specs.Spec, []byte, error) {
	bundle := c.String("bundle")
	if bundle == "" {
		bundle = "."
	}
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return "", nil, nil, fmt.Errorf("--bundle %s: %w", bundle, err)
	}
	s, raw, err := spec.LoadRaw(abs)
	if err != nil {
		return "", nil, nil, err
	}
	if err := spec.Validate(s, abs); err != nil {
		return "", nil, nil, err
	}
	return abs, s, raw, nil
}

// createContainer creates the container; detach says whether no warren
// process will stay to relay a terminal (create, run -d). The console setup
// is returned for the caller to relay or close.
func createContainer(c *cli.Context, id string, detach bool) (*runtime.Container, int, *consoleSetup, error) {
	if c.GlobalBool("systemd-cgroup") {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			return nil, 0, nil, fmt.Errorf("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system): %w", errdefs.ErrNotSupported)
		}
		return nil, 0, nil, fmt.Errorf("--systemd-cgroup: the systemd cgroup driver is not supported yet: %w", errdefs.ErrNotSupported)
	}
	if err := runtime.ValidateID(id); err != nil {
		return nil, 0, nil, err
	}
	if n := c.Int("preserve-fds"); n < 0 {
		return nil, 0, nil, fmt.Errorf("--preserve-fds: must not be negative (got %d): %w", n, errdefs.ErrInvalid)
	}
	bundle, s, raw, err := loadBundle(c)
	if err != nil {
		return nil, 0, nil, err
	}
	if err := checkUnprivileged(s); err != nil {
		return nil, 0, nil, err
	}
	preserve := c.Int("preserve-fds")
	// Socket activation: fds passed to us with LISTEN_FDS go on to the
	// container, which sees itself as their owner (runc does the same).
	if v := os.Getenv("LISTEN_FDS"); v != "" && s.Process != nil {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			preserve += n
			s.Process.Env = append(s.Process.Env, "LISTEN_FDS="+v, "LISTEN_PID=1")
			raw = nil // amended: encode the spec
		}
	}
	slog.Debug("creating container", "id", id, "bundle", bundle, "preserveFds", preserve)
	cons, err := newConsole(c.String("console-socket"), s.Process != nil && s.Process.Terminal, detach)
	if err != nil {
		return nil, 0, nil, err
	}
	if sz := cons.size(); sz != nil {
		s.Process.ConsoleSize = sz
		raw = nil
	}
	ctr, pid, err := runtime.Create(runtime.CreateOpts{
		ConsoleSocket: cons.send,
		Root:          rootDir(c),
		ID:            id,
		Bundle:        bundle,
		Spec:          s,
		Config:        raw,
		PidFile:       absOrEmpty(c.String("pid-file")),
		NoPivot:       c.Bool("no-pivot"),
		NoNewKeyring:  c.Bool("no-new-keyring"),
		PreserveFDs:   preserve,
		Rootless:      rootlessMode(c),
		Foreground:    !detach,
	})
	if err != nil {
		cons.close()
		return nil, 0, nil, err
	}
	return ctr, pid, cons, nil
}

func absOrEmpty(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// checkUnprivileged refuses, before anything is created, a config an
// unprivileged user cannot run: without a new user namespace it could not
// create the others, nor join namespaces it does not own.
func checkUnprivileged(s *specs.Spec) error {
	if os.Geteuid() == 0 {
		return nil
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.UserNamespace && ns.Path == "" {
			return nil
		}
	}
	return fmt.Errorf("linux.namespaces: warren runs as uid %d, and an unprivileged user can only create a container in a new user namespace: add {\"type\": \"user\"} with linux.uidMappings and linux.gidMappings (\"warren spec --rootless\" writes such a config): %w", os.Geteuid(), errdefs.ErrInvalid)
}
