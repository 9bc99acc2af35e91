package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/api/client"
)

// exitCode makes warrenctl exit with a container's or process's status.
type exitCode struct{ code int }

func (e *exitCode) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func apiClient(c *cli.Context) (*client.Client, error) {
	var tf *client.TLSFiles
	if c.GlobalString("tls-cert") != "" || c.GlobalString("tls-ca") != "" {
		tf = &client.TLSFiles{Cert: c.GlobalString("tls-cert"), Key: c.GlobalString("tls-key"), CA: c.GlobalString("tls-ca")}
	}
	return client.New(c.GlobalString("host"), tf)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

var createFlags = []cli.Flag{
	cli.StringFlag{Name: "name", Usage: "name the container"},
	cli.StringSliceFlag{Name: "env, e", Usage: "set KEY=VALUE (KEY alone: from this environment)"},
	cli.StringFlag{Name: "workdir, w", Usage: "working directory in the container"},
	cli.StringFlag{Name: "user, u", Usage: "user[:group] (name or id) to run as"},
	cli.StringFlag{Name: "entrypoint", Usage: "replace the image's entrypoint (\"\" clears it)"},
	cli.StringSliceFlag{Name: "volume, v", Usage: "bind mount /host:/ctr[:ro], named volume NAME:/ctr[:ro], or a new volume /ctr"},
	cli.BoolFlag{Name: "read-only", Usage: "mount the root file system read-only"},
	cli.StringFlag{Name: "memory, m", Usage: "memory limit (e.g. 512m, 1g)"},
	cli.StringFlag{Name: "cpus", Usage: "CPU limit (e.g. 1.5)"},
	cli.Int64Flag{Name: "pids-limit", Usage: "most processes at once (0: no limit)"},
	cli.StringSliceFlag{Name: "cap-add", Usage: "add a capability (or ALL)"},
	cli.StringSliceFlag{Name: "cap-drop", Usage: "drop a capability (or ALL)"},
	cli.BoolFlag{Name: "privileged", Usage: "every capability, no masked paths, writable /sys"},
	cli.StringFlag{Name: "pid", Usage: "pid namespace: private (default), host, container:NAME"},
	cli.StringFlag{Name: "ipc", Usage: "ipc namespace: private (default), host, container:NAME"},
	cli.StringFlag{Name: "uts", Usage: "uts namespace: private (default), host, container:NAME"},
	cli.StringFlag{Name: "network, net", Usage: "network: bridge (the default network, the default), a network's name, none (only lo), host, container:NAME"},
	cli.StringSliceFlag{Name: "publish, p", Usage: "publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp]"},
	cli.StringFlag{Name: "pod", Usage: "join a pod (its network, IPC, UTS and shared pid namespaces)"},
	cli.StringFlag{Name: "userns", Usage: "user namespace: host (default) or auto (a private range of 65536 ids)"},
	cli.StringFlag{Name: "hostname", Usage: "host name (default: the short id)"},
	cli.BoolFlag{Name: "tty, t", Usage: "give the process a terminal"},
	cli.BoolFlag{Name: "interactive, i", Usage: "keep stdin open"},
	cli.StringFlag{Name: "restart", Usage: "restart policy: no, on-failure[:N], always, unless-stopped"},
	cli.BoolFlag{Name: "rm", Usage: "remove the container when it exits"},
	cli.StringFlag{Name: "runtime", Usage: "OCI runtime (a name warrenctl info lists)"},
	cli.StringSliceFlag{Name: "label, l", Usage: "KEY=VALUE label"},
	cli.StringFlag{Name: "stop-signal", Usage: "signal stop sends first (default: the image's, else SIGTERM)"},
	cli.IntFlag{Name: "stop-timeout", Value: -1, Usage: "seconds stop waits before SIGKILL (default 10)"},
}

// containerConfig builds the API request from create/run flags.
func containerConfig(c *cli.Context) (api.ContainerConfig, error) {
	if c.NArg() < 1 {
		return api.ContainerConfig{}, fmt.Errorf("%s: name an image", c.Command.Name)
	}
	cfg := api.ContainerConfig{
		Name: c.String("name"), Image: c.Args().First(), Env: envList(c.StringSlice("env")),
		WorkingDir: c.String("workdir"), User: c.String("user"), ReadOnly: c.Bool("read-only"),
		CapAdd: c.StringSlice("cap-add"), CapDrop: c.StringSlice("cap-drop"), Privileged: c.Bool("privileged"),
		PidMode: c.String("pid"), IpcMode: c.String("ipc"), UTSMode: c.String("uts"), NetworkMode: c.String("network"),
		UsernsMode: c.String("userns"), Hostname: c.String("hostname"), Tty: c.Bool("tty"), OpenStdin: c.Bool("interactive"),
		AutoRemove: c.Bool("rm"), Runtime: c.String("runtime"), StopSignal: c.String("stop-signal"),
	}
	if args := c.Args().Tail(); len(args) > 0 {
		cfg.Cmd = args
	}
	cfg.Pod = c.String("pod")
	ports, err := portFlags(c)
	if err != nil {
		return cfg, err
	}
	cfg.Ports = ports
	if c.IsSet("entrypoint") {
		cfg.Entrypoint = []string{c.String("entrypoint")}
	}
	for _, v := range c.StringSlice("volume") {
		m, err := parseVolume(v)
		if err != nil {
			return cfg, err
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	if cfg.Resources, err = resourceFlags(c); err != nil {
		return cfg, err
	}
	if v := c.String("restart"); v != "" {
		p, err := parseRestart(v)
		if err != nil {
			return cfg, err
		}
		cfg.Restart = p
	}
	if t := c.Int("stop-timeout"); t >= 0 {
		cfg.StopTimeout = &t
	}
	for _, l := range c.StringSlice("label") {
		k, v, _ := strings.Cut(l, "=")
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[k] = v
	}
	return cfg, nil
}

var containerCommands = []cli.Command{
	{Name: "run", Usage: "create and start a container from an image", ArgsUsage: "IMAGE [COMMAND [ARG...]]",
		Flags:          append([]cli.Flag{cli.BoolFlag{Name: "detach, d", Usage: "print the id and leave it running"}}, createFlags...),
		SkipArgReorder: true, UseShortOptionHandling: true, Action: runContainer},
	{Name: "create", Usage: "create a container (start it later)", ArgsUsage: "IMAGE [COMMAND [ARG...]]",
		Flags: createFlags, SkipArgReorder: true, UseShortOptionHandling: true, Action: createContainer},
	{Name: "start", Usage: "start containers", ArgsUsage: "CONTAINER...",
		Flags:  []cli.Flag{cli.BoolFlag{Name: "attach, a", Usage: "attach to its output and wait for it"}},
		Action: startContainers},
	{Name: "ps", Usage: "list containers", Flags: []cli.Flag{
		cli.BoolFlag{Name: "all, a", Usage: "also those not running"},
		cli.BoolFlag{Name: "quiet, q", Usage: "only ids"},
		formatFlag}, Action: listContainers},
	{Name: "inspect", Usage: "show containers' records (JSON)", ArgsUsage: "CONTAINER...", Action: inspectContainers},
	{Name: "logs", Usage: "show a container's output", ArgsUsage: "CONTAINER", Flags: []cli.Flag{
		cli.BoolFlag{Name: "follow, f", Usage: "keep printing new output until it exits"},
		cli.StringFlag{Name: "tail, n", Value: "all", Usage: "only the last N lines"},
		cli.BoolFlag{Name: "timestamps", Usage: "prefix each line with its time"}}, Action: logs},
	{Name: "exec", Usage: "run a process in a running container", ArgsUsage: "CONTAINER COMMAND [ARG...]",
		SkipArgReorder: true, UseShortOptionHandling: true, Flags: []cli.Flag{
			cli.BoolFlag{Name: "tty, t", Usage: "give it a terminal"},
			cli.BoolFlag{Name: "interactive, i", Usage: "keep stdin open"},
			cli.StringSliceFlag{Name: "env, e", Usage: "KEY=VALUE"},
			cli.StringFlag{Name: "workdir, w"},
			cli.StringFlag{Name: "user, u"},
			cli.BoolFlag{Name: "privileged"},
			cli.BoolFlag{Name: "detach, d", Usage: "not supported: exec waits for its process"},
		}, Action: execContainer},
	{Name: "stop", Usage: "stop containers: the stop signal, then SIGKILL after the timeout", ArgsUsage: "CONTAINER...",
		Flags: []cli.Flag{cli.IntFlag{Name: "time, t", Value: -1, Usage: "seconds to wait (default: the container's, else 10)"}}, Action: stopContainers},
	{Name: "restart", Usage: "stop and start containers", ArgsUsage: "CONTAINER...",
		Flags: []cli.Flag{cli.IntFlag{Name: "time, t", Value: -1}}, Action: restartContainers},
	{Name: "kill", Usage: "send a signal to containers", ArgsUsage: "CONTAINER...",
		Flags: []cli.Flag{cli.StringFlag{Name: "signal, s", Value: "SIGKILL"}}, Action: killContainers},
	{Name: "rm", Usage: "remove containers", ArgsUsage: "CONTAINER...",
		Flags: []cli.Flag{cli.BoolFlag{Name: "force, f", Usage: "kill running ones first"}}, Action: removeContainers},
	{Name: "pause", Usage: "freeze containers", ArgsUsage: "CONTAINER...", Action: eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.Pause(ctx, id) })},
	{Name: "unpause", Usage: "thaw containers", ArgsUsage: "CONTAINER...", Action: eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.Unpause(ctx, id) })},
	{Name: "wait", Usage: "wait for containers to stop and print their exit codes", ArgsUsage: "CONTAINER...", Action: waitContainers},
	{Name: "attach", Usage: "attach to a running container's streams", ArgsUsage: "CONTAINER", Action: attachContainer},
	{Name: "stats", Usage: "one sample of containers' CPU, memory and pids", ArgsUsage: "[CONTAINER...]",
		Flags: []cli.Flag{formatFlag}, Action: stats},
	{Name: "top", Usage: "a container's processes", ArgsUsage: "CONTAINER", Action: top},
	{Name: "events", Usage: "stream the engine's events (JSON lines with --format json)", Flags: []cli.Flag{
		cli.StringFlag{Name: "since", Usage: "also past events from this RFC 3339 time"},
		formatFlag}, Action: events},
	{Name: "version", Usage: "warrenctl's and warrend's versions", Action: showVersion},
	{Name: "info", Usage: "what the engine runs and holds (JSON)", Action: showInfo},
	{Name: "pull", Usage: "pull an image through warrend", ArgsUsage: "REFERENCE",
		Flags: []cli.Flag{cli.BoolFlag{Name: "insecure", Usage: "allow a plain-HTTP or unverified-TLS registry"}}, Action: pullViaAPI},
	{Name: "images", Usage: "list warrend's images", Flags: []cli.Flag{formatFlag}, Action: imagesViaAPI},
	{Name: "rmi", Usage: "remove images through warrend (refused while a container uses them)", ArgsUsage: "IMAGE...", Action: rmiViaAPI},
}

