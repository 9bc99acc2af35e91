package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
)

func specVersion() string { return specs.Version }
func goVersion() string   { return goruntime.Version() }

// plainHandler writes bare messages to a terminal: what a person running
// warren by hand reads.
type plainHandler struct {
	w     io.Writer
	level slog.Level
}

func (h plainHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h plainHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	if r.Level < slog.LevelError {
		msg = r.Level.String() + ": " + msg
	}
	_, err := fmt.Fprintln(h.w, msg)
	return err
}
func (h plainHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h plainHandler) WithGroup(string) slog.Handler      { return h }

func rootDir(c *cli.Context) string {
	r := c.GlobalString("root")
	if r == "" {
		r = runtime.DefaultRoot
	}
	if abs, err := filepath.Abs(r); err == nil {
		r = abs
	}
	return r
}

// requireID checks the argument count and returns the container id.
func requireID(c *cli.Context, min, max int) (string, error) {
	n := c.NArg()
	if n < min || (max >= 0 && n > max) {
		return "", fmt.Errorf("%s: %w: %q requires %s", c.Command.Name, errdefs.ErrInvalid, c.Command.Name, argsDesc(min, max))
	}
	id := c.Args().First()
	if id == "" {
		return "", fmt.Errorf("%s: container id cannot be empty: %w", c.Command.Name, errdefs.ErrInvalid)
	}
	return id, nil
}

func argsDesc(min, max int) string {
	switch {
	case min == max && min == 1:
		return "exactly 1 argument"
	case min == max:
		return "exactly " + strconv.Itoa(min) + " arguments"
	case max < 0:
		return "at least " + strconv.Itoa(min) + " argument(s)"
	default:
		return fmt.Sprintf("%d to %d arguments", min, max)
	}
}

func isNotExist(err error) bool {
	return errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, os.ErrNotExist)
}
