//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func assertCaps(t *testing.T, r *report, want map[string][]string) {
	t.Helper()
	for key, names := range want {
		if got, exp := r.Caps[key], capMask(t, names); got != exp {
			t.Errorf("%s: got %s, want %s (%v)", key, got, exp, names)
		}
	}
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	t.Run("DefaultConfig", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		c := b.spec.Process.Capabilities
		if c == nil || len(c.Bounding) == 0 {
			t.Fatalf("`warren spec` has no capabilities: %+v", c)
		}
		if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
			t.Fatalf("`warren spec` default asks for inheritable/ambient caps: %+v", c)
		}
		r := b.report()
		assertCaps(t, r, map[string][]string{
			"CapBnd": c.Bounding, "CapEff": c.Effective, "CapPrm": c.Permitted,
			"CapInh": nil, "CapAmb": nil,
		})
	})
	// For uid 0 without file capabilities execve(2) sets permitted (and
	// effective) to the bounding set, so a consistent root config has
	// bounding = effective = permitted.
	t.Run("CustomSetAsRoot", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		set := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_SETUID"}
		b.spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}
		r := b.report()
		assertCaps(t, r, map[string][]string{"CapBnd": set, "CapEff": set, "CapPrm": set, "CapInh": nil, "CapAmb": nil})
	})
	// For a non-root user only ambient capabilities survive execve(2):
	// they become permitted and effective.
	t.Run("AmbientAsNonRoot", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		amb := []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"}
		bnd := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
		b.spec.Process.User = specs.User{UID: 1000, GID: 1000}
		b.spec.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding: bnd, Effective: amb, Permitted: amb, Inheritable: amb, Ambient: amb,
		}
		r := b.report()
		if r.UID != 1000 {
			t.Fatalf("uid %d, want 1000", r.UID)
		}
		assertCaps(t, r, map[string][]string{"CapBnd": bnd, "CapEff": amb, "CapPrm": amb, "CapInh": amb, "CapAmb": amb})
	})
	t.Run("NonRootWithoutAmbientHasNone", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		b.spec.Process.User = specs.User{UID: 1000, GID: 1000}
		r := b.report()
		assertCaps(t, r, map[string][]string{
			"CapBnd": b.spec.Process.Capabilities.Bounding,
			"CapEff": nil, "CapPrm": nil, "CapInh": nil, "CapAmb": nil,
		})
	})
}

func TestNonRootUser(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 20}, Umask: ptr(uint32(0o077))}
	b.spec.Process.Cwd = "/work" // not in the rootfs: the runtime creates it
	b.spec.Process.Env = append(b.spec.Process.Env, "WIT_FOO=bar baz", "WIT_EMPTY=")
	r := b.report()
	if r.UID != 1000 || r.EUID != 1000 || r.GID != 1000 || r.EGID != 1000 {
		t.Errorf("uid/euid/gid/egid: %d/%d/%d/%d, want 1000 for all", r.UID, r.EUID, r.GID, r.EGID)
	}
	groups := slices.Clone(r.Groups)
	slices.Sort(groups)
	if fmt.Sprint(groups) != "[10 20]" {
		t.Errorf("supplementary groups: %v, want [10 20]", r.Groups)
	}
	if r.Umask != 0o077 {
		t.Errorf("umask: %#o, want 0077", r.Umask)
	}
	if r.Cwd != "/work" {
		t.Errorf("cwd: %q, want /work", r.Cwd)
	}
	for _, e := range []string{"WIT_FOO=bar baz", "WIT_EMPTY=", b.spec.Process.Env[0]} {
		if !slices.Contains(r.Env, e) {
			t.Errorf("env lacks %q: %q", e, r.Env)
		}
	}
	if fi, err := os.Stat(filepath.Join(b.rootfs, "work")); err != nil || !fi.IsDir() {
		t.Errorf("host: cwd /work was not created in the rootfs (err %v)", err)
	}
}