func createContainer(c *cli.Context) error {
	cfg, err := containerConfig(c)
	if err != nil {
		return err
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	resp, err := cl.Create(context.Background(), cfg)
	if err != nil {
		return err
	}
	fmt.Println(resp.ID)
	return nil
}

func runContainer(c *cli.Context) error {
	cfg, err := containerConfig(c)
	if err != nil {
		return err
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	ctx := context.Background()
	resp, err := cl.Create(ctx, cfg)
	if err != nil {
		return err
	}
	if c.Bool("detach") {
		if err := cl.Start(ctx, resp.ID); err != nil {
			return err
		}
		fmt.Println(resp.ID)
		return nil
	}
	return startAttached(ctx, cl, resp.ID, cfg.Tty, cfg.OpenStdin)
}

// startAttached starts a container with warrenctl's streams attached
// from its first byte and exits with its status (the daemon answers once
// an --rm container is gone).
func startAttached(ctx context.Context, cl *client.Client, id string, tty, stdin bool) error {
	s, restore, err := stream(tty, stdin)
	if err != nil {
		return err
	}
	if !tty {
		// docker's sig-proxy: SIGINT and SIGTERM go to the container
		// (with a terminal, ^C is a byte the pty turns into SIGINT).
		stop := proxySignals(ctx, cl, id)
		defer stop()
	}
	w, err := cl.StartAttached(ctx, id, s)
	restore()
	if err != nil {
		return err
	}
	if w.Error != "" {
		fmt.Fprintln(os.Stderr, "warrenctl: "+w.Error)
	}
	if w.ExitCode != 0 {
		return &exitCode{w.ExitCode}
	}
	return nil
}

// proxySignals forwards SIGINT and SIGTERM to the container's process.
func proxySignals(ctx context.Context, cl *client.Client, id string) func() {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, unix.SIGINT, unix.SIGTERM)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				cl.Kill(ctx, id, unix.SignalName(sig.(unix.Signal)))
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// stream wires warrenctl's stdio for an attach or exec: with a terminal,
// raw mode and window sizes (SIGWINCH); restore undoes it.
func stream(tty, stdin bool) (client.Stream, func(), error) {
	s := client.Stream{Stdout: os.Stdout, Stderr: os.Stderr}
	if stdin {
		s.Stdin = os.Stdin
	}
	restore := func() {}
	if !tty {
		return s, restore, nil
	}
	fd := int(os.Stdin.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		// Not a terminal (a script): the container still gets a pty.
		return s, restore, nil
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return s, restore, err
	}
	resize := make(chan [2]uint16, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	send := func() {
		if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil {
			select {
			case resize <- [2]uint16{ws.Row, ws.Col}:
			default:
			}
		}
	}
	send()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				send()
			case <-done:
				return
			}
		}
	}()
	s.Resize = resize
	return s, func() {
		signal.Stop(winch)
		close(done)
		unix.IoctlSetTermios(fd, unix.TCSETS, old)
	}, nil
}

