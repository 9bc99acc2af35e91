package spec

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFeaturesJSON(t *testing.T) {
	data, err := FeaturesJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("FeaturesJSON output is not JSON: %v\n%s", err, data)
	}
	// Each path must resolve to the given value; nil means "present, any value".
	tests := []struct {
		path []string
		want any
	}{
		{[]string{"ociVersionMin"}, "1.0.0"},
		{[]string{"ociVersionMax"}, specs.Version},
		{[]string{"hooks"}, []any{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}},
		{[]string{"potentiallyUnsafeConfigAnnotations"}, []any{}},
		{[]string{"mountOptions"}, nil},
		{[]string{"linux", "namespaces"}, []any{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}},
		{[]string{"linux", "capabilities"}, nil},
		{[]string{"linux", "cgroup", "v1"}, true},
		{[]string{"linux", "cgroup", "v2"}, true},
		{[]string{"linux", "cgroup", "systemd"}, false},
		{[]string{"linux", "cgroup", "systemdUser"}, false},
		{[]string{"linux", "seccomp", "enabled"}, false},
		{[]string{"linux", "apparmor", "enabled"}, false},
		{[]string{"linux", "selinux", "enabled"}, false},
		{[]string{"linux", "intelRdt", "enabled"}, false},
		{[]string{"linux", "mountExtensions", "idmap", "enabled"}, true},
		{[]string{"annotations", AnnotationVersion}, Version},
		{[]string{"annotations", AnnotationUnsupported}, ""},
	}
	for _, tc := range tests {
		var cur any = doc
		for _, k := range tc.path {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			if cur, ok = m[k]; !ok {
				cur = nil
				break
			}
		}
		if cur == nil {
			t.Errorf("%v: missing from features JSON:\n%s", tc.path, data)
			continue
		}
		if tc.want != nil && !reflect.DeepEqual(cur, tc.want) {
			t.Errorf("%v = %#v, want %#v", tc.path, cur, tc.want)
		}
	}
}

func TestFeaturesCapabilitiesAndMountOptions(t *testing.T) {
	f := Features()
	if !slices.Equal(f.Linux.Capabilities, KnownCapabilities()) {
		t.Errorf("capabilities = %v, want KnownCapabilities()", f.Linux.Capabilities)
	}
	want := []string{
		"bind", "rbind", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
		"sync", "async", "dirsync", "remount", "mand", "nomand", "atime", "noatime",
		"diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime",
		"lazytime", "nolazytime", "silent", "loud", "shared", "rshared", "slave", "rslave",
		"private", "rprivate", "unbindable", "runbindable", "rro", "rrw", "rnosuid", "rsuid",
		"rnodev", "rdev", "rnoexec", "rexec", "rnoatime", "ratime", "rrelatime", "rnorelatime",
		"rstrictatime", "rnostrictatime", "rnodiratime", "rdiratime", "tmpcopyup", "idmap", "ridmap",
		"nosymfollow", "rnosymfollow", "symfollow", "rsymfollow",
	}
	sort.Strings(want)
	if !slices.Equal(f.MountOptions, want) {
		t.Errorf("mountOptions = %v\nwant %v", f.MountOptions, want)
	}
	// The result is the caller's to modify.
	f.MountOptions[0] = "mutated"
	if MountOptions[0] == "mutated" {
		t.Error("Features shares the MountOptions backing array")
	}
}

func TestFeaturesFollowsBuildVars(t *testing.T) {
	oldV1, oldV2, oldVersion, oldUnsupported := CgroupV1Supported, CgroupV2Supported, Version, Unsupported
	t.Cleanup(func() {
		CgroupV1Supported, CgroupV2Supported, Version, Unsupported = oldV1, oldV2, oldVersion, oldUnsupported
	})

	CgroupV1Supported = false
	CgroupV2Supported = true
	Version = "9.9.9"
	Unsupported = "hooks"
	f := Features()
	if f.Linux.Cgroup.V2 == nil || !*f.Linux.Cgroup.V2 {
		t.Error("cgroup.v2 does not follow CgroupV2Supported")
	}
	if f.Linux.Cgroup.V1 == nil || *f.Linux.Cgroup.V1 {
		t.Error("cgroup.v1 changed with CgroupV2Supported")
	}
	if got := f.Annotations[AnnotationVersion]; got != "9.9.9" {
		t.Errorf("version annotation = %q, want 9.9.9", got)
	}
	if got := f.Annotations[AnnotationUnsupported]; got != "hooks" {
		t.Errorf("unsupported annotation = %q, want hooks", got)
	}
}
