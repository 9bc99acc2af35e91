package runtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestMsgRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := writeMsg(&buf, msgConfig, []byte(`{"id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if err := writeMsg(&buf, msgReady, nil); err != nil {
		t.Fatal(err)
	}
	p, err := readMsg(&buf, msgConfig)
	if err != nil || string(p) != `{"id":"x"}` {
		t.Fatalf("config: %q, %v", p, err)
	}
	if p, err := readMsg(&buf, msgReady); err != nil || len(p) != 0 {
		t.Fatalf("ready: %q, %v", p, err)
	}
}

func TestReadMsgErrors(t *testing.T) {
	var buf bytes.Buffer
	writeMsg(&buf, msgError, []byte("mount proc: permission denied"))
	_, err := readMsg(&buf, msgReady)
	var ce *childError
	if !errors.As(err, &ce) || ce.msg != "mount proc: permission denied" {
		t.Fatalf("want child error, got %v", err)
	}
	buf.Reset()
	writeMsg(&buf, msgPid, nil)
	if _, err := readMsg(&buf, msgReady); err == nil || !strings.Contains(err.Error(), "expected message") {
		t.Fatalf("wrong type accepted: %v", err)
	}
	if _, err := readMsg(&bytes.Buffer{}, msgReady); err == nil || !strings.Contains(err.Error(), "exited before reporting") {
		t.Fatalf("EOF: %v", err)
	}
}

func TestNamespacePlanJoinsUserFirst(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"},
		{Type: specs.PIDNamespace},
		{Type: specs.UserNamespace, Path: "/proc/1/ns/user"},
		{Type: specs.MountNamespace},
	}}}
	clone, joins := namespacePlan(s)
	if clone != unix.CLONE_NEWPID|unix.CLONE_NEWNS {
		t.Errorf("clone flags %#x", clone)
	}
	if len(joins) != 2 || joins[0].flag != unix.CLONE_NEWUSER || joins[1].flag != unix.CLONE_NEWNET {
		t.Errorf("joins %+v: user must come first", joins)
	}
	if b := bootstrapMsg(clone, false, true, true, nil, nil); binary.LittleEndian.Uint32(b[4:]) != bootNonDumpable|bootTail {
		t.Errorf("sync flags of a tail exec: %#x", binary.LittleEndian.Uint32(b[4:]))
	}
	b := bootstrapMsg(clone, true, false, false, joins, nil)
	if got := binary.LittleEndian.Uint32(b[0:]); got != uint32(clone) {
		t.Errorf("encoded flags %#x", got)
	}
	if binary.LittleEndian.Uint32(b[4:]) != 1 || binary.LittleEndian.Uint32(b[8:]) != 2 {
		t.Errorf("sync/njoins header %v", b[:12])
	}
	if binary.LittleEndian.Uint32(b[12:]) != unix.CLONE_NEWUSER || string(b[20:20+len("/proc/1/ns/user")]) != "/proc/1/ns/user" {
		t.Errorf("first join encoded wrong: %q", b[12:])
	}
	// The cgroup section follows the joins: a count, then length-prefixed
	// tasks files; without any, a count of 0.
	if n := binary.LittleEndian.Uint32(b[len(b)-4:]); n != 0 {
		t.Errorf("no tasks files: count %d at the end", n)
	}
	tasks := []string{"/sys/fs/cgroup/pids/c1/tasks", "/sys/fs/cgroup/cpu/c1/tasks"}
	b2 := bootstrapMsg(clone, true, false, false, joins, tasks)
	rest := b2[len(b):]
	if binary.LittleEndian.Uint32(b2[len(b)-4:]) != 2 {
		t.Fatalf("tasks count: %v", b2[len(b)-4:len(b)])
	}
	for _, want := range tasks {
		n := int(binary.LittleEndian.Uint32(rest))
		if got := string(rest[4 : 4+n]); got != want {
			t.Errorf("tasks file %q, want %q", got, want)
		}
		rest = rest[4+n:]
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes after the tasks files", len(rest))
	}
}