func startContainers(c *cli.Context) error {
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if c.Bool("attach") {
		if c.NArg() != 1 {
			return errors.New("start --attach: name one container")
		}
		ct, err := cl.Inspect(ctx, c.Args().First())
		if err != nil {
			return err
		}
		return startAttached(ctx, cl, ct.ID, ct.Config.Tty, ct.Config.OpenStdin)
	}
	return eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.Start(ctx, id) })(c)
}

// eachContainer runs f on every argument, printing each one done and
// failing at the end if any failed (docker's convention).
func eachContainer(f func(context.Context, *client.Client, string) error) func(*cli.Context) error {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			return fmt.Errorf("%s: name at least one container", c.Command.Name)
		}
		cl, err := apiClient(c)
		if err != nil {
			return err
		}
		failed := 0
		for _, id := range c.Args() {
			if err := f(context.Background(), cl, id); err != nil {
				fmt.Fprintln(os.Stderr, "warrenctl: "+err.Error())
				failed++
				continue
			}
			fmt.Println(id)
		}
		if failed > 0 {
			return &exitCode{1}
		}
		return nil
	}
}

func timeoutFlag(c *cli.Context) *int {
	if t := c.Int("time"); t >= 0 {
		return &t
	}
	return nil
}

func stopContainers(c *cli.Context) error {
	t := timeoutFlag(c)
	return eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.Stop(ctx, id, t) })(c)
}

