package runtime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	json "github.com/go-json-experiment/json/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/runtime/nsexec"
)

// Hook kinds and where they run (OCI runtime spec, config.md "POSIX-platform
// Hooks"):
//
//	prestart, createRuntime  runtime namespace, after the container's
//	                         namespaces and mounts exist, before pivot_root
//	createContainer          container namespaces, before pivot_root (by init)
//	startContainer           container namespaces, just before the user
//	                         program is exec'd (by init)
//	poststart                runtime namespace, after the program started
//	poststop                 runtime namespace, after the container is deleted
//
// Each gets the container's state JSON on stdin. A failing prestart,
// createRuntime, createContainer or startContainer hook fails the operation;
// a failing poststart or poststop hook is a warning.

// ociState is the state document hooks read on stdin.
func ociState(id, bundle string, status specs.ContainerState, pid int, ann map[string]string) []byte {
	b, _ := json.Marshal(specs.State{
		Version: specs.Version, ID: id, Status: status, Pid: pid, Bundle: bundle, Annotations: ann,
	})
	return b
}

// runHooks runs hooks in order and stops at the first failure.
func runHooks(kind string, hooks []specs.Hook, state []byte) error {
	for i, h := range hooks {
		if err := runHook(h, state); err != nil {
			return fmt.Errorf("hooks.%s[%d] (%s): %w", kind, i, h.Path, err)
		}
	}
	return nil
}

// warnHooks runs hooks whose failure must not fail the operation.
func warnHooks(kind string, hooks []specs.Hook, state []byte) {
	for i, h := range hooks {
		if err := runHook(h, state); err != nil {
			slog.Warn(fmt.Sprintf("hooks.%s[%d] (%s) failed: %v", kind, i, h.Path, err))
		}
	}
}

// defaultHookTimeout bounds a hook without a timeout: a hung hook must not
// hang create, start or delete (and the engine waiting on them) forever.
var defaultHookTimeout = 120

func runHook(h specs.Hook, state []byte) error {
	timeout := defaultHookTimeout
	if h.Timeout != nil {
		timeout = *h.Timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeout)*time.Second)
	defer cancel()
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = args
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A hook that forks a daemon holding our pipes must not hang us.
	cmd.WaitDelay = time.Second
	if err := nsexec.Unblocked(cmd); err != nil {
		return err
	}
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		if h.Timeout == nil {
			return fmt.Errorf("timed out after %ds (the default for a hook without a timeout)", timeout)
		}
		return fmt.Errorf("timed out after %ds", timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

func hasHooks(h *specs.Hooks, kinds ...string) bool {
	if h == nil {
		return false
	}
	for _, k := range kinds {
		switch k {
		case "prestart":
			if len(h.Prestart) > 0 {
				return true
			}
		case "createRuntime":
			if len(h.CreateRuntime) > 0 {
				return true
			}
		case "createContainer":
			if len(h.CreateContainer) > 0 {
				return true
			}
		}
	}
	return false
}
