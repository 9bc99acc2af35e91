// Package server maps warrend's HTTP API (api/openapi.yaml) onto the
// engine: decode, call, encode, and errdefs classes to status codes. No
// business logic lives here.
package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/engine"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/images"
)

// Server is the API over one engine.
type Server struct {
	e       *engine.Engine
	log     *slog.Logger
	version string
	mux     *http.ServeMux
}

// New returns the API handler of e.
func New(e *engine.Engine, log *slog.Logger, version string) *Server {
	s := &Server{e: e, log: log, version: version, mux: http.NewServeMux()}
	p := "/" + api.Version
	h := func(pattern string, f func(http.ResponseWriter, *http.Request) error) {
		method, path, _ := strings.Cut(pattern, " ")
		s.mux.HandleFunc(method+" "+p+path, func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				s.fail(w, r, err)
			}
		})
	}
	s.mux.HandleFunc("GET /_ping", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })
	h("GET /version", s.version_)
	h("GET /info", s.info)
	h("GET /events", s.events)
	h("GET /containers", s.listContainers)
	h("POST /containers", s.createContainer)
	h("GET /containers/{id}", s.inspectContainer)
	h("DELETE /containers/{id}", s.removeContainer)
	h("POST /containers/{id}/start", s.startContainer)
	h("POST /containers/{id}/stop", s.stopContainer)
	h("POST /containers/{id}/restart", s.restartContainer)
	h("POST /containers/{id}/kill", s.killContainer)
	h("POST /containers/{id}/pause", s.pauseContainer)
	h("POST /containers/{id}/unpause", s.unpauseContainer)
	h("POST /containers/{id}/wait", s.waitContainer)
	h("GET /containers/{id}/logs", s.logs)
	h("GET /containers/{id}/stats", s.stats)
	h("GET /containers/{id}/top", s.top)
	h("POST /containers/{id}/attach", s.attach)
	h("POST /containers/{id}/exec", s.exec)
	h("GET /networks", s.listNetworks)
	h("POST /networks", s.createNetwork)
	h("GET /networks/{name}", s.inspectNetwork)
	h("DELETE /networks/{name}", s.removeNetwork)
	h("GET /pods", s.listPods)
	h("POST /pods", s.createPod)
	h("GET /pods/{id}", s.inspectPod)
	h("DELETE /pods/{id}", s.removePod)
	h("POST /pods/{id}/stop", s.stopPod)
	h("GET /images", s.listImages)
	h("POST /images/pull", s.pull)
	h("POST /images/import", s.importImage)
	h("POST /images/prune", s.prune)
	h("GET /images/{name...}", s.inspectImage)
	h("DELETE /images/{name...}", s.removeImage)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Status maps an error's class to an HTTP status.
func Status(err error) int {
	switch {
	case errdefs.IsNotFound(err):
		return http.StatusNotFound
	case errdefs.IsInvalid(err):
		return http.StatusBadRequest
	case errdefs.IsExists(err), errdefs.IsState(err), errors.Is(err, errdefs.ErrLocked):
		return http.StatusConflict
	case errdefs.IsNotSupported(err):
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := Status(err)
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, code, api.ErrorResponse{Message: err.Error()})
}

// answer writes v with code, or passes err on: the shape of most
// handlers, answer(w, 200)(s.e.Something(...)).
func answer(w http.ResponseWriter, code int) func(v any, err error) error {
	return func(v any, err error) error {
		if err != nil {
			return err
		}
		return writeJSON(w, code, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %v: %w", err, errdefs.ErrInvalid)
	}
	return nil
}

// detached is the context of a change: a client hanging up must not
// cancel it half-way (a runtime create killed between its steps).
func detached(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

func boolQuery(r *http.Request, k string) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get(k))
	return v
}

func (s *Server) version_(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, 200, api.VersionInfo{Version: s.version, APIVersion: api.Version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH})
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.Info())
}

// streamJSON starts a JSON-lines answer and returns a function writing
// (and flushing) one value.
func streamJSON(w http.ResponseWriter) func(v any) error {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	if fl != nil {
		fl.Flush()
	}
	var mu sync.Mutex
	return func(v any) error {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(v); err != nil {
			return err
		}
		if fl != nil {
			fl.Flush()
		}
		return nil
	}
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("since %q: want an RFC 3339 time: %w", v, errdefs.ErrInvalid)
		}
		since = t
	}
	ch := s.e.Events(r.Context(), since)
	send := streamJSON(w)
	for ev := range ch {
		if err := send(ev); err != nil {
			return nil
		}
	}
	return nil
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.List(boolQuery(r, "all")))
}

func (s *Server) createContainer(w http.ResponseWriter, r *http.Request) error {
	var cfg api.ContainerConfig
	if err := decode(r, &cfg); err != nil {
		return err
	}
	return answer(w, http.StatusCreated)(s.e.Create(cfg))
}

func (s *Server) inspectContainer(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.Inspect(r.PathValue("id")))
}

func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) removeContainer(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.e.Remove(detached(r), r.PathValue("id"), boolQuery(r, "force")))
}

