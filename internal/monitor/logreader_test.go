package monitor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeLines logs lines "<prefix><i>\n" for i in [from, to).
func writeLines(w *logWriter, prefix string, from, to int) {
	for i := from; i < to; i++ {
		w.Write(streamStdout, fmt.Appendf(nil, "%s%d\n", prefix, i))
	}
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d\n", prefix, i))
	}
	return out
}

func readAllLogs(t *testing.T, dir string, tail int) []string {
	t.Helper()
	var got []string
	err := ReadLogs(context.Background(), dir, tail, false, nil, func(e LogEntry) error {
		got = append(got, e.Log)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestReadLogsTail(t *testing.T) {
	dir := t.TempDir()
	// No log at all: nothing, no error.
	if got := readAllLogs(t, dir, -1); len(got) != 0 {
		t.Fatalf("empty dir: %q", got)
	}
	w, err := openLogWriter(LogPath(dir), 400, 4)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(w, "line", 0, 30)
	// A torn last write (a crash mid-entry) is skipped, not an error.
	w.f.Write([]byte(`{"log":"torn`))
	w.Close()
	rotated, _ := rotatedLogs(dir)
	if len(rotated) != 3 {
		t.Fatalf("want 3 rotated files (maxFiles 4), got %q", rotated)
	}
	all := readAllLogs(t, dir, -1)
	if len(all) < 10 || !slices.Equal(all, names("line", 30-len(all), 30)) {
		t.Fatalf("all entries: %q", all)
	}
	for _, tail := range []int{0, 1, 7, len(all), len(all) + 5} {
		got := readAllLogs(t, dir, tail)
		want := all[max(0, len(all)-tail):]
		if !slices.Equal(got, want) {
			t.Errorf("tail %d: got %q, want %q", tail, got, want)
		}
	}
}

func TestReadLogsFollowRotation(t *testing.T) {
	dir := t.TempDir()
	w, err := openLogWriter(LogPath(dir), 500, 3)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(w, "old", 0, 3)

	var mu sync.Mutex
	var got []string
	var stopped atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(context.Background(), dir, 2, true, stopped.Load, func(e LogEntry) error {
			mu.Lock()
			got = append(got, e.Log)
			mu.Unlock()
			return nil
		})
	}()
	waitLen := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			l := len(got)
			mu.Unlock()
			if l >= n {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("follow: have %q, waiting for %d entries", got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitLen(2) // the tail
	// Slowly (the reader looks every 100 ms), across several rotations.
	for i := 0; i < 24; i += 3 {
		writeLines(w, "new", i, i+3)
		time.Sleep(30 * time.Millisecond)
	}
	// A burst of several rotations between two looks of the reader:
	// the files rotated in between are read too, as long as they have
	// not been dropped (maxFiles 3 keeps two).
	writeLines(w, "burst", 0, 10)
	w.Close()
	time.Sleep(50 * time.Millisecond)
	stopped.Store(true)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadLogs did not return after stop")
	}
	want := append(append(names("old", 1, 3), names("new", 0, 24)...), names("burst", 0, 10)...)
	if !slices.Equal(got, want) {
		t.Fatalf("follow across rotations:\n got %q\nwant %q", got, want)
	}
}

func TestReadLogsFollowCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var got []string
	go func() {
		// No log yet: follow waits for it to appear.
		done <- ReadLogs(ctx, dir, -1, true, func() bool { return false }, func(e LogEntry) error {
			got = append(got, e.Log)
			if len(got) == 2 {
				cancel()
			}
			return nil
		})
	}()
	time.Sleep(150 * time.Millisecond)
	w, err := openLogWriter(LogPath(dir), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(w, "l", 0, 2)
	w.Close()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("ReadLogs after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadLogs did not return after cancel")
	}
	if !slices.Equal(got, names("l", 0, 2)) {
		t.Fatalf("got %q", got)
	}
	// fn's error ends the read and is returned.
	stopErr := fmt.Errorf("enough")
	err = ReadLogs(context.Background(), dir, -1, false, nil, func(LogEntry) error { return stopErr })
	if err != stopErr {
		t.Fatalf("fn error: got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, logName)); err != nil {
		t.Fatal(err)
	}
}
