// Package client is a Go client of warrend's API (package api): what
// warrenctl uses, and what other programs may.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"

	"github.com/warren-runtime/warren/api"
)

// Client talks to one warrend.
type Client struct {
	http *http.Client
	dial func(ctx context.Context) (net.Conn, error)
	base string
}

// TLSFiles are a client's certificate, key and the CA of the server.
type TLSFiles struct{ Cert, Key, CA string }

// New connects to host: "unix:///path" (default api.DefaultSocket) or
// "tcp://host:port" (mutual TLS with tlsf).
func New(host string, tlsf *TLSFiles) (*Client, error) {
	if host == "" {
		host = "unix://" + api.DefaultSocket
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("host %q: %w", host, err)
	}
	c := &Client{}
	switch u.Scheme {
	case "unix":
		path := u.Path
		c.dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://warrend"
	case "tcp":
		if tlsf == nil {
			return nil, fmt.Errorf("host %s: TCP needs --tls-cert, --tls-key and --tls-ca (warrend accepts only mutual TLS)", host)
		}
		cfg, err := tlsConfig(tlsf, u.Hostname())
		if err != nil {
			return nil, err
		}
		addr := u.Host
		c.dial = func(ctx context.Context) (net.Conn, error) {
			d := tls.Dialer{Config: cfg}
			return d.DialContext(ctx, "tcp", addr)
		}
		c.base = "https://" + addr
	default:
		return nil, fmt.Errorf("host %q: want unix:///PATH or tcp://HOST:PORT", host)
	}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext:    func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dial(ctx) },
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dial(ctx) },
	}}
	return c, nil
}

func tlsConfig(f *TLSFiles, server string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA %s: no certificate in it", f.CA)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: server, MinVersion: tls.VersionTLS13}, nil
}

