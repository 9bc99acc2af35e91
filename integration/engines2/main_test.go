//go:build linux

package engines2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const (
	busyboxPath = "/bin/busybox"
	// imageRepo is the name both engines know the test image by.
	imageRepo = "warren-busybox"
	imageTag  = "test"
	// A hang guard for one engine command, not a timing assertion.
	cmdTimeout = 90 * time.Second
)

var (
	warrenBin   string // absolute path of the warren binary under test
	wrapperSrc  string // scripts/engines2/warren-wrapper.sh
	imageTar    string // docker-archive of the busybox image
	baseDir     string // private temporary directory of this run
	required    bool   // WARREN_ENGINES_REQUIRED: a missing tool fails instead of skipping
	keepTempDir bool   // WARREN_ENGINES_KEEP: leave baseDir behind
)

func TestMain(m *testing.M) {
	required = os.Getenv("WARREN_ENGINES_REQUIRED") != ""
	keepTempDir = os.Getenv("WARREN_ENGINES_KEEP") != ""
	if os.Geteuid() != 0 {
		if required {
			fmt.Fprintln(os.Stderr, "engines2: WARREN_ENGINES_REQUIRED is set but the tests are not running as root")
			os.Exit(1)
		}
		fmt.Println("SKIP: engines2 tests must run as root (podman and dockerd run real containers through warren); skipping all")
		os.Exit(0)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "engines2: "+format+"\n", a...)
		return 1
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		if !required {
			fmt.Printf("SKIP: engines2 tests need %s (apt-get install busybox-static): %v\n", busyboxPath, err)
			return 0
		}
		return fail("%s is required (scripts/engines2/install.sh installs busybox-static): %v", busyboxPath, err)
	}
	_, thisFile, _, _ := runtime.Caller(0)
	repoRoot := filepath.Join(filepath.Dir(thisFile), "..", "..")
	wrapperSrc = filepath.Join(repoRoot, "scripts", "engines2", "warren-wrapper.sh")
	if _, err := os.Stat(wrapperSrc); err != nil {
		return fail("the runtime wrapper script is missing: %v", err)
	}

	// Short: conmon and containerd put unix sockets under it (108-byte limit).
	var err error
	if baseDir, err = os.MkdirTemp("", "we2-"); err != nil {
		return fail("%v", err)
	}
	if !keepTempDir {
		defer os.RemoveAll(baseDir)
	} else {
		defer fmt.Println("engines2: kept", baseDir)
	}
	// The engines walk into the image's files and the wrapper's directory as
	// other users never; root only, but make the path traversable anyway.
	if err := os.Chmod(baseDir, 0o755); err != nil {
		return fail("%v", err)
	}

	if p := os.Getenv("WARREN_BINARY"); p != "" {
		if warrenBin, err = filepath.Abs(p); err == nil {
			_, err = os.Stat(warrenBin)
		}
		if err != nil {
			return fail("WARREN_BINARY=%s: %v", p, err)
		}
	} else {
		warrenBin = filepath.Join(baseDir, "warren-built")
		cmd := exec.Command("go", "build", "-o", warrenBin, "github.com/warren-runtime/warren/cmd/warren")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fail("building warren (set WARREN_BINARY to skip this): %v\n%s", err, out)
		}
	}

	imageTar = filepath.Join(baseDir, "busybox-image.tar")
	if err := writeBusyboxArchive(imageTar, busyboxPath, imageRepo+":"+imageTag); err != nil {
		return fail("building the busybox image: %v", err)
	}
	return m.Run()
}

// needTools skips (or, with WARREN_ENGINES_REQUIRED, fails) the test when a
// program it needs is not installed, and returns their absolute paths.
func needTools(t *testing.T, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	var missing []string
	for _, n := range names {
		p, err := lookTool(n)
		if err != nil {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s not installed (run scripts/engines2/install.sh)", strings.Join(missing, ", "))
		if required {
			t.Fatalf("WARREN_ENGINES_REQUIRED is set: %s", msg)
		}
		t.Skip("SKIP: " + msg)
	}
	return paths
}

// lookTool prefers the Debian packages' binaries: a docker CLI elsewhere on
// PATH (for example a newer static one in /usr/local/bin) may not match the
// packaged dockerd.
func lookTool(name string) (string, error) {
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/usr/libexec/podman"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

// ---------------------------------------------------------------------------
// running commands

type result struct {
	cmdline        string
	stdout, stderr string
	code           int // exit status; -1 when killed by a signal or not started
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("%s\nexit status %d (err %v)\nstdout:\n%s\nstderr:\n%s", r.cmdline, r.code, r.err, r.stdout, r.stderr)
}

// runCmd runs a command with extra environment and a hang guard, and never
// fails the test itself.
func runCmd(env []string, stdin io.Reader, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	// A daemon's child that inherited our pipes must not keep Wait hanging.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{cmdline: name + " " + strings.Join(args, " "), stdout: so.String(), stderr: se.String(), code: -1, err: err}
	var ee *exec.ExitError
	if err == nil {
		r.code = 0
	} else if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v: %w", cmdTimeout, err)
	}
	return r
}

// pollUntil calls f every 100 ms until it returns true or the deadline passes.
func pollUntil(d time.Duration, f func() bool) bool {
	end := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
