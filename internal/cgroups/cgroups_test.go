package cgroups

import (
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