// Error is a non-2xx answer.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// IsNotFound reports a 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func (c *Client) request(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + "/" + api.Version + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach warrend (is it running?): %w", err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e api.ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Message}
	}
	return resp, nil
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	resp, err := c.request(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// stream decodes JSON lines into fn until the answer ends.
func (c *Client) stream(ctx context.Context, method, path string, q url.Values, body any, fn func(json.RawMessage) error) error {
	resp, err := c.request(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m json.RawMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

func (c *Client) Version(ctx context.Context) (*api.VersionInfo, error) {
	var v api.VersionInfo
	return &v, c.do(ctx, "GET", "/version", nil, nil, &v)
}

func (c *Client) Info(ctx context.Context) (*api.Info, error) {
	var v api.Info
	return &v, c.do(ctx, "GET", "/info", nil, nil, &v)
}

func (c *Client) Create(ctx context.Context, cfg api.ContainerConfig) (*api.CreateResponse, error) {
	var v api.CreateResponse
	return &v, c.do(ctx, "POST", "/containers", nil, cfg, &v)
}

func (c *Client) List(ctx context.Context, all bool) ([]api.Container, error) {
	var v []api.Container
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	return v, c.do(ctx, "GET", "/containers", q, nil, &v)
}

func (c *Client) Inspect(ctx context.Context, id string) (*api.Container, error) {
	var v api.Container
	return &v, c.do(ctx, "GET", "/containers/"+url.PathEscape(id), nil, nil, &v)
}

func (c *Client) post(ctx context.Context, id, verb string, q url.Values) error {
	return c.do(ctx, "POST", "/containers/"+url.PathEscape(id)+"/"+verb, q, nil, nil)
}

func (c *Client) Start(ctx context.Context, id string) error { return c.post(ctx, id, "start", nil) }
func (c *Client) Pause(ctx context.Context, id string) error { return c.post(ctx, id, "pause", nil) }
func (c *Client) Unpause(ctx context.Context, id string) error {
	return c.post(ctx, id, "unpause", nil)
}

func timeoutQ(t *int) url.Values {
	q := url.Values{}
	if t != nil {
		q.Set("t", fmt.Sprint(*t))
	}
	return q
}

func (c *Client) Stop(ctx context.Context, id string, timeout *int) error {
	return c.post(ctx, id, "stop", timeoutQ(timeout))
}

func (c *Client) Restart(ctx context.Context, id string, timeout *int) error {
	return c.post(ctx, id, "restart", timeoutQ(timeout))
}

func (c *Client) Kill(ctx context.Context, id, signal string) error {
	q := url.Values{}
	if signal != "" {
		q.Set("signal", signal)
	}
	return c.post(ctx, id, "kill", q)
}

func (c *Client) Remove(ctx context.Context, id string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.do(ctx, "DELETE", "/containers/"+url.PathEscape(id), q, nil, nil)
}

func (c *Client) Wait(ctx context.Context, id string) (*api.WaitResponse, error) {
	var v api.WaitResponse
	return &v, c.do(ctx, "POST", "/containers/"+url.PathEscape(id)+"/wait", nil, nil, &v)
}

func (c *Client) Stats(ctx context.Context, id string) (*api.Stats, error) {
	var v api.Stats
	return &v, c.do(ctx, "GET", "/containers/"+url.PathEscape(id)+"/stats", nil, nil, &v)
}

func (c *Client) Top(ctx context.Context, id string) ([]api.Process, error) {
	var v []api.Process
	return v, c.do(ctx, "GET", "/containers/"+url.PathEscape(id)+"/top", nil, nil, &v)
}

// Logs calls fn per line; tail < 0 means all.
func (c *Client) Logs(ctx context.Context, id string, tail int, follow bool, fn func(api.LogLine) error) error {
	q := url.Values{}
	if tail >= 0 {
		q.Set("tail", fmt.Sprint(tail))
	}
	if follow {
		q.Set("follow", "true")
	}
	return c.stream(ctx, "GET", "/containers/"+url.PathEscape(id)+"/logs", q, nil, func(m json.RawMessage) error {
		var l api.LogLine
		if err := json.Unmarshal(m, &l); err != nil {
			return err
		}
		if l.Stream == "" {
			var e api.ErrorResponse
			json.Unmarshal(m, &e)
			return errors.New(e.Message)
		}
		return fn(l)
	})
}

// Events calls fn per event until ctx ends.
func (c *Client) Events(ctx context.Context, since string, fn func(api.Event) error) error {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	return c.stream(ctx, "GET", "/events", q, nil, func(m json.RawMessage) error {
		var ev api.Event
		if err := json.Unmarshal(m, &ev); err != nil {
			return err
		}
		return fn(ev)
	})
}

func (c *Client) Images(ctx context.Context) ([]api.Image, error) {
	var v []api.Image
	return v, c.do(ctx, "GET", "/images", nil, nil, &v)
}

// InspectImage returns the image record and its config as JSON.
func (c *Client) InspectImage(ctx context.Context, name string) (json.RawMessage, error) {
	var v json.RawMessage
	return v, c.do(ctx, "GET", "/images/"+name, nil, nil, &v)
}

func (c *Client) RemoveImage(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/images/"+name, nil, nil, nil)
}

func (c *Client) PruneImages(ctx context.Context) (*api.PruneResponse, error) {
	var v api.PruneResponse
	return &v, c.do(ctx, "POST", "/images/prune", nil, nil, &v)
}

func (c *Client) imageStream(ctx context.Context, path string, body any, fn func(api.ImageProgress)) (*api.Image, error) {
	var result *api.Image
	var failed error
	err := c.stream(ctx, "POST", path, nil, body, func(m json.RawMessage) error {
		var p api.ImageProgress
		if err := json.Unmarshal(m, &p); err != nil {
			return err
		}
		switch {
		case p.Error != "":
			failed = errors.New(p.Error)
		case p.Result != nil:
			result = p.Result
		case fn != nil:
			fn(p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if failed != nil {
		return nil, failed
	}
	if result == nil {
		return nil, errors.New("warrend ended the answer without a result")
	}
	return result, nil
}

func (c *Client) Pull(ctx context.Context, req api.PullRequest, fn func(api.ImageProgress)) (*api.Image, error) {
	return c.imageStream(ctx, "/images/pull", req, fn)
}

func (c *Client) Import(ctx context.Context, req api.ImportRequest, fn func(api.ImageProgress)) (*api.Image, error) {
	return c.imageStream(ctx, "/images/import", req, fn)
}

// Stream is the client's side of an attach or exec.
type Stream struct {
	Stdin          io.Reader // nil: none; its EOF closes the process's stdin
	Stdout, Stderr io.Writer
	Resize         <-chan [2]uint16
}

// Attach attaches to a container's streams and returns how it ended.
func (c *Client) Attach(ctx context.Context, id string, s Stream) (*api.WaitResponse, error) {
	return c.upgrade(ctx, "/containers/"+url.PathEscape(id)+"/attach", nil, s)
}

// Exec runs a process in a container and returns its exit status.
func (c *Client) Exec(ctx context.Context, id string, cfg api.ExecConfig, s Stream) (*api.WaitResponse, error) {
	return c.upgrade(ctx, "/containers/"+url.PathEscape(id)+"/exec", cfg, s)
}

func (c *Client) upgrade(ctx context.Context, path string, body any, s Stream) (*api.WaitResponse, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot reach warrend (is it running?): %w", err)
	}
	defer conn.Close()
	var b []byte
	if body != nil {
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	req, _ := http.NewRequest("POST", c.base+"/"+api.Version+path, bytes.NewReader(b))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.UpgradeProto)
	req.Header.Set("Content-Type", "application/json")
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		var e api.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&e)
		if e.Message == "" {
			e.Message = resp.Status
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Message}
	}
	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return api.WriteFrame(conn, typ, p)
	}
	if s.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Stdin.Read(buf)
				if n > 0 {
					if send(api.FrameStdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					send(api.FrameCloseStdin, nil)
					return
				}
			}
		}()
	}
	if s.Resize != nil {
		go func() {
			for sz := range s.Resize {
				if send(api.FrameResize, api.ResizePayload(sz[0], sz[1])) != nil {
					return
				}
			}
		}()
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	var buf []byte
	for {
		typ, p, err := api.ReadFrame(br, buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("stream ended without an exit status: %w", err)
		}
		buf = p
		switch typ {
		case api.FrameStdout:
			if s.Stdout != nil {
				s.Stdout.Write(p)
			}
		case api.FrameStderr:
			if s.Stderr != nil {
				s.Stderr.Write(p)
			}
		case api.FrameExit:
			var w api.WaitResponse
			if err := json.Unmarshal(p, &w); err != nil {
				return nil, err
			}
			return &w, nil
		}
	}
}

// StartAttached starts a created container with s attached from its
// first output byte, and returns how it ended.
func (c *Client) StartAttached(ctx context.Context, id string, s Stream) (*api.WaitResponse, error) {
	return c.upgrade(ctx, "/containers/"+url.PathEscape(id)+"/start?attach=true", nil, s)
}

func (c *Client) CreateNetwork(ctx context.Context, cfg api.NetworkConfig) (*api.Network, error) {
	var v api.Network
	return &v, c.do(ctx, "POST", "/networks", nil, cfg, &v)
}

func (c *Client) Networks(ctx context.Context) ([]api.Network, error) {
	var v []api.Network
	return v, c.do(ctx, "GET", "/networks", nil, nil, &v)
}

func (c *Client) InspectNetwork(ctx context.Context, name string) (*api.Network, error) {
	var v api.Network
	return &v, c.do(ctx, "GET", "/networks/"+url.PathEscape(name), nil, nil, &v)
}

func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/networks/"+url.PathEscape(name), nil, nil, nil)
}

func (c *Client) CreatePod(ctx context.Context, cfg api.PodConfig) (*api.Pod, error) {
	var v api.Pod
	return &v, c.do(ctx, "POST", "/pods", nil, cfg, &v)
}

func (c *Client) Pods(ctx context.Context) ([]api.Pod, error) {
	var v []api.Pod
	return v, c.do(ctx, "GET", "/pods", nil, nil, &v)
}

func (c *Client) InspectPod(ctx context.Context, id string) (*api.Pod, error) {
	var v api.Pod
	return &v, c.do(ctx, "GET", "/pods/"+url.PathEscape(id), nil, nil, &v)
}

func (c *Client) RemovePod(ctx context.Context, id string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.do(ctx, "DELETE", "/pods/"+url.PathEscape(id), q, nil, nil)
}

func (c *Client) StopPod(ctx context.Context, id string, timeout *int) error {
	return c.do(ctx, "POST", "/pods/"+url.PathEscape(id)+"/stop", timeoutQ(timeout), nil, nil)
}