func (s *Server) startContainer(w http.ResponseWriter, r *http.Request) error {
	if !boolQuery(r, "attach") {
		return noContent(w, s.e.Start(detached(r), r.PathValue("id")))
	}
	id := r.PathValue("id")
	if _, err := s.e.Inspect(id); err != nil {
		return err
	}
	conn, rw, err := upgrade(w, r)
	if err != nil {
		return err
	}
	f := serveFrames(conn, rw)
	resp, err := s.e.StartAttached(detached(r), id, engine.Stdio{Stdin: f.stdin, Stdout: frameWriter{f, api.FrameStdout}, Stderr: frameWriter{f, api.FrameStderr}, Resize: f.resize})
	if err != nil {
		// docker run's code for a container that could not start.
		f.exit(api.WaitResponse{ExitCode: 125, Error: err.Error()})
		return nil
	}
	f.exit(*resp)
	return nil
}

func timeoutQuery(r *http.Request) (*int, error) {
	v := r.URL.Query().Get("t")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("t %q: want whole seconds: %w", v, errdefs.ErrInvalid)
	}
	return &n, nil
}

func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request) error {
	t, err := timeoutQuery(r)
	if err != nil {
		return err
	}
	return noContent(w, s.e.Stop(detached(r), r.PathValue("id"), t))
}

func (s *Server) restartContainer(w http.ResponseWriter, r *http.Request) error {
	t, err := timeoutQuery(r)
	if err != nil {
		return err
	}
	if err := s.e.Stop(detached(r), r.PathValue("id"), t); err != nil {
		return err
	}
	return noContent(w, s.e.Start(detached(r), r.PathValue("id")))
}

func (s *Server) killContainer(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.e.Kill(detached(r), r.PathValue("id"), r.URL.Query().Get("signal")))
}

func (s *Server) pauseContainer(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.e.Pause(detached(r), r.PathValue("id")))
}

func (s *Server) unpauseContainer(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.e.Unpause(detached(r), r.PathValue("id")))
}

func (s *Server) waitContainer(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.Wait(r.Context(), r.PathValue("id")))
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	tail := -1
	if v := r.URL.Query().Get("tail"); v != "" && v != "all" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("tail %q: want a number of lines or all: %w", v, errdefs.ErrInvalid)
		}
		tail = n
	}
	// Resolve first so an unknown container is a 404, not an empty stream.
	if _, err := s.e.Inspect(r.PathValue("id")); err != nil {
		return err
	}
	send := streamJSON(w)
	err := s.e.Logs(r.Context(), r.PathValue("id"), tail, boolQuery(r, "follow"), func(l api.LogLine) error { return send(l) })
	if err != nil && r.Context().Err() == nil {
		send(api.ErrorResponse{Message: err.Error()})
	}
	return nil
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.Stats(r.PathValue("id")))
}

func (s *Server) top(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.Top(r.Context(), r.PathValue("id")))
}

// upgrade takes over the connection for frames (api/stream.go).
func upgrade(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.ReadWriter, error) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.UpgradeProto) {
		return nil, nil, fmt.Errorf("this call needs \"Upgrade: %s\": %w", api.UpgradeProto, errdefs.ErrInvalid)
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be upgraded")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", api.UpgradeProto)
	if err := rw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, rw, nil
}

// frames is the server's side of an upgraded connection.
type frames struct {
	conn   net.Conn
	mu     sync.Mutex
	stdin  *io.PipeReader
	resize chan [2]uint16
}

type frameWriter struct {
	f   *frames
	typ byte
}

func (fw frameWriter) Write(p []byte) (int, error) {
	fw.f.mu.Lock()
	defer fw.f.mu.Unlock()
	for off := 0; off < len(p); {
		n := min(len(p)-off, 32<<10)
		if err := api.WriteFrame(fw.f.conn, fw.typ, p[off:off+n]); err != nil {
			return off, err
		}
		off += n
	}
	return len(p), nil
}

// serveFrames reads the client's frames until it hangs up, cancelling
// nothing: the process outlives a client that goes.
func serveFrames(conn net.Conn, rd io.Reader) *frames {
	pr, pw := io.Pipe()
	f := &frames{conn: conn, stdin: pr, resize: make(chan [2]uint16, 4)}
	go func() {
		defer pw.Close()
		defer close(f.resize)
		var buf []byte
		for {
			typ, p, err := api.ReadFrame(rd, buf)
			if err != nil {
				return
			}
			buf = p
			switch typ {
			case api.FrameStdin:
				if _, err := pw.Write(p); err != nil {
					// stdin already closed on the process side: drop.
				}
			case api.FrameCloseStdin:
				pw.Close()
			case api.FrameResize:
				if rows, cols, ok := api.ParseResize(p); ok {
					select {
					case f.resize <- [2]uint16{rows, cols}:
					default:
					}
				}
			}
		}
	}()
	return f
}

