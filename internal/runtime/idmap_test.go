package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The checks an unprivileged user's maps get before newuidmap runs: each
// refusal names the mapping and the missing grant.
func TestHelperForErrors(t *testing.T) {
	sub := filepath.Join(t.TempDir(), "subuid")
	if err := os.WriteFile(sub, []byte("alice:100000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}}
	for _, tc := range []struct {
		name, user string
		maps       []specs.LinuxIDMapping
		want       []string // substrings; nil means success
	}{
		{"own id plus granted range", "alice", big, nil},
		{"no entry at all", "bob", big, []string{"linux.uidMappings[1]", "user bob has no entry in " + sub, "bob:100000:65536"}},
		{"outside the range", "alice", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 165536, Size: 1}},
			[]string{"linux.uidMappings[1]", "host uids 165536-165536 are outside the ranges", "alice (100000-165535)"}},
		{"someone else's id", "alice", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}}, []string{"linux.uidMappings[0]", "host uids 0-0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helperFor("sh", sub, "linux.uidMappings", "uid", tc.maps, tc.user, 1000)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("succeeded, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := helperFor("warren-no-such-helper", sub, "linux.uidMappings", "uid", big, "alice", 1000); err == nil || !strings.Contains(err.Error(), "uidmap") {
		t.Errorf("missing helper: got %v, want an error naming the uidmap package", err)
	}
}

func TestSelfMap(t *testing.T) {
	if !selfMap([]specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}, 1000) {
		t.Error("own id, size 1: want a self map")
	}
	if selfMap([]specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 2}}, 1000) || selfMap([]specs.LinuxIDMapping{{ContainerID: 0, HostID: 1001, Size: 1}}, 1000) {
		t.Error("size 2 or another id: want not a self map")
	}
}
