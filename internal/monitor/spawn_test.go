package monitor

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A monitor that dies before answering (here: not a monitor at all)
// fails Spawn promptly instead of hanging it.
func TestSpawnMonitorDies(t *testing.T) {
	cfg := Config{ID: "c1", Bundle: "/nonexistent", Dir: t.TempDir(), RuntimePath: "/bin/false", RuntimeRoot: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := Spawn(ctx, "/bin/true", cfg)
	if err == nil || !strings.Contains(err.Error(), "monitor exited before the container was created") || !strings.Contains(err.Error(), "c1") {
		t.Fatalf("Spawn of a monitor that exits: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Spawn waited for its context")
	}
	if _, _, err := Spawn(ctx, "/nonexistent/warren-monitor", cfg); err == nil || !strings.Contains(err.Error(), "/nonexistent/warren-monitor") {
		t.Fatalf("Spawn of a missing binary: %v", err)
	}
}
