package spec

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runcSpec is what `runc spec` (1.1/1.2, cgroup v2 host) prints, with the
// hostname changed to ours and ociVersion filled in by the test.
const runcSpec = `{
	"ociVersion": "VERSION",
	"process": {
		"terminal": true,
		"user": {"uid": 0, "gid": 0},
		"args": ["sh"],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
		},
		"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
		"noNewPrivileges": true
	},
	"root": {"path": "rootfs", "readonly": true},
	"hostname": "warren",
	"mounts": [
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
		 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
		 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
		 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
		 "options": ["nosuid", "noexec", "nodev"]},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs",
		 "options": ["nosuid", "noexec", "nodev", "ro"]},
		{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
		 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
	],
	"linux": {
		"resources": {"devices": [{"allow": false, "access": "rwm"}]},
		"namespaces": [
			{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
			{"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
		],
		"maskedPaths": [
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
			"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
			"/proc/sched_debug", "/sys/firmware", "/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
		]
	}
}`

func TestDefaultMatchesRunc(t *testing.T) {
	got, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	var gotDoc, wantDoc any
	if err := json.Unmarshal(got, &gotDoc); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(runcSpec, "VERSION", specs.Version, 1)
	if err := json.Unmarshal([]byte(want), &wantDoc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotDoc, wantDoc) {
		t.Errorf("Default() JSON differs from runc's:\n got %s\nwant %s", got, compact(t, want))
	}
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDefaultRoundTrip(t *testing.T) {
	orig := Default()
	data, err := json.MarshalIndent(orig, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	back, err := decode("config.json", data)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !reflect.DeepEqual(orig, back) {
		t.Errorf("round trip changed the spec:\n got %+v\nwant %+v", back, orig)
	}
}

func TestDefaultIsFresh(t *testing.T) {
	a := Default()
	a.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	a.Mounts[0].Destination = "/x"
	b := Default()
	if b.Process.Capabilities.Bounding[0] != "CAP_AUDIT_WRITE" || b.Mounts[0].Destination != "/proc" {
		t.Error("Default() shares state between calls")
	}
	if &a.Process.Capabilities.Effective[0] == &a.Process.Capabilities.Bounding[0] {
		t.Error("capability sets share a backing array")
	}
}

func TestRootless(t *testing.T) {
	tests := []struct {
		name     string
		spec     func() *specs.Spec
		uid, gid uint32
		wantNS   []specs.LinuxNamespaceType
	}{
		{
			name: "default spec",
			spec: Default,
			uid:  1000, gid: 1001,
			wantNS: []specs.LinuxNamespaceType{"pid", "network", "ipc", "uts", "mount", "cgroup", "user"},
		},
		{
			name: "existing user namespace and joined netns",
			spec: func() *specs.Spec {
				s := Default()
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user", Path: "/proc/1/ns/user"})
				s.Linux.Namespaces[1].Path = "/var/run/netns/x"
				return s
			},
			uid: 5, gid: 6,
			wantNS: []specs.LinuxNamespaceType{"pid", "network", "ipc", "uts", "mount", "cgroup", "user"},
		},
		{
			name:   "no linux section",
			spec:   func() *specs.Spec { return &specs.Spec{} },
			uid:    0,
			gid:    0,
			wantNS: []specs.LinuxNamespaceType{"user"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec()
			before := slices.Clone(s.Mounts)
			Rootless(s, RootlessMappings(tc.uid, nil), RootlessMappings(tc.gid, nil))

			var gotNS []specs.LinuxNamespaceType
			for _, n := range s.Linux.Namespaces {
				gotNS = append(gotNS, n.Type)
				if n.Type == specs.UserNamespace && n.Path != "" {
					t.Errorf("user namespace keeps path %q, want a new one", n.Path)
				}
			}
			if !slices.Equal(gotNS, tc.wantNS) {
				t.Errorf("namespaces = %v, want %v", gotNS, tc.wantNS)
			}
			wantUID := []specs.LinuxIDMapping{{ContainerID: 0, HostID: tc.uid, Size: 1}}
			wantGID := []specs.LinuxIDMapping{{ContainerID: 0, HostID: tc.gid, Size: 1}}
			if !reflect.DeepEqual(s.Linux.UIDMappings, wantUID) || !reflect.DeepEqual(s.Linux.GIDMappings, wantGID) {
				t.Errorf("mappings = %v / %v, want %v / %v", s.Linux.UIDMappings, s.Linux.GIDMappings, wantUID, wantGID)
			}
			if s.Linux.Resources != nil {
				t.Errorf("resources = %+v, want nil", s.Linux.Resources)
			}
			if len(s.Mounts) != len(before) {
				t.Fatalf("got %d mounts, want %d", len(s.Mounts), len(before))
			}
			for i, m := range s.Mounts {
				switch m.Destination {
				case "/dev/pts":
					want := []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}
					if !slices.Equal(m.Options, want) {
						t.Errorf("/dev/pts options = %v, want %v", m.Options, want)
					}
				default:
					if !reflect.DeepEqual(m, before[i]) {
						t.Errorf("mount %s changed: %+v, was %+v", m.Destination, m, before[i])
					}
				}
			}
		})
	}
}

func TestRootlessDefaultValidates(t *testing.T) {
	s, bundle := validBase(t)
	Rootless(s, RootlessMappings(1000, [][2]uint32{{100000, 65536}}), RootlessMappings(1000, nil))
	if err := Validate(s, bundle); err != nil {
		t.Fatalf("Validate(rootless default) = %v", err)
	}
}

func TestRootlessMappings(t *testing.T) {
	got := RootlessMappings(1000, [][2]uint32{{100000, 65536}, {300000, 10}})
	want := []specs.LinuxIDMapping{
		{ContainerID: 0, HostID: 1000, Size: 1},
		{ContainerID: 1, HostID: 100000, Size: 65536},
		{ContainerID: 65537, HostID: 300000, Size: 10},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RootlessMappings = %v, want %v", got, want)
	}
	if got := RootlessMappings(7, nil); !reflect.DeepEqual(got, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 7, Size: 1}}) {
		t.Errorf("without subordinate ids = %v, want only 0->7", got)
	}
}
