package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

func TestParseStateCorrupt(t *testing.T) {
	for name, b := range map[string]string{
		"empty":          "",
		"blank":          " \n",
		"truncated":      `{"id":"x","status":"runn`,
		"garbage":        "\x00\x01garbage",
		"not an object":  `[1,2]`,
		"newer version":  `{"warrenStateVersion":99,"id":"x","status":"running"}`,
		"other id":       `{"id":"y","status":"running"}`,
		"bad status":     `{"id":"x","status":"dancing"}`,
		"negative pid":   `{"id":"x","status":"running","pid":-4}`,
		"relative cg":    `{"id":"x","status":"running","cgroupPaths":{"memory":"sys/fs/cgroup/memory/x"}}`,
		"cg with dotdot": `{"id":"x","status":"running","cgroupPaths":{"memory":"/sys/fs/cgroup/memory/../../x"}}`,
	} {
		_, err := parseState([]byte(b), "/run/warren/x/state.json", "x")
		if !errors.Is(err, errdefs.ErrCorrupt) {
			t.Errorf("%s: got %v, want a corrupt-state error", name, err)
			continue
		}
		for _, want := range []string{"container x", "/run/warren/x/state.json", "delete --force x"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not name %q", name, err, want)
			}
		}
	}
	// A file of an older build (no version) still reads.
	if _, err := parseState([]byte(`{"id":"x","status":"created","pid":5}`), "p", "x"); err != nil {
		t.Errorf("unversioned state: %v", err)
	}
}

// A container recorded as creating is creating while its creator holds the
// lock, and stopped (an interrupted create) once the lock is free.
func TestCreatingNeedsItsCreator(t *testing.T) {
	dir := t.TempDir()
	st := &State{ID: "x", Status: Creating}
	if err := writeStateFile(dir, st); err != nil {
		t.Fatal(err)
	}
	lock, err := lockDir(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readStateFile(dir, "x")
	refresh(dir, got)
	if got.Status != Creating {
		t.Errorf("locked: status %s, want creating", got.Status)
	}
	lock.Close()
	got, _ = readStateFile(dir, "x")
	refresh(dir, got)
	if got.Status != Stopped {
		t.Errorf("unlocked: status %s, want stopped", got.Status)
	}
	got, _ = readStateFile(dir, "x")
	refreshLocked(dir, got)
	if got.Status != Stopped {
		t.Errorf("as lock holder: status %s, want stopped", got.Status)
	}
}

func TestStageDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "x")
	lock, err := stageDir(root, dir, &State{ID: "x", Status: Creating})
	if err != nil {
		t.Fatal(err)
	}
	if !lockHeld(dir) {
		t.Error("the renamed directory is not locked")
	}
	if _, err := stageDir(root, dir, &State{ID: "x", Status: Creating}); !errors.Is(err, errdefs.ErrExists) {
		t.Errorf("second create of x: %v", err)
	}
	lock.Close()
	// Only x is left: the failed second attempt removed its staging dir.
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "x" {
		t.Errorf("root holds %v", entries)
	}
	if _, err := readStateFile(dir, "x"); err != nil {
		t.Error(err)
	}
}

