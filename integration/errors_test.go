//go:build linux

package integration

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// expectFailure checks a failed warren invocation: non-zero exit, each of
// wants in stderr.
func expectFailure(t *testing.T, r result, wants ...string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("expected a failure:\n%s", r)
		return
	}
	if r.err != nil {
		t.Errorf("warren did not exit normally:\n%s", r)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r)
		}
	}
}

// assertRootEmpty checks that --root holds no container state at all.
func (b *bundle) assertRootEmpty() {
	b.t.Helper()
	ents, err := os.ReadDir(b.root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		b.t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		b.t.Errorf("leftover: --root %s is not empty after a failed command: %v", b.root, names)
	}
}

// failCreate runs `create` expecting failure and checks nothing is left.
func (b *bundle) failCreate(id string, wants ...string) result {
	b.t.Helper()
	_, r := b.tryCreate(id)
	expectFailure(b.t, r, wants...)
	b.assertNoLeftovers(id)
	b.assertRootEmpty()
	return r
}

func TestBadInput(t *testing.T) {
	t.Parallel()

	t.Run("MalformedConfigJSON", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		id := newID(t)
		b.track(id)
		cfg := "{\n\t\"ociVersion\": \"1.0.2\",\n\t\"process\": {\n\t\t\"args\": [\"/testinit\",]\n\t}\n}\n"
		writeFile(t, filepath.Join(b.dir, "config.json"), cfg)
		r := b.warren("create", "--bundle", b.dir, id)
		expectFailure(t, r, "config.json", "line 4")
		b.assertNoLeftovers(id)
		b.assertRootEmpty()
	})

	t.Run("WrongJSONType", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		id := newID(t)
		b.track(id)
		cfg := "{\n\t\"ociVersion\": \"1.0.2\",\n\t\"process\": {\n\t\t\"cwd\": \"/\",\n\t\t\"args\": \"/testinit\"\n\t},\n\t\"root\": {\"path\": \"rootfs\"}\n}\n"
		writeFile(t, filepath.Join(b.dir, "config.json"), cfg)
		r := b.warren("create", "--bundle", b.dir, id)
		expectFailure(t, r, "config.json", "args", "line 5")
		b.assertNoLeftovers(id)
		b.assertRootEmpty()
	})

	t.Run("MissingRootfs", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.spec.Root.Path = "no-such-rootfs"
		b.failCreate(newID(t), filepath.Join(b.dir, "no-such-rootfs"))
	})

	t.Run("UnknownNamespaceType", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		n := len(b.spec.Linux.Namespaces)
		b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		b.failCreate(newID(t), "linux.namespaces["+strconv.Itoa(n)+"].type", "bogus")
	})

	t.Run("NamespacePathDoesNotExist", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		for i, ns := range b.spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				b.spec.Linux.Namespaces[i].Path = "/proc/self/ns/no-such-ns"
				b.failCreate(newID(t), "/proc/self/ns/no-such-ns")
			}
		}
	})

	t.Run("DuplicateID", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.setArgs("/testinit", "sleep", "1000")
		id := newID(t)
		first := b.create(id)
		_, r := b.tryCreate(id)
		expectFailure(t, r, id, "exists")
		// The first container is untouched and still works.
		st := b.state(id)
		if st.Status != "created" || st.Pid != first.pid || !procAlive(first.pid) {
			t.Errorf("first container after the duplicate create: status %q pid %d (alive %v), want created with pid %d",
				st.Status, st.Pid, procAlive(first.pid), first.pid)
		}
		for _, d := range containerCgroupDirs(id) {
			if _, err := os.Stat(d); err != nil {
				t.Errorf("first container's cgroup directory after the duplicate create: %v", err)
			}
		}
		first.startIt()
		if st := b.state(id); st.Status != "running" {
			t.Errorf("first container after start: %q, want running", st.Status)
		}
	})

	t.Run("StartRunning", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.setArgs("/testinit", "sleep", "1000")
		c := b.create(newID(t))
		c.startIt()
		r := b.warren("start", c.id)
		expectFailure(t, r, c.id)
		if st := b.state(c.id); st.Status != "running" || !procAlive(c.pid) {
			t.Errorf("after the second start: status %q, init alive %v; want still running", st.Status, procAlive(c.pid))
		}
	})

	t.Run("NonexistentID", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		id := newID(t)
		for _, args := range [][]string{
			{"start", id}, {"state", id}, {"kill", id}, {"kill", id, "KILL"}, {"delete", id}, {"ps", id},
		} {
			r := b.warren(args...)
			expectFailure(t, r, id)
		}
		b.assertNoLeftovers(id)
		b.assertRootEmpty()
	})

	t.Run("InvalidIDCharacters", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		outside := "wit-escape-" + newID(t)
		for _, id := range []string{"bad/id", "bad id", "../" + outside, "bad:id"} {
			_, r := b.tryCreate(id)
			expectFailure(t, r, id)
			b.assertRootEmpty()
		}
		if _, err := os.Lstat(filepath.Join(filepath.Dir(b.root), outside)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("an id with ../ created %s outside --root (err %v)", outside, err)
		}
	})

	// A bare name is looked up in $PATH (as runc does): the error says so.
	t.Run("MissingExecutableInPath", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.setArgs("no-such-binary")
		b.failCreate(newID(t), "no-such-binary", "executable file not found")
	})

	t.Run("MissingExecutableAbsolute", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.setArgs("/no/such/binary")
		b.failCreate(newID(t), "/no/such/binary")
	})

	t.Run("MissingExecutableRun", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.setArgs("no-such-binary")
		_, r := b.run(execOpts{})
		expectFailure(t, r, "no-such-binary", "executable file not found")
		b.assertRootEmpty()
	})

	t.Run("JSONLogOnFailure", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		logFile := filepath.Join(b.tempDir("log"), "warren.log")
		id := newID(t)
		r := b.warren("--log-format", "json", "--log", logFile, "state", id)
		if r.code == 0 {
			t.Fatalf("state of a nonexistent container succeeded:\n%s", r)
		}
		b.spec.Root.Path = "no-such-rootfs"
		b.writeSpec()
		id2 := newID(t)
		b.track(id2)
		r = b.warren("--log-format", "json", "--log", logFile, "create", "--bundle", b.dir, id2)
		if r.code == 0 {
			t.Fatalf("create with a missing rootfs succeeded:\n%s", r)
		}
		b.assertNoLeftovers(id2)

		type entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}
		var errs []entry
		for _, l := range lines(readFile(t, logFile)) {
			var e entry
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Errorf("log line is not JSON: %q (%v)", l, err)
				continue
			}
			if e.Level == "error" {
				errs = append(errs, e)
			}
		}
		if len(errs) != 2 {
			t.Fatalf("want 2 \"level\":\"error\" lines in %s, got %d:\n%s", logFile, len(errs), readFile(t, logFile))
		}
		for i, want := range []string{id, "no-such-rootfs"} {
			if !strings.Contains(errs[i].Msg, want) {
				t.Errorf("error log line %d: msg %q does not mention %q", i, errs[i].Msg, want)
			}
			if errs[i].Time == "" {
				t.Errorf("error log line %d has no time", i)
			}
		}
	})
}
