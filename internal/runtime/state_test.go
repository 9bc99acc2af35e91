package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/warren-runtime/warren/internal/errdefs"
)

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"a", "my-ctr_1.2", "A+b"} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "../x", "x\x00"} {
		if err := ValidateID(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%q accepted (err %v)", bad, err)
		}
	}
}

func TestStateFileAndRefresh(t *testing.T) {
	dir := t.TempDir()
	if _, err := readStateFile(dir, "x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing state: %v", err)
	}
	start, _, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	st := &State{ID: "x", Status: Created, Pid: os.Getpid(), InitStartTime: start}
	if err := writeStateFile(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := readStateFile(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	// Alive, no fifo: running.
	refresh(dir, got)
	if got.Status != Running {
		t.Errorf("status %s, want running", got.Status)
	}
	// Alive, fifo present: created.
	os.WriteFile(filepath.Join(dir, fifoName), nil, 0o600)
	refresh(dir, got)
	if got.Status != Created {
		t.Errorf("status %s, want created", got.Status)
	}
	// Same pid, other start time (pid reuse): stopped, and shown with pid 0.
	got.InitStartTime = start + 1
	refresh(dir, got)
	if got.Status != Stopped {
		t.Errorf("status %s, want stopped", got.Status)
	}
	if p := Public(got); p.Pid != 0 || p.Status != "stopped" {
		t.Errorf("public state of stopped container: %+v", p)
	}
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{"), 0o600)
	if _, err := readStateFile(dir, "x"); err == nil {
		t.Error("corrupt state accepted")
	}
}

func TestTransitions(t *testing.T) {
	if !transitions[Created]["start"] || transitions[Running]["start"] || transitions[Stopped]["start"] {
		t.Error("start allowed only from created")
	}
	if transitions[Running]["delete"] || !transitions[Running]["delete-force"] || !transitions[Stopped]["delete"] {
		t.Error("delete of running needs force")
	}
}