func TestListSweepsLeftoversAndReportsCorrupt(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{stagingPrefix + "1", trashPrefix + "2", "bad", "empty", "good"} {
		os.Mkdir(filepath.Join(root, d), 0o700)
	}
	busy := filepath.Join(root, stagingPrefix+"busy")
	os.Mkdir(busy, 0o700)
	lock, err := lockDir(busy, "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	os.WriteFile(filepath.Join(root, "bad", stateFile), []byte(`{"id":"bad","stat`), 0o600)
	writeStateFile(filepath.Join(root, "good"), &State{ID: "good", Status: Stopped})
	got, err := List(root)
	if err != nil {
		t.Fatal(err)
	}
	// "empty" (no state file) is not a container: not listed.
	if len(got) != 2 || got[0].ID != "bad" || got[0].Status != Stopped || got[1].ID != "good" {
		t.Errorf("list: %+v", got)
	}
	for _, d := range []string{stagingPrefix + "1", trashPrefix + "2"} {
		if fileExists(filepath.Join(root, d)) {
			t.Errorf("%s not swept", d)
		}
	}
	if !fileExists(busy) {
		t.Error("a staging directory in use was swept")
	}
}

func TestSalvageState(t *testing.T) {
	dir := t.TempDir()
	// Parses as JSON but not as a state (wrong type for status).
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"id":"x","status":7,"pid":42,"initStartTime":99,"cgroupPaths":{"memory":"/sys/fs/cgroup/memory/x","cpu":"rel","pids":"/"}}`), 0o600)
	st := salvageState(dir, "x")
	if st.Pid != 42 || st.InitStartTime != 99 {
		t.Errorf("pid/start not salvaged: %+v", st)
	}
	if len(st.CgroupPaths) != 1 || st.CgroupPaths["memory"] != "/sys/fs/cgroup/memory/x" {
		t.Errorf("cgroup paths: %v", st.CgroupPaths)
	}
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"id":"x","pid":4`), 0o600)
	if st := salvageState(dir, "x"); st.Pid != 0 || len(st.CgroupPaths) != 0 {
		t.Errorf("truncated file salvaged to %+v", st)
	}
}

// A state file of an older layout (the config's parts as fields of their
// own) reads as the current one.
func TestLegacyStateParts(t *testing.T) {
	old := `{"ociVersion":"1.3.0","id":"x","status":"created","pid":5,
		"process":{"args":["sh"],"cwd":"/w","user":{"uid":7,"gid":8}},
		"hooks":{"poststop":[{"path":"/bin/true"}]},
		"seccomp":{"defaultAction":"SCMP_ACT_ERRNO"},
		"resources":{"pids":{"limit":9}}}`
	st, err := parseState([]byte(old), "state.json", "x")
	if err != nil {
		t.Fatal(err)
	}
	p, sc, err := st.process()
	if err != nil || p == nil || p.Cwd != "/w" || p.User.UID != 7 || sc == nil || sc.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Errorf("process %+v, seccomp %+v, err %v", p, sc, err)
	}
	if h := st.hooks(); h == nil || len(h.Poststop) != 1 {
		t.Errorf("hooks %+v", h)
	}
	if r, err := st.resources(); err != nil || r == nil || r.Pids == nil || *r.Pids.Limit != 9 {
		t.Errorf("resources %+v, err %v", r, err)
	}
	if st.NoProcess {
		t.Error("NoProcess set for a state with a process")
	}
	// Rewritten, it keeps them.
	dir := t.TempDir()
	if err := writeStateFile(dir, st); err != nil {
		t.Fatal(err)
	}
	back, err := readStateFile(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := back.process(); p == nil || p.Cwd != "/w" {
		t.Errorf("after a rewrite: process %+v", p)
	}
	if r, _ := back.resources(); r == nil || r.Pids == nil {
		t.Errorf("after a rewrite: resources %+v", r)
	}
}

// delete --force removes a directory without a readable state only when it
// holds nothing but what warren puts there.
func TestForceDeleteMissingOnlyOurs(t *testing.T) {
	root := t.TempDir()
	ours := filepath.Join(root, "ours")
	os.Mkdir(ours, 0o700)
	os.WriteFile(filepath.Join(ours, stateFile), []byte("garbage"), 0o600)
	if err := ForceDeleteMissing(root, "ours"); err != nil || fileExists(ours) {
		t.Errorf("corrupt container: err %v, still there: %v", err, fileExists(ours))
	}
	data := filepath.Join(root, "rootfs")
	os.MkdirAll(filepath.Join(data, "bin"), 0o755)
	if err := ForceDeleteMissing(root, "rootfs"); !errors.Is(err, errdefs.ErrInvalid) || !fileExists(filepath.Join(data, "bin")) {
		t.Errorf("a directory that is not a container's: err %v, removed: %v", err, !fileExists(data))
	}
}

// A truncated state still gives up the pid and cgroups written before the
// cut.
func TestSalvageTruncatedState(t *testing.T) {
	dir := t.TempDir()
	full := `{"warrenStateVersion":2,"id":"x","pid":42,"status":"running","initStartTime":99,"cgroupPaths":{"memory":"/sys/fs/cgroup/memory/x"},"config":{"process":{"args":["sh"]}}}`
	os.WriteFile(filepath.Join(dir, stateFile), []byte(full[:len(full)-25]), 0o600)
	st := salvageState(dir, "x")
	if st.Pid != 42 || st.InitStartTime != 99 || st.CgroupPaths["memory"] != "/sys/fs/cgroup/memory/x" {
		t.Errorf("salvaged %+v", st)
	}
}

// A lock waited for on a directory that was replaced meanwhile (deleted,
// and a new container created under the same id) is taken on the new one.
func TestLockDirFollowsReplacement(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "x")
	os.Mkdir(dir, 0o700)
	first, err := lockDir(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *os.File)
	go func() {
		f, err := lockDir(dir, "x")
		if err != nil {
			t.Error(err)
		}
		got <- f
	}()
	// Replace the directory while the second locker waits (give it time
	// to open the old one and block on its lock).
	time.Sleep(50 * time.Millisecond)
	os.Rename(dir, filepath.Join(root, trashPrefix+"1"))
	os.Mkdir(dir, 0o700)
	first.Close()
	second := <-got
	defer second.Close()
	var held, now unix.Stat_t
	unix.Fstat(int(second.Fd()), &held)
	unix.Stat(dir, &now)
	if held.Ino != now.Ino {
		t.Error("the lock was taken on the replaced directory, not the one now at the path")
	}
}

// writeFileAtomic swaps a new file with the old one and unlinks the old:
// afterwards only the file is left, with the new content.
func TestWriteFileAtomicReplaces(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []string{"first", "second, longer", "third"} {
		if err := writeFileAtomic(dir, "f", []byte(c)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "f"))
		if err != nil || string(b) != c {
			t.Fatalf("after writing %q: %q, %v", c, b, err)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("after writing %q the directory holds %v, want only f", c, names)
		}
	}
}