func restartContainers(c *cli.Context) error {
	t := timeoutFlag(c)
	return eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.Restart(ctx, id, t) })(c)
}

func killContainers(c *cli.Context) error {
	sig := c.String("signal")
	return eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.Kill(ctx, id, sig) })(c)
}

func removeContainers(c *cli.Context) error {
	force := c.Bool("force")
	return eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.Remove(ctx, id, force) })(c)
}

func waitContainers(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("wait: name at least one container")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	for _, id := range c.Args() {
		w, err := cl.Wait(context.Background(), id)
		if err != nil {
			return err
		}
		fmt.Println(w.ExitCode)
	}
	return nil
}

func listContainers(c *cli.Context) error {
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	cs, err := cl.List(context.Background(), c.Bool("all"))
	if err != nil {
		return err
	}
	if c.Bool("quiet") {
		for _, ct := range cs {
			fmt.Println(short(ct.ID))
		}
		return nil
	}
	switch c.String("format") {
	case "json":
		return json.NewEncoder(os.Stdout).Encode(cs)
	case "table":
	default:
		return fmt.Errorf("--format %q: want table or json", c.String("format"))
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tNAMES")
	for _, ct := range cs {
		cmd := strings.Join(ct.Command, " ")
		if len(cmd) > 30 {
			cmd = cmd[:29] + "…"
		}
		fmt.Fprintf(w, "%s\t%s\t%q\t%s ago\t%s\t%s\n", short(ct.ID), ct.Image, cmd, ago(ct.Created), status(ct.State), ct.Name)
	}
	return w.Flush()
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func status(s api.ContainerState) string {
	switch s.Status {
	case api.StateRunning:
		return "Up " + ago(s.StartedAt)
	case api.StatePaused:
		return "Up " + ago(s.StartedAt) + " (Paused)"
	case api.StateExited:
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, ago(s.FinishedAt))
	}
	return strings.ToUpper(s.Status[:1]) + s.Status[1:]
}

func inspectContainers(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("inspect: name at least one container")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	var out []*api.Container
	for _, id := range c.Args() {
		ct, err := cl.Inspect(context.Background(), id)
		if err != nil {
			return err
		}
		out = append(out, ct)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func logs(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("logs: name one container")
	}
	tail := -1
	if v := c.String("tail"); v != "all" {
		if _, err := fmt.Sscan(v, &tail); err != nil || tail < 0 {
			return fmt.Errorf("--tail %q: want a number of lines or all", v)
		}
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	ts := c.Bool("timestamps")
	return cl.Logs(context.Background(), c.Args().First(), tail, c.Bool("follow"), func(l api.LogLine) error {
		w := io.Writer(os.Stdout)
		if l.Stream == "stderr" {
			w = os.Stderr
		}
		if ts {
			fmt.Fprint(w, l.Time.Format(time.RFC3339Nano)+" ")
		}
		_, err := io.WriteString(w, l.Log)
		return err
	})
}

func execContainer(c *cli.Context) error {
	if c.NArg() < 2 {
		return errors.New("exec: name a container and a command")
	}
	if c.Bool("detach") {
		return errors.New("exec --detach: not supported: warrenctl exec waits for its process")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	cfg := api.ExecConfig{Cmd: c.Args().Tail(), Env: envList(c.StringSlice("env")), WorkingDir: c.String("workdir"),
		User: c.String("user"), Tty: c.Bool("tty"), OpenStdin: c.Bool("interactive"), Privileged: c.Bool("privileged")}
	s, restore, err := stream(cfg.Tty, cfg.OpenStdin)
	if err != nil {
		return err
	}
	w, err := cl.Exec(context.Background(), c.Args().First(), cfg, s)
	restore()
	if err != nil {
		return err
	}
	if w.Error != "" {
		fmt.Fprintln(os.Stderr, "warrenctl: "+w.Error)
	}
	if w.ExitCode != 0 {
		return &exitCode{w.ExitCode}
	}
	return nil
}

func attachContainer(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("attach: name one container")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	ct, err := cl.Inspect(context.Background(), c.Args().First())
	if err != nil {
		return err
	}
	s, restore, err := stream(ct.Config.Tty, ct.Config.OpenStdin)
	if err != nil {
		return err
	}
	w, err := cl.Attach(context.Background(), ct.ID, s)
	restore()
	if err != nil {
		return err
	}
	if w.ExitCode != 0 {
		return &exitCode{w.ExitCode}
	}
	return nil
}

func stats(c *cli.Context) error {
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	ctx := context.Background()
	ids := []string(c.Args())
	if len(ids) == 0 {
		cs, err := cl.List(ctx, false)
		if err != nil {
			return err
		}
		for _, ct := range cs {
			ids = append(ids, ct.ID)
		}
	}
	var out []*api.Stats
	for _, id := range ids {
		s, err := cl.Stats(ctx, id)
		if err != nil {
			return err
		}
		out = append(out, s)
	}
	if c.String("format") == "json" {
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "CONTAINER ID\tNAME\tCPU TIME\tMEM USAGE / LIMIT\tPIDS")
	for _, s := range out {
		limit := "-"
		if s.MemoryLimit > 0 {
			limit = humanSize(int64(s.MemoryLimit))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s / %s\t%d\n", short(s.ID), s.Name, time.Duration(s.CPUUsageNs).Round(time.Millisecond), humanSize(int64(s.MemoryUsage)), limit, s.Pids)
	}
	return w.Flush()
}

func top(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("top: name one container")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	ps, err := cl.Top(context.Background(), c.Args().First())
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "PID\tPPID\tUID\tSTATE\tCOMMAND")
	for _, p := range ps {
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\n", p.Pid, p.PPid, p.UID, p.State, p.Command)
	}
	return w.Flush()
}

func events(c *cli.Context) error {
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer stop()
	js := c.String("format") == "json"
	enc := json.NewEncoder(os.Stdout)
	return cl.Events(ctx, c.String("since"), func(ev api.Event) error {
		if js {
			return enc.Encode(ev)
		}
		var attrs []string
		for k, v := range ev.Attributes {
			attrs = append(attrs, k+"="+v)
		}
		if ev.Name != "" {
			attrs = append([]string{"name=" + ev.Name}, attrs...)
		}
		_, err := fmt.Printf("%s %s %s %s (%s)\n", ev.Time.Format(time.RFC3339Nano), ev.Type, ev.Action, ev.ID, strings.Join(attrs, ", "))
		return err
	})
}

func showVersion(c *cli.Context) error {
	fmt.Printf("warrenctl: %s\n", version)
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	v, err := cl.Version(context.Background())
	if err != nil {
		return err
	}
	fmt.Printf("warrend:   %s (API %s, %s, %s/%s)\n", v.Version, v.APIVersion, v.GoVersion, v.OS, v.Arch)
	return nil
}

func showInfo(c *cli.Context) error {
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	in, err := cl.Info(context.Background())
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(in)
}

func pullViaAPI(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("pull: name one image reference")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	img, err := cl.Pull(context.Background(), api.PullRequest{Reference: c.Args().First(), Insecure: c.Bool("insecure")}, nil)
	if err != nil {
		return err
	}
	fmt.Println(img.Manifest)
	return nil
}

func imagesViaAPI(c *cli.Context) error {
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	imgs, err := cl.Images(context.Background())
	if err != nil {
		return err
	}
	if c.String("format") == "json" {
		return json.NewEncoder(os.Stdout).Encode(imgs)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "NAME\tDIGEST\tLAYERS\tSIZE\tPLATFORM")
	for _, i := range imgs {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", i.Name, short(strings.TrimPrefix(i.Manifest, "sha256:")), i.Layers, humanSize(i.Size), i.Platform)
	}
	return w.Flush()
}

func rmiViaAPI(c *cli.Context) error {
	return eachContainer(func(ctx context.Context, cl *client.Client, name string) error { return cl.RemoveImage(ctx, name) })(c)
}