func (f *frames) exit(resp api.WaitResponse) {
	b, _ := json.Marshal(resp)
	f.mu.Lock()
	api.WriteFrame(f.conn, api.FrameExit, b)
	f.mu.Unlock()
	f.conn.Close()
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := s.e.Inspect(id); err != nil {
		return err
	}
	conn, rw, err := upgrade(w, r)
	if err != nil {
		return err
	}
	f := serveFrames(conn, rw)
	resp, err := s.e.Attach(context.Background(), id, engine.Stdio{Stdin: f.stdin, Stdout: frameWriter{f, api.FrameStdout}, Stderr: frameWriter{f, api.FrameStderr}, Resize: f.resize})
	if err != nil {
		f.exit(api.WaitResponse{ExitCode: 125, Error: err.Error()})
		return nil
	}
	f.exit(*resp)
	return nil
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) error {
	var cfg api.ExecConfig
	if err := decode(r, &cfg); err != nil {
		return err
	}
	id := r.PathValue("id")
	c, err := s.e.Inspect(id)
	if err != nil {
		return err
	}
	if c.State.Status != api.StateRunning {
		return fmt.Errorf("container %s is %s, not running: %w", c.Name, c.State.Status, errdefs.ErrState)
	}
	if len(cfg.Cmd) == 0 {
		return fmt.Errorf("exec: no command: %w", errdefs.ErrInvalid)
	}
	conn, rw, err := upgrade(w, r)
	if err != nil {
		return err
	}
	f := serveFrames(conn, rw)
	code, err := s.e.Exec(context.Background(), id, cfg, engine.Stdio{Stdin: f.stdin, Stdout: frameWriter{f, api.FrameStdout}, Stderr: frameWriter{f, api.FrameStderr}, Resize: f.resize})
	if err != nil {
		// docker's codes: 127 the command was not found, 126 it could not
		// be run.
		code = 126
		if m := err.Error(); strings.Contains(m, "no such file") || strings.Contains(m, "not found") {
			code = 127
		}
		f.exit(api.WaitResponse{ExitCode: code, Error: err.Error()})
		return nil
	}
	f.exit(api.WaitResponse{ExitCode: code})
	return nil
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.ListImages())
}

func (s *Server) inspectImage(w http.ResponseWriter, r *http.Request) error {
	img, cfg, err := s.e.InspectImage(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, struct {
		api.Image
		ImageConfig any `json:"imageConfig"`
	}{*img, cfg})
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.e.RemoveImage(r.PathValue("name")))
}

func (s *Server) prune(w http.ResponseWriter, r *http.Request) error {
	removed, err := s.e.PruneImages()
	if err != nil {
		return err
	}
	if removed == nil {
		removed = []string{}
	}
	return writeJSON(w, 200, api.PruneResponse{Removed: removed})
}

func progressOf(p images.Progress) api.ImageProgress {
	return api.ImageProgress{Phase: p.Phase, Layer: p.Layer, Layers: p.Layers, Digest: p.Digest, Size: p.Size, Done: p.Done, Stored: p.Stored}
}

func (s *Server) pull(w http.ResponseWriter, r *http.Request) error {
	var req api.PullRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	send := streamJSON(w)
	img, err := s.e.Pull(req.Reference, req.Insecure, func(p images.Progress) { send(progressOf(p)) })
	if err != nil {
		send(api.ImageProgress{Error: err.Error()})
		return nil
	}
	send(api.ImageProgress{Result: img})
	return nil
}

func (s *Server) importImage(w http.ResponseWriter, r *http.Request) error {
	var req api.ImportRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	send := streamJSON(w)
	img, err := s.e.Import(req.Source, req.Name, func(p images.Progress) { send(progressOf(p)) })
	if err != nil {
		send(api.ImageProgress{Error: err.Error()})
		return nil
	}
	send(api.ImageProgress{Result: img})
	return nil
}

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.ListNetworks())
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) error {
	var cfg api.NetworkConfig
	if err := decode(r, &cfg); err != nil {
		return err
	}
	return answer(w, http.StatusCreated)(s.e.CreateNetwork(cfg))
}

func (s *Server) inspectNetwork(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.InspectNetwork(r.PathValue("name")))
}

func (s *Server) removeNetwork(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.e.RemoveNetwork(r.PathValue("name")))
}

func (s *Server) listPods(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.ListPods())
}

func (s *Server) createPod(w http.ResponseWriter, r *http.Request) error {
	var cfg api.PodConfig
	if err := decode(r, &cfg); err != nil {
		return err
	}
	return answer(w, http.StatusCreated)(s.e.CreatePod(detached(r), cfg))
}

func (s *Server) inspectPod(w http.ResponseWriter, r *http.Request) error {
	return answer(w, 200)(s.e.InspectPod(r.PathValue("id")))
}

func (s *Server) removePod(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.e.RemovePod(detached(r), r.PathValue("id"), boolQuery(r, "force")))
}

func (s *Server) stopPod(w http.ResponseWriter, r *http.Request) error {
	t, err := timeoutQuery(r)
	if err != nil {
		return err
	}
	return noContent(w, s.e.StopPod(detached(r), r.PathValue("id"), t))
}
