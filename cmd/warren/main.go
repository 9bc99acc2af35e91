// Command warren is an OCI container runtime with runc's command line.
//
// The cgroup-aware GOMAXPROCS of Go 1.25+ is off: it reads /proc/self/cgroup
// and mountinfo at every start (twice per container: warren and its init)
// and keeps re-reading them, for short-lived processes that gain nothing.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/linux"
	"github.com/warren-runtime/warren/internal/runtime"
	"github.com/warren-runtime/warren/internal/spec"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// exitError carries a specific exit status (the container's, for run).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	if runtime.IsInit() && len(os.Args) > 1 && os.Args[1] == "init" {
		runtime.InitMain()
	}
	spec.Version = version
	// GOMAXPROCS stays as the runtime set it: lowering it here stops the
	// world and tears a P down in every warren process, which cost more
	// wall time than the second P's spinning (interleaved, 40 rounds:
	// create+start+state+delete 75.1 -> 72.0 ms, run 37.8 -> 35.9 ms,
	// exec unchanged, ~1 ms more CPU). The Go init, when one runs, gets
	// GOMAXPROCS=1 in its environment.
	// Nothing warren's caller left open may reach a process warren starts
	// (a hook, the container) unless passed on purpose (--preserve-fds,
	// LISTEN_FDS): those are handed over explicitly, whatever their flags.
	_ = linux.CloseExecFrom(3)
	app := newApp()
	err := app.Run(os.Args)
	if err == nil {
		os.Exit(0)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	var ce cli.ExitCoder
	if errors.As(err, &ce) && ce.ExitCode() == 0 {
		os.Exit(0)
	}
	if !loggingReady {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	slog.Error(err.Error())
	if logToFile {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(1)
}

// newApp is warren's command line: global flags and commands.
func newApp() *cli.App {
	app := cli.NewApp()
	app.Name = "warren"
	app.Usage = "an OCI container runtime (runc-compatible)"
	app.Version = version
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Printf("warren version %s\nspec: %s\ngo: %s\n", version, specVersion(), goVersion())
	}
	app.Flags = []cli.Flag{
		cli.BoolFlag{Name: "debug", Usage: "enable debug logging"},
		cli.StringFlag{Name: "log", Value: "", Usage: "set the log file to write warren logs to (default is stderr)"},
		cli.StringFlag{Name: "log-format", Value: "text", Usage: "set the log format ('text' or 'json')"},
		cli.StringFlag{Name: "root", Value: runtime.DefaultRoot, Usage: "root directory for storage of container state (this should be located in tmpfs; default $XDG_RUNTIME_DIR/warren for an unprivileged user)"},
		cli.BoolFlag{Name: "systemd-cgroup", Usage: "use the systemd cgroup driver (not supported yet: create and run fail with a clear error)"},
		cli.StringFlag{Name: "rootless", Value: "auto", Usage: "ignore cgroup permission errors ('true', 'false', or 'auto': true for an unprivileged user or root in a user namespace)"},
		cli.StringFlag{Name: "criu", Value: "criu", Usage: "accepted for compatibility; checkpoint/restore is not supported"},
	}
	app.Commands = []cli.Command{
		createCommand, deleteCommand, enterCommand, eventsCommand, execCommand, featuresCommand, killCommand, listCommand,
		pauseCommand, psCommand, resumeCommand, runCommand, specCommand, startCommand, stateCommand,
		updateCommand,
	}
	app.Before = setupLogging
	app.ExitErrHandler = func(*cli.Context, error) {}
	cli.OsExiter = func(int) {}
	return app
}

var logToFile, loggingReady bool

// setupLogging honours --log and --log-format as runc does: containerd and
// podman read the JSON lines ({"level":"error","msg":...,"time":...}).
func setupLogging(c *cli.Context) error {
	var w io.Writer = os.Stderr
	if p := c.GlobalString("log"); p != "" && p != "/dev/stderr" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("--log: open %s: %w", p, err)
		}
		w = f
		logToFile = true
	}
	level := slog.LevelInfo
	if c.GlobalBool("debug") {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey {
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}
	switch c.GlobalString("log-format") {
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(w, opts)))
	case "text":
		if logToFile {
			slog.SetDefault(slog.New(slog.NewTextHandler(w, opts)))
		} else {
			slog.SetDefault(slog.New(plainHandler{w: w, level: level}))
		}
	default:
		return fmt.Errorf("--log-format: unknown format %q (want text or json)", c.GlobalString("log-format"))
	}
	loggingReady = true
	switch c.GlobalString("rootless") {
	case "auto", "true", "false":
	default:
		return fmt.Errorf("--rootless: invalid value %q (want true, false or auto)", c.GlobalString("rootless"))
	}
	return nil
}
