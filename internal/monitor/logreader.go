package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// followInterval is how often a following reader looks for new entries,
// a rotation, or the end (stop) when no data came.
const followInterval = 100 * time.Millisecond

// rotatedLogs returns dir's rotated logs, oldest (highest number) first.
func rotatedLogs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type rf struct {
		n    int
		path string
	}
	var fs []rf
	for _, e := range ents {
		suf, ok := strings.CutPrefix(e.Name(), logName+".")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(suf)
		if err != nil || n < 1 {
			continue
		}
		fs = append(fs, rf{n, filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(fs, func(a, b rf) int { return b.n - a.n })
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.path
	}
	return out, nil
}

// lineReader yields the complete lines of a file, keeping an incomplete
// last line until the rest is written (a follower can read mid-write).
type lineReader struct {
	f       *os.File
	buf     []byte
	pending []byte
}

// readLines reads to the current end of the file, calling fn for each
// complete line (without its "\n").
func (lr *lineReader) readLines(fn func([]byte) error) error {
	if lr.buf == nil {
		lr.buf = make([]byte, 32<<10)
	}
	for {
		n, err := lr.f.Read(lr.buf)
		data := lr.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				lr.pending = append(lr.pending, data...)
				break
			}
			line := data[:i]
			if len(lr.pending) > 0 {
				line = append(lr.pending, line...)
				lr.pending = lr.pending[:0]
			}
			data = data[i+1:]
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ReadLogs writes entries of dir's log (rotated files oldest first, then ctr.log) to fn; tail>=0 keeps only
// the last tail entries; with follow it keeps reading new entries (surviving a rotation) until ctx is done
// or stop() returns true (checked when no new data arrives, e.g. every 100ms: the engine passes "the container has exited and its monitor is gone").
//
// A line that is not a valid entry (a write cut short by a crash) is
// skipped. When stop ends the follow, everything written before is
// delivered and ReadLogs returns nil; when ctx ends it returns ctx.Err().
func ReadLogs(ctx context.Context, dir string, tail int, follow bool, stop func() bool, fn func(LogEntry) error) error {
	path := LogPath(dir)
	emit := func(line []byte) error {
		var e LogEntry
		if json.Unmarshal(line, &e) != nil {
			return nil
		}
		return fn(e)
	}
	// The current log is opened before the rotated ones are listed: a
	// rotation in between then shows up as ours being renamed, which the
	// follow loop handles, instead of an entry being missed.
	cur, err := os.Open(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read log %s: %w", path, err)
	}
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	rotated, err := rotatedLogs(dir)
	if err != nil {
		return fmt.Errorf("read logs in %s: %w", dir, err)
	}

	// Existing entries: all, or the last tail kept in a ring.
	var ring [][]byte
	next := 0
	handle := emit
	if tail >= 0 {
		handle = func(line []byte) error {
			if tail == 0 {
				return nil
			}
			l := append([]byte(nil), line...)
			if len(ring) < tail {
				ring = append(ring, l)
			} else {
				ring[next] = l
				next = (next + 1) % tail
			}
			return nil
		}
	}
	for _, p := range rotated {
		f, err := os.Open(p)
		if err != nil {
			continue // dropped by a rotation meanwhile
		}
		lr := lineReader{f: f}
		err = lr.readLines(handle)
		f.Close()
		if err != nil {
			return err
		}
	}
	var lr *lineReader
	if cur != nil {
		lr = &lineReader{f: cur}
		if err := lr.readLines(handle); err != nil {
			return err
		}
	}
	for i := range ring {
		if err := emit(ring[(next+i)%len(ring)]); err != nil {
			return err
		}
	}
	ring = nil
	if !follow {
		return nil
	}

	tick := time.NewTicker(followInterval)
	defer tick.Stop()
	for {
		if lr == nil {
			// No log yet (or mid-rotation): wait for the writer to make it.
			if f, err := os.Open(path); err == nil {
				cur = f
				lr = &lineReader{f: f}
			}
		}
		if lr != nil {
			if err := lr.readLines(emit); err != nil {
				return err
			}
			if moved, err := followRotation(path, lr, emit); err != nil {
				return err
			} else if moved {
				cur.Close()
				cur, lr = nil, nil
				continue
			}
		}
		if stop != nil && stop() {
			// The writer is gone, so everything it wrote is in the
			// files now: one last pass, then done.
			return finalPass(path, lr, emit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// finalPass reads what is left once the writer has gone: the rest of the
// file lr reads and, if that was rotated away, the files after it.
func finalPass(path string, lr *lineReader, emit func([]byte) error) error {
	if lr != nil {
		if err := lr.readLines(emit); err != nil {
			return err
		}
		if moved, err := followRotation(path, lr, emit); err != nil || !moved {
			return err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return (&lineReader{f: f}).readLines(emit)
}

// followRotation checks whether the file lr reads is still the log at
// path. If it was rotated away, it finishes it and reads every file
// rotated after it (newer, lower numbers: more than one rotation can
// happen between two looks), and reports moved; the caller then opens
// the new log.
func followRotation(path string, lr *lineReader, emit func([]byte) error) (moved bool, err error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Between the writer's rename and its creating the new
			// file: look again next time.
			return false, nil
		}
		return false, err
	}
	ours, err := lr.f.Stat()
	if err != nil {
		return false, err
	}
	if os.SameFile(st, ours) {
		return false, nil
	}
	if err := lr.readLines(emit); err != nil {
		return true, err
	}
	// Ours is one of the rotated files, or was dropped as the oldest
	// (we still read it through our fd): either way the rotated files
	// after it are newer and not read yet.
	rotated, _ := rotatedLogs(filepath.Dir(path))
	after := -1
	for i, p := range rotated {
		if rs, err := os.Stat(p); err == nil && os.SameFile(rs, ours) {
			after = i
			break
		}
	}
	for _, p := range rotated[after+1:] {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		nlr := lineReader{f: f}
		err = nlr.readLines(emit)
		f.Close()
		if err != nil {
			return true, err
		}
	}
	return true, nil
}
