package images

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func testRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nweb:x:33:33::/srv:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app,web\naudio:x:29:app\n"), 0o644)
	return root
}

func TestResolveUser(t *testing.T) {
	root := testRootfs(t)
	for _, tc := range []struct {
		user string
		want specs.User
		err  string
	}{
		{"", specs.User{}, ""},
		{"app", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{50, 29}}, ""},
		{"1000", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{50, 29}}, ""},
		{"4242", specs.User{UID: 4242}, ""},
		{"4242:7", specs.User{UID: 4242, GID: 7}, ""},
		{"app:staff", specs.User{UID: 1000, GID: 50}, ""},
		{"web:0", specs.User{UID: 33, GID: 0}, ""},
		{"nobody", specs.User{}, `"nobody": no such user`},
		{"app:nogroup", specs.User{}, `"app:nogroup": no such group`},
	} {
		got, err := ResolveUser(root, tc.user)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ResolveUser(%q): %v, want an error with %q", tc.user, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ResolveUser(%q) = %+v, %v; want %+v", tc.user, got, err, tc.want)
		}
	}
	// An absolute symlink in the image resolves inside the image.
	evil := t.TempDir()
	os.MkdirAll(filepath.Join(evil, "etc"), 0o755)
	os.Symlink("/etc/shadow-of-host-not-here", filepath.Join(evil, "etc/passwd"))
	if _, err := ResolveUser(evil, "root"); err == nil || !strings.Contains(err.Error(), "no readable /etc/passwd") {
		t.Errorf("user lookup through a dangling absolute symlink: %v", err)
	}
}

func TestSpecFromImageConfig(t *testing.T) {
	root := testRootfs(t)
	cfg := &v1.ConfigFile{Config: v1.Config{
		Entrypoint: []string{"/bin/server"}, Cmd: []string{"--port", "80"}, Env: []string{"A=1"},
		WorkingDir: "/srv", User: "web", StopSignal: "SIGQUIT",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}}, Volumes: map[string]struct{}{"/data": {}},
		Labels: map[string]string{"org.example": "x"},
	}}
	s, err := Spec(cfg, root)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if strings.Join(p.Args, " ") != "/bin/server --port 80" || p.Cwd != "/srv" || p.User.UID != 33 || p.User.GID != 33 {
		t.Errorf("process %+v", p)
	}
	if len(p.Env) != 2 || !strings.HasPrefix(p.Env[0], "PATH=") || p.Env[1] != "A=1" {
		t.Errorf("env %v: want a default PATH, then the image's", p.Env)
	}
	a := s.Annotations
	if a[AnnotationStopSignal] != "SIGQUIT" || a[AnnotationExposedPorts] != "53/udp,80/tcp" || a[AnnotationVolumes] != "/data" || a["org.example"] != "x" {
		t.Errorf("annotations %v", a)
	}
	if s.Root.Path != root {
		t.Errorf("root %q", s.Root.Path)
	}
	if _, err := Spec(&v1.ConfigFile{}, root); err == nil || !strings.Contains(err.Error(), "Entrypoint") {
		t.Errorf("an image without a command: %v", err)
	}
}
