// Command warrend is warren's engine daemon: it serves the API
// (api/openapi.yaml) on a unix socket, and on TCP with mutual TLS when
// asked, over internal/engine. Wiring, flags and signals only.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/engine"
	"github.com/warren-runtime/warren/internal/images"
	"github.com/warren-runtime/warren/internal/server"
)

var version = "0.1.0-dev"

type runtimeFlags map[string]engine.RuntimeConfig

func (r runtimeFlags) String() string { return "" }
func (r runtimeFlags) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" || rest == "" {
		return fmt.Errorf("want NAME=PATH[,ARG...], got %q", v)
	}
	parts := strings.Split(rest, ",")
	r[name] = engine.RuntimeConfig{Path: parts[0], Args: parts[1:]}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "warrend: "+err.Error())
		os.Exit(1)
	}
}

// besideOrPath finds a binary next to warrend, else in $PATH.
func besideOrPath(name string) string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

func run() error {
	rts := runtimeFlags{}
	fs := flag.NewFlagSet("warrend", flag.ContinueOnError)
	root := fs.String("root", images.DefaultRoot, "state directory: images, containers, volumes, engine.db")
	runRoot := fs.String("run-root", "/run/warrend", "the runtimes' state directories (on tmpfs)")
	socket := fs.String("socket", api.DefaultSocket, "unix socket to serve the API on (mode 0600: root only)")
	tcp := fs.String("tls-listen", "", "also serve on this TCP address, with mutual TLS (needs --tls-cert, --tls-key, --tls-ca)")
	cert := fs.String("tls-cert", "", "server certificate (PEM)")
	key := fs.String("tls-key", "", "server key (PEM)")
	ca := fs.String("tls-ca", "", "CA whose certificates clients must present (PEM)")
	fs.Var(rts, "runtime", "an OCI runtime: NAME=PATH[,GLOBAL-ARG...] (repeat); warren, runc and crun are found beside warrend or in $PATH")
	def := fs.String("default-runtime", "warren", "runtime of containers that do not name one")
	netnsDir := fs.String("netns-dir", "/run/netns", "where containers' and pods' network namespaces are pinned (ip netns lists /run/netns)")
	mon := fs.String("monitor", "", "warren-monitor binary (default: beside warrend, else $PATH)")
	logMax := fs.Int64("log-max-size", 10<<20, "rotate a container's log at this many bytes (0: never)")
	logFiles := fs.Int("log-max-files", 3, "log files kept per container, the current one included")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVersion {
		fmt.Println("warrend version " + version)
		return nil
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	for _, n := range []string{"warren", "runc", "crun"} {
		if _, ok := rts[n]; !ok {
			if p := besideOrPath(n); p != "" {
				rts[n] = engine.RuntimeConfig{Path: p}
			}
		}
	}
	if *mon == "" {
		*mon = besideOrPath("warren-monitor")
	}
	e, err := engine.New(engine.Config{Root: *root, RunRoot: *runRoot, MonitorPath: *mon, Runtimes: rts,
		DefaultRuntime: *def, NetnsDir: *netnsDir, LogMaxSize: *logMax, LogMaxFiles: *logFiles, Logger: log})
	if err != nil {
		return err
	}
	defer e.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := e.Recover(ctx); err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	srv := &http.Server{Handler: server.New(e, log, version), ReadHeaderTimeout: 10 * time.Second}

	if err := os.MkdirAll(filepath.Dir(*socket), 0o755); err != nil {
		return err
	}
	os.Remove(*socket)
	old := syscall.Umask(0o177)
	ul, err := net.Listen("unix", *socket)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("socket %s: %w", *socket, err)
	}
	defer os.Remove(*socket)
	errs := make(chan error, 2)
	go func() { errs <- srv.Serve(ul) }()
	if *tcp != "" {
		tl, err := tlsListener(*tcp, *cert, *key, *ca)
		if err != nil {
			return err
		}
		go func() { errs <- srv.Serve(tl) }()
		log.Info("serving", "tcp", *tcp)
	}
	log.Info("serving", "socket", *socket, "root", *root, "version", version)
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	log.Info("shutting down: containers keep running")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

// tlsListener serves TLS 1.3 and requires a client certificate signed
// by ca: the TCP API is as privileged as the root-only socket.
func tlsListener(addr, cert, key, ca string) (net.Listener, error) {
	if cert == "" || key == "" || ca == "" {
		return nil, fmt.Errorf("--tls-listen needs --tls-cert, --tls-key and --tls-ca (clients are verified: no TCP API without mutual TLS)")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no certificate in it", ca)
	}
	return tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
}