func TestNoNewPrivileges(t *testing.T) {
	t.Parallel()
	for _, nnp := range []bool{true, false} {
		t.Run(fmt.Sprintf("noNewPrivileges=%v", nnp), func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			b.spec.Process.NoNewPrivileges = nnp
			r := b.report()
			want := 0
			if nnp {
				want = 1
			}
			if r.NoNewPrivs != want {
				t.Errorf("NoNewPrivs inside: %d, want %d", r.NoNewPrivs, want)
			}
		})
	}
}

func TestRlimits(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Process.Rlimits = []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048},
		{Type: "RLIMIT_CORE", Soft: 4096, Hard: 8192},
	}
	r := b.report()
	for name, want := range map[string][2]uint64{"RLIMIT_NOFILE": {1024, 2048}, "RLIMIT_CORE": {4096, 8192}} {
		got, ok := r.Rlimits[name]
		if !ok {
			t.Errorf("%s missing from the report", name)
			continue
		}
		if got.Soft != want[0] || got.Hard != want[1] {
			t.Errorf("%s inside: soft %d hard %d, want soft %d hard %d", name, got.Soft, got.Hard, want[0], want[1])
		}
	}
}

func TestOOMScoreAdj(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.spec.Process.OOMScoreAdj = ptr(500)
	if r := b.report(); r.OOMScoreAdj != 500 {
		t.Errorf("oom_score_adj inside: %d, want 500", r.OOMScoreAdj)
	}
}

func TestOnlyStdioFDs(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	// An fd the caller leaks to warren (no CLOEXEC: ExtraFiles) must not
	// reach the container without --preserve-fds.
	leak, err := os.Open(b.tempDir("leak"))
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	b.setArgs("/testinit", "report")
	_, res := b.run(execOpts{extraFiles: []*os.File{leak}})
	if res.code != 0 {
		t.Fatalf("run failed:\n%s", res)
	}
	var r report
	decodeJSON(t, strings.TrimSpace(res.stdout), &r)
	if fmt.Sprint(r.FDs) != "[0 1 2]" {
		t.Errorf("open fds inside: %v (targets %v), want exactly [0 1 2]", r.FDs, r.FDTargets)
	}
}

func TestPreserveFDs(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	dir := b.tempDir("preserved")
	var files []*os.File
	for _, name := range []string{"preserved-a", "preserved-b", "not-preserved-c"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	b.setArgs("/testinit", "report")
	// fds 3, 4 and 5 reach warren; --preserve-fds 2 passes 3 and 4 only.
	_, res := b.run(execOpts{extraFiles: files}, "--preserve-fds", "2")
	if res.code != 0 {
		t.Fatalf("run failed:\n%s", res)
	}
	var r report
	decodeJSON(t, strings.TrimSpace(res.stdout), &r)
	if fmt.Sprint(r.FDs) != "[0 1 2 3 4]" {
		t.Errorf("open fds inside with --preserve-fds 2: %v (targets %v), want [0 1 2 3 4]", r.FDs, r.FDTargets)
	}
	for fd, name := range map[int]string{3: "preserved-a", 4: "preserved-b"} {
		if tgt := r.FDTargets[fd]; !strings.HasSuffix(tgt, "/"+name) {
			t.Errorf("fd %d inside points to %q, want the caller's file .../%s", fd, tgt, name)
		}
	}
}

func TestStdioPassthrough(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	in := filepath.Join(b.tempDir("stdin"), "input")
	writeFile(t, in, "input-from-caller\n")
	stdin, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	b.setScript("echo to-stdout; echo to-stderr >&2; cat")
	_, res := b.run(execOpts{stdin: stdin})
	if res.code != 0 {
		t.Fatalf("run failed:\n%s", res)
	}
	if res.stdout != "to-stdout\ninput-from-caller\n" {
		t.Errorf("caller's stdout: %q, want the container's stdout and the echoed stdin", res.stdout)
	}
	if !strings.Contains(res.stderr, "to-stderr\n") {
		t.Errorf("caller's stderr: %q, want it to contain the container's stderr", res.stderr)
	}
}
