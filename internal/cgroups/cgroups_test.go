package cgroups

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseProcCgroup(t *testing.T) {
	m := parseProcCgroup("12:pids:/user.slice\n1:name=systemd:/x\n0::/unified/path\n")
	if m["pids"] != "/user.slice" || m["name=systemd"] != "/x" || m[""] != "/unified/path" {
		t.Fatalf("got %v", m)
	}
}

func TestDeviceRule(t *testing.T) {
	cases := []struct {
		r    specs.LinuxDeviceCgroup
		want string
	}{
		{specs.LinuxDeviceCgroup{Access: "rwm"}, "a"},
		{specs.LinuxDeviceCgroup{Type: "c", Major: i64(1), Minor: i64(3), Access: "rw"}, "c 1:3 rw"},
		{specs.LinuxDeviceCgroup{Type: "b", Major: i64(8), Access: "m"}, "b 8:* m"},
		{specs.LinuxDeviceCgroup{Type: "c", Major: i64(-1), Minor: i64(-1)}, "c *:* rwm"},
	}
	for _, c := range cases {
		if got := DeviceRule(c.r); got != c.want {
			t.Errorf("DeviceRule(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}

func TestUnescape(t *testing.T) {
	if got := unescape(`/a\040b`); got != "/a b" {
		t.Fatalf("got %q", got)
	}
}

func TestSetDevicesAllowsListedDevicesLast(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"devices.allow", "devices.deny"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &Manager{Paths: map[string]string{"devices": dir}}
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	devs := []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}
	if err := m.SetDevices(rules, devs); err != nil {
		t.Fatal(err)
	}
	// Each write replaces the fixture file's content: the last rule of
	// each kind is what remains.
	if b, _ := os.ReadFile(filepath.Join(dir, "devices.deny")); string(b) != "a" {
		t.Errorf("devices.deny = %q, want the deny-all rule", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "devices.allow")); string(b) != "c 10:229 rwm" {
		t.Errorf("devices.allow = %q, want the listed device allowed last", b)
	}
	// No v1 devices controller: nothing to do, no error.
	if err := (&Manager{Paths: map[string]string{"": dir}}).SetDevices(rules, devs); err != nil {
		t.Errorf("without devices controller: %v", err)
	}
}
