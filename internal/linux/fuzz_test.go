package linux

import (
	"bufio"
	"strings"
	"testing"
)

// FuzzParseMountOptions: any option list parses without panicking, and
// options that are not mount flags reach the filesystem data unchanged.
func FuzzParseMountOptions(f *testing.F) {
	for _, s := range []string{
		"rbind,ro,nosuid", "mode=755,size=65536k", "bind,rprivate,idmap", "ridmap,rro,rnoexec",
		"tmpcopyup,strictatime", "", ",,", "shared,slave,private,unbindable,rshared",
		"context=\"system_u:object_r:x\",ro",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		opts := strings.Split(s, ",")
		o := ParseMountOptions(opts)
		for _, d := range o.Data {
			found := false
			for _, in := range opts {
				if in == d {
					found = true
				}
			}
			if !found {
				t.Fatalf("data option %q is not one of the input options %q", d, opts)
			}
		}
		for _, in := range opts {
			PropagationFlags(in)
		}
	})
}

// FuzzParseSubIDs: /etc/subuid content never panics the parser, and every
// range it returns is non-empty and within 32 bits.
func FuzzParseSubIDs(f *testing.F) {
	f.Add("alice:100000:65536\n1000:200000:10\n", "alice", "1000")
	f.Add("# comment\n\nbob:1:2:3\nalice:x:1\n", "alice", "1000")
	f.Add("alice:4294967295:1\n", "alice", "")
	f.Fuzz(func(t *testing.T, content, name, id string) {
		rs, err := parseSubIDs(bufio.NewScanner(strings.NewReader(content)), "/etc/subuid", name, id)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.Count == 0 || r.Start > 1<<32-1 || r.Count > 1<<32-1 {
				t.Fatalf("bad range %+v from %q", r, content)
			}
		}
	})
}

// FuzzParseSignal: a parsed signal is a real one (1..64).
func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"KILL", "SIGTERM", "9", "sigrtmin+3", "RTMAX-1", "0", "65", "-1", "SIGRTMIN+99", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignal(s)
		if err == nil && (sig < 1 || sig > 64) {
			t.Fatalf("%q parsed as %d", s, sig)
		}
	})
}
