//go:build linux

package engines2

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runtimeWrapper is the warren an engine is given: the wrapper script in
// front of the binary under test, in a directory of its own where the
// script writes calls.log and logs/.
type runtimeWrapper struct {
	dir  string
	path string // what the engine is told the runtime is
}

func newRuntimeWrapper(t *testing.T, dir string) *runtimeWrapper {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(wrapperSrc)
	if err != nil {
		t.Fatal(err)
	}
	w := &runtimeWrapper{dir: dir, path: filepath.Join(dir, "warren")}
	if err := os.WriteFile(w.path, script, 0o755); err != nil {
		t.Fatal(err)
	}
	// A symlink, not a copy: a `make warren` during a long debugging session
	// is picked up by the next call.
	if err := os.Symlink(warrenBin, filepath.Join(dir, "warren.real")); err != nil {
		t.Fatal(err)
	}
	return w
}

// mark returns a position in calls.log; callsSince reads from there.
func (w *runtimeWrapper) mark() int64 {
	st, err := os.Stat(filepath.Join(w.dir, "calls.log"))
	if err != nil {
		return 0
	}
	return st.Size()
}

type runtimeCall struct {
	argv string // the logged line: time, pid, ppid, [cwd], then the shell-quoted arguments
	env  string // NAME=value ... as the runtime got it
}

func (w *runtimeWrapper) callsSince(off int64) []runtimeCall {
	f, err := os.Open(filepath.Join(w.dir, "calls.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return nil
	}
	var calls []runtimeCall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if env, ok := strings.CutPrefix(line, "\tenv: "); ok {
			if len(calls) > 0 {
				calls[len(calls)-1].env = env
			}
			continue
		}
		calls = append(calls, runtimeCall{argv: line})
	}
	return calls
}

// verbs returns the warren verb of each call since off (the first argument
// that is neither a global flag nor a flag's value).
func (w *runtimeWrapper) verbs(off int64) []string {
	var vs []string
	for _, c := range w.callsSince(off) {
		vs = append(vs, callVerb(c.argv))
	}
	return vs
}

func callVerb(line string) string {
	// line: <time> <pid> ppid=<n> [<cwd>] '<arg1>' '<arg2>' ...
	_, rest, ok := strings.Cut(line, "] '")
	if !ok {
		return ""
	}
	args := strings.Split(rest, "' '")
	if len(args) > 0 {
		args[len(args)-1] = strings.TrimSuffix(args[len(args)-1], "'")
	}
	takesValue := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if takesValue[a] {
			i++
			continue
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		return a
	}
	return ""
}

// dumpOnFailure makes a failed test print every warren call since the
// mark, with its environment, and the content of every file warren was
// asked to --log into: the evidence of what the engine asked and what
// warren answered.
func (w *runtimeWrapper) dumpOnFailure(t *testing.T) {
	t.Helper()
	off := w.mark()
	since := time.Now().UnixNano()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		calls := w.callsSince(off)
		fmt.Fprintf(&b, "warren calls made by the engine during this test (%d; the environment shown once per verb):\n", len(calls))
		envShown := map[string]bool{}
		for _, c := range calls {
			fmt.Fprintf(&b, "  %s\n", c.argv)
			if v := callVerb(c.argv); !envShown[v] {
				envShown[v] = true
				fmt.Fprintf(&b, "      env: %s\n", c.env)
			}
		}
		logs, _ := filepath.Glob(filepath.Join(w.dir, "logs", "*.log"))
		sort.Strings(logs)
		for _, l := range logs {
			// logs/<unix ns>-<pid>-<verb>.log
			stamp, _, _ := strings.Cut(filepath.Base(l), "-")
			if n, err := strconv.ParseInt(stamp, 10, 64); err == nil && n < since {
				continue
			}
			data, err := os.ReadFile(l)
			if err != nil || len(strings.TrimSpace(string(data))) == 0 {
				continue
			}
			fmt.Fprintf(&b, "warren --log %s:\n%s", filepath.Base(l), indent(string(data)))
		}
		// The bundles are gone by now; their copies tell what the engine
		// asked for. Print what warren refuses outright.
		configs, _ := filepath.Glob(filepath.Join(w.dir, "logs", "*.config.json"))
		sort.Strings(configs)
		for _, c := range configs {
			stamp, _, _ := strings.Cut(filepath.Base(c), "-")
			if n, err := strconv.ParseInt(stamp, 10, 64); err == nil && n < since {
				continue
			}
			if s := configHighlights(c); s != "" {
				fmt.Fprintf(&b, "%s (copy of the bundle's config.json):\n%s", filepath.Base(c), indent(s))
			}
		}
		t.Log(b.String())
	})
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// configHighlights returns the parts of a config.json that warren may
// refuse (hooks, seccomp, LSM labels, a terminal) as compact JSON lines.
func configHighlights(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "unparsable: " + err.Error()
	}
	var b strings.Builder
	if h, ok := cfg["hooks"]; ok && string(h) != "null" && string(h) != "{}" {
		fmt.Fprintf(&b, "hooks: %s\n", h)
	}
	var linux map[string]json.RawMessage
	if json.Unmarshal(cfg["linux"], &linux) == nil {
		if s, ok := linux["seccomp"]; ok && string(s) != "null" {
			fmt.Fprintf(&b, "linux.seccomp: present (%d bytes)\n", len(s))
		}
	}
	var proc map[string]json.RawMessage
	if json.Unmarshal(cfg["process"], &proc) == nil {
		for _, k := range []string{"terminal", "apparmorProfile", "selinuxLabel", "rlimits", "consoleSize"} {
			if v, ok := proc[k]; ok {
				fmt.Fprintf(&b, "process.%s: %s\n", k, v)
			}
		}
	}
	return b.String()
}
