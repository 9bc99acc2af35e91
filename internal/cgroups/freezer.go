package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/warren-runtime/warren/internal/rawfile"
)

// FreezerState is the state of a cgroup's freezer.
type FreezerState string

const (
	Thawed FreezerState = "THAWED"
	Frozen FreezerState = "FROZEN"
	// NoFreezer: the host has no freezer (no v1 freezer hierarchy).
	NoFreezer FreezerState = ""
)

// ErrNoFreezer is returned by Freeze and Thaw when the host has no freezer.
var ErrNoFreezer = errors.New("no cgroup freezer on this host (neither a v1 freezer hierarchy nor cgroup v2)")

// FreezerState reads the current state.
func (m *Manager) FreezerState() FreezerState {
	if m.Unified() {
		b, err := rawfile.Read(filepath.Join(m.Paths[""], "cgroup.freeze"))
		if err != nil {
			return NoFreezer
		}
		if strings.TrimSpace(string(b)) == "1" {
			return Frozen
		}
		return Thawed
	}
	d := m.dir("freezer")
	if d == "" {
		return NoFreezer
	}
	b, err := rawfile.Read(filepath.Join(d, "freezer.state"))
	if err != nil {
		return NoFreezer
	}
	if strings.TrimSpace(string(b)) == "THAWED" {
		return Thawed
	}
	// FREEZING counts as frozen: the request stands.
	return Frozen
}

// Freeze stops every process of the cgroup and waits until they are.
func (m *Manager) Freeze() error { return m.setFreezer(true) }

// Thaw resumes them.
func (m *Manager) Thaw() error { return m.setFreezer(false) }

func (m *Manager) setFreezer(freeze bool) error {
	if m.Unified() {
		dir := m.Paths[""]
		v := "0"
		if freeze {
			v = "1"
		}
		if err := rawfile.Write(filepath.Join(dir, "cgroup.freeze"), []byte(v)); err != nil {
			return fmt.Errorf("write cgroup.freeze in %s: %w", dir, err)
		}
		// cgroup.events reports "frozen 1" once every task stopped.
		return waitFor(func() (bool, error) {
			b, err := rawfile.Read(filepath.Join(dir, "cgroup.events"))
			if err != nil {
				return false, err
			}
			return strings.Contains(string(b), "frozen "+v), nil
		}, dir)
	}
	dir := m.dir("freezer")
	if dir == "" {
		return ErrNoFreezer
	}
	want := "THAWED"
	if freeze {
		want = "FROZEN"
	}
	file := filepath.Join(dir, "freezer.state")
	// v1 may stay FREEZING while a task is in an uninterruptible sleep:
	// re-request until it settles.
	return waitFor(func() (bool, error) {
		if err := rawfile.Write(file, []byte(want)); err != nil {
			return false, fmt.Errorf("write %s: %w", file, err)
		}
		b, err := rawfile.Read(file)
		if err != nil {
			return false, err
		}
		return strings.TrimSpace(string(b)) == want, nil
	}, dir)
}

func waitFor(done func() (bool, error), dir string) error {
	delay := 100 * time.Microsecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: freezer did not settle within 10s", dir)
		}
		time.Sleep(delay)
		if delay < 10*time.Millisecond {
			delay *= 2
		}
	}
}
