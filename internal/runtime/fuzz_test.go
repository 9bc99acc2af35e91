package runtime

import (
	"errors"
	"testing"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// FuzzParseState: a state file's bytes either load, and then survive a
// write and a read back unchanged in what status derives from, or give a
// corrupt-state error; never a panic.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"warrenStateVersion":1,"ociVersion":"1.3.0","id":"x","pid":42,"status":"created","bundle":"/b","rootfs":"/b/rootfs","created":"2026-11-28T10:00:00Z","owner":"root","initStartTime":123,"cgroupPaths":{"memory":"/sys/fs/cgroup/memory/x"}}`))
	f.Add([]byte(`{"id":"x","status":"creating"}`))
	f.Add([]byte(`{"id":"x","status":"running","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},"hooks":{"poststop":[{"path":"/bin/true"}]}}`))
	f.Add([]byte(`{"id":"x","status":"stopped","pid":-1}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"id":"x","stat`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseState(b, "state.json", "x")
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("error of another class: %v", err)
			}
			salvageState(t.TempDir(), "x") // must not panic either
			return
		}
		dir := t.TempDir()
		if err := writeStateFile(dir, st); err != nil {
			t.Fatal(err)
		}
		back, err := readStateFile(dir, "x")
		if err != nil {
			t.Fatalf("a state that loaded does not load after a rewrite: %v", err)
		}
		if back.ID != st.ID || back.Status != st.Status || back.Pid != st.Pid || back.InitStartTime != st.InitStartTime || len(back.CgroupPaths) != len(st.CgroupPaths) {
			t.Fatalf("rewrite changed the state: %+v -> %+v", st, back)
		}
	})
}
