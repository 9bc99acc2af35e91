package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// Config is everything a monitor needs; the engine passes it as JSON.
type Config struct {
	ID          string   `json:"id"`     // container id given to the runtime
	Bundle      string   `json:"bundle"` // OCI bundle dir (config.json there)
	Dir         string   `json:"dir"`    // the container's directory: monitor.sock, pid, exit, ctr.log live here
	RuntimePath string   `json:"runtimePath"`
	RuntimeRoot string   `json:"runtimeRoot"`
	RuntimeArgs []string `json:"runtimeArgs,omitempty"`
	Terminal    bool     `json:"terminal"`    // the bundle's process.terminal: use --console-socket, keep the pty master
	Stdin       bool     `json:"stdin"`       // keep a stdin pipe open for attach (-i); else the container's stdin is /dev/null
	LogMaxSize  int64    `json:"logMaxSize"`  // rotate ctr.log when it exceeds this many bytes; 0 = never
	LogMaxFiles int      `json:"logMaxFiles"` // keep ctr.log.1 .. ctr.log.(N-1); <=1 means just truncate-by-rename to ctr.log.1
}

// ExitStatus is how the container's init ended.
type ExitStatus struct {
	Code       int       `json:"code"`             // exit code, or 128+signal when killed by a signal (docker's convention)
	Signal     int       `json:"signal,omitempty"` // the signal that killed it, if any
	FinishedAt time.Time `json:"finishedAt"`
}

// LogEntry is one line of Dir/ctr.log (JSON lines, docker json-file style).
type LogEntry struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // "stdout" or "stderr"
	Log    string    `json:"log"`    // one line including its trailing "\n"; a line longer than 16 KiB is split without "\n" on the pieces but the last
}

const (
	sockName    = "monitor.sock"
	consoleName = "console.sock"
	pidName     = "pid"
	exitName    = "exit"
	logName     = "ctr.log"
	runtimeLog  = "runtime.log"
)

// LogPath is the container's log in dir.
func LogPath(dir string) string { return filepath.Join(dir, logName) }

// ReadExit reads Dir/exit written by the monitor; errdefs.ErrNotFound if absent.
func ReadExit(dir string) (*ExitStatus, error) {
	p := filepath.Join(dir, exitName)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("exit status %s: %w", p, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("exit status %s: %w", p, err)
	}
	var st ExitStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("exit status %s: %v: %w", p, err, errdefs.ErrCorrupt)
	}
	return &st, nil
}

// writeExit writes Dir/exit so that a reader sees the whole status or
// none: temp file, fsync, rename, fsync of the directory (the engine may
// read it after a host crash to learn how the container ended).
func writeExit(dir string, st ExitStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, exitName)
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write exit status %s: %w", p, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write exit status %s: %w", p, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// statusOf converts a wait status (docker's convention: 128+signal).
func statusOf(ws unix.WaitStatus, at time.Time) ExitStatus {
	switch {
	case ws.Signaled():
		sig := int(ws.Signal())
		return ExitStatus{Code: 128 + sig, Signal: sig, FinishedAt: at}
	case ws.Exited():
		return ExitStatus{Code: ws.ExitStatus(), FinishedAt: at}
	}
	return ExitStatus{Code: 255, FinishedAt: at}
}
