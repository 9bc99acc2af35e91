package pods

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func root(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("pinning namespaces and making cgroups needs root")
	}
}

func TestPinUnpin(t *testing.T) {
	root(t)
	dir := filepath.Join(t.TempDir(), "pod")
	if err := Pin(dir, "podhost"); err != nil {
		t.Fatal(err)
	}
	if !Pinned(dir) {
		t.Fatal("not pinned")
	}
	// Two processes entering the pinned namespaces share them: the host
	// name set at pinning, and one IPC namespace.
	var inodes []string
	for i := 0; i < 2; i++ {
		out, err := exec.Command("nsenter", "--uts="+filepath.Join(dir, UTS), "--ipc="+filepath.Join(dir, IPC),
			"sh", "-c", "hostname; readlink /proc/self/ns/ipc").CombinedOutput()
		if err != nil {
			t.Fatalf("nsenter: %v: %s", err, out)
		}
		f := strings.Fields(string(out))
		if len(f) != 2 || f[0] != "podhost" {
			t.Fatalf("in the pod: %q", out)
		}
		inodes = append(inodes, f[1])
	}
	self, _ := os.Readlink("/proc/self/ns/ipc")
	if inodes[0] != inodes[1] || inodes[0] == self {
		t.Errorf("ipc namespaces %v (ours %s)", inodes, self)
	}
	if h, _ := os.Hostname(); h == "podhost" {
		t.Error("the pinning changed the test's own host name")
	}
	if err := Unpin(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left: %v", dir, err)
	}
	if err := Unpin(dir); err != nil {
		t.Errorf("second Unpin: %v", err)
	}
}

func TestPodCgroup(t *testing.T) {
	root(t)
	path := "/warren-test/pod-" + filepath.Base(t.TempDir())
	if err := SetupCgroup(path, Limits{Memory: 64 << 20, PidsLimit: 50, NanoCPUs: 1_500_000_000}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		RemoveCgroup(path)
		RemoveCgroup("/warren-test")
	}()
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if unified() {
		d := filepath.Join(cgroupRoot, path)
		if m := read(d + "/memory.max"); m != "67108864" {
			t.Errorf("memory.max %s", m)
		}
		if c := read(d + "/cpu.max"); c != "150000 100000" {
			t.Errorf("cpu.max %s", c)
		}
	} else {
		if m := read(filepath.Join(cgroupRoot, "memory", path, "memory.limit_in_bytes")); m != "67108864" {
			t.Errorf("memory limit %s", m)
		}
		if q := read(filepath.Join(cgroupRoot, "cpu", path, "cpu.cfs_quota_us")); q != "150000" {
			t.Errorf("cpu quota %s", q)
		}
		if p := read(filepath.Join(cgroupRoot, "pids", path, "pids.max")); p != "50" {
			t.Errorf("pids.max %s", p)
		}
	}
	if err := RemoveCgroup(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "pids", path)); err == nil {
		t.Error("cgroup left")
	}
}
