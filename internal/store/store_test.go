package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
)

func rec(id, name string) *Record {
	return &Record{Container: api.Container{ID: id, Name: name, Created: time.Now()}}
}

func TestRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engine.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(rec("aaaa1111", "web")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(rec("aaaa2222", "db")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(rec("bbbb3333", "web")); !errors.Is(err, errdefs.ErrExists) {
		t.Fatalf("second 'web': %v, want ErrExists", err)
	}
	for ref, want := range map[string]string{"web": "aaaa1111", "aaaa2222": "aaaa2222", "aaaa2": "aaaa2222", "db": "aaaa2222"} {
		if id, err := s.Resolve(ref); err != nil || id != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, id, err, want)
		}
	}
	if _, err := s.Resolve("aaaa"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if _, err := s.Resolve("zzz"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	r, _ := s.Get("aaaa1111")
	r.State.Status = api.StateRunning
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	// Reopened (as after a crash), the change is there.
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, _ := s.Get("aaaa1111"); r.State.Status != api.StateRunning {
		t.Fatalf("status after reopen: %q", r.State.Status)
	}
	if err := s.Delete("aaaa1111"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(rec("cccc", "web")); err != nil {
		t.Fatalf("name not released by Delete: %v", err)
	}
	rs, _ := s.List()
	if len(rs) != 2 {
		t.Fatalf("List: %d records", len(rs))
	}
}

func TestUsernsRanges(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "engine.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := s.AllocUserns("a", 1000, 10, 2)
	b, _ := s.AllocUserns("b", 1000, 10, 2)
	if a != 1000 || b != 1010 {
		t.Fatalf("ranges %d %d", a, b)
	}
	if _, err := s.AllocUserns("c", 1000, 10, 2); err == nil {
		t.Fatal("a third range out of two")
	}
	r := rec("a", "a")
	r.UsernsStart = a
	s.Create(r)
	s.Delete("a")
	if c, err := s.AllocUserns("c", 1000, 10, 2); err != nil || c != 1000 {
		t.Fatalf("freed range not reused: %d %v", c, err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engine.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path); !errors.Is(err, errdefs.ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}
