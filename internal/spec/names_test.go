package spec

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestKnownCapabilities(t *testing.T) {
	caps := KnownCapabilities()
	if len(caps) != 41 {
		t.Fatalf("got %d capabilities, want 41 (CAP_CHOWN..CAP_CHECKPOINT_RESTORE)", len(caps))
	}
	for i, name := range caps {
		v, ok := CapabilityValue(name)
		if !ok || v != i {
			t.Errorf("KnownCapabilities()[%d] = %q with value %d (ok %v), want value %d", i, name, v, ok, i)
		}
	}
	caps[0] = "mutated"
	if KnownCapabilities()[0] != "CAP_CHOWN" {
		t.Error("KnownCapabilities shares state between calls")
	}
}

func TestCapabilityValue(t *testing.T) {
	tests := []struct {
		name string
		want int
		ok   bool
	}{
		{"CAP_CHOWN", 0, true},
		{"CAP_KILL", 5, true},
		{"CAP_NET_BIND_SERVICE", 10, true},
		{"CAP_SYS_ADMIN", 21, true},
		{"CAP_AUDIT_WRITE", 29, true},
		{"CAP_BPF", 39, true},
		{"CAP_CHECKPOINT_RESTORE", 40, true},
		{"cap_sys_admin", 0, false},
		{"SYS_ADMIN", 0, false},
		{"CAP_LAST_CAP", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, ok := CapabilityValue(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CapabilityValue(%q) = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRlimitResource(t *testing.T) {
	tests := []struct {
		name string
		want int
		ok   bool
	}{
		{"RLIMIT_CPU", 0, true},
		{"RLIMIT_NOFILE", 7, true},
		{"RLIMIT_AS", 9, true},
		{"RLIMIT_RTTIME", 15, true},
		{"RLIMIT_NOPE", 0, false},
		{"nofile", 0, false},
	}
	for _, tc := range tests {
		got, ok := RlimitResource(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RlimitResource(%q) = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	if len(rlimits) != 16 {
		t.Errorf("got %d rlimits, want 16", len(rlimits))
	}
}

func TestNamespaceFlag(t *testing.T) {
	// Values from include/uapi/linux/sched.h.
	tests := []struct {
		ns   specs.LinuxNamespaceType
		want uintptr
		ok   bool
	}{
		{specs.MountNamespace, 0x00020000, true},
		{specs.CgroupNamespace, 0x02000000, true},
		{specs.UTSNamespace, 0x04000000, true},
		{specs.IPCNamespace, 0x08000000, true},
		{specs.UserNamespace, 0x10000000, true},
		{specs.PIDNamespace, 0x20000000, true},
		{specs.NetworkNamespace, 0x40000000, true},
		{specs.TimeNamespace, 0x00000080, true},
		{"net", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, ok := NamespaceFlag(tc.ns)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NamespaceFlag(%q) = %#x, %v; want %#x, %v", tc.ns, got, ok, tc.want, tc.ok)
		}
	}
	for _, ns := range namespaceTypes {
		if _, ok := NamespaceFlag(ns); !ok {
			t.Errorf("namespaceTypes lists %q but NamespaceFlag does not know it", ns)
		}
	}
}
