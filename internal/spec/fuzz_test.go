package spec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// classified reports whether err carries one of the classes the CLI maps
// to a message and exit code.
func classified(err error) bool {
	for _, c := range []error{errdefs.ErrInvalid, errdefs.ErrNotSupported, errdefs.ErrNotFound} {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

func fuzzBundle(f *testing.F) string {
	b := f.TempDir()
	if err := os.Mkdir(filepath.Join(b, "rootfs"), 0o755); err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzLoadValidate feeds config.json bytes through decode and Validate: no
// input may panic, and every rejection is a classified error (the CLI's
// "field: problem" message), never a bare one.
func FuzzLoadValidate(f *testing.F) {
	def, _ := json.Marshal(Default())
	f.Add(def)
	rl := Default()
	Rootless(rl, RootlessMappings(1000, [][2]uint32{{100000, 65536}}), RootlessMappings(1000, [][2]uint32{{100000, 65536}}))
	b, _ := json.Marshal(rl)
	f.Add(b)
	f.Add([]byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"linux":{"namespaces":[{"type":"mount"}]}}`))
	f.Add([]byte(`{"ociVersion":"1.3.0","root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"mount"},{"type":"user"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}`))
	f.Add([]byte(`{"mounts":[{"destination":"/x","type":"bind","source":"/tmp","options":["rbind","idmap","ro"],"uidMappings":[{"containerID":0,"hostID":0,"size":1}]}]}`))
	f.Add([]byte(`{"process":{"rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":5}]}}`))
	f.Add([]byte(`{"linux":{"resources":{"memory":{"limit":-5},"cpu":{"period":0}},"sysctl":{"net.ipv4.ip_forward":"1"}}}`))
	f.Add([]byte(`{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["nosuch"],"action":"SCMP_ACT_ALLOW"}]}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"ociVersion":`))
	bundle := fuzzBundle(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decode("config.json", data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "config.json") {
				t.Fatalf("decode error without class or file name: %v", err)
			}
			return
		}
		if err := Validate(s, bundle); err != nil && !classified(err) {
			t.Fatalf("validation error without class: %v", err)
		}
	})
}

// FuzzIDMappings drives the user namespace checks with arbitrary maps and
// process ids: an accepted config maps container root, the process uid
// and gid, and its maps do not overlap.
func FuzzIDMappings(f *testing.F) {
	f.Add(uint32(0), uint32(100000), uint32(65536), uint32(0), uint32(100000), uint32(65536), uint32(0), uint32(0))
	f.Add(uint32(0), uint32(1000), uint32(1), uint32(1), uint32(2000), uint32(10), uint32(5), uint32(5))
	f.Add(uint32(0), ^uint32(0), uint32(2), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0))
	bundle := fuzzBundle(f)
	f.Fuzz(func(t *testing.T, c1, h1, n1, c2, h2, n2, uid, gid uint32) {
		s := Default()
		s.Root.Path = "rootfs"
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: c1, HostID: h1, Size: n1}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: c2, HostID: h2, Size: n2}}
		s.Process.User.UID, s.Process.User.GID = uid, gid
		err := Validate(s, bundle)
		if err != nil {
			if !classified(err) {
				t.Fatalf("error without class: %v", err)
			}
			return
		}
		for _, m := range [][2]any{{s.Linux.UIDMappings, uid}, {s.Linux.GIDMappings, gid}} {
			maps, id := m[0].([]specs.LinuxIDMapping), m[1].(uint32)
			if !mapped(maps, 0) || !mapped(maps, id) {
				t.Fatalf("accepted maps %+v that do not map 0 and %d", maps, id)
			}
			for _, r := range maps {
				if uint64(r.ContainerID)+uint64(r.Size) > 1<<32 || uint64(r.HostID)+uint64(r.Size) > 1<<32 {
					t.Fatalf("accepted a range past 2^32: %+v", r)
				}
			}
		}
	})
}

// FuzzRlimits: an accepted rlimit list names known limits once each, with
// soft <= hard.
func FuzzRlimits(f *testing.F) {
	f.Add("RLIMIT_NOFILE", uint64(1024), uint64(4096), "RLIMIT_NPROC", uint64(10), uint64(10))
	f.Add("RLIMIT_CORE", uint64(5), uint64(1), "RLIMIT_CORE", uint64(0), uint64(0))
	f.Add("rlimit_nofile", ^uint64(0), ^uint64(0), "", uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, t1 string, s1, h1 uint64, t2 string, s2, h2 uint64) {
		rl := []specs.POSIXRlimit{{Type: t1, Soft: s1, Hard: h1}, {Type: t2, Soft: s2, Hard: h2}}
		err := checkRlimits(rl)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "process.rlimits[") {
				t.Fatalf("error without class or field: %v", err)
			}
			return
		}
		if t1 == t2 || s1 > h1 || s2 > h2 {
			t.Fatalf("accepted %+v", rl)
		}
		for _, r := range rl {
			if _, ok := rlimits[r.Type]; !ok {
				t.Fatalf("accepted unknown type %q", r.Type)
			}
		}
	})
}
