package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// FuzzParseInt: a size with a unit suffix is never negative, and plain
// integers parse as themselves.
func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"1024", "-1", "512m", "1.5g", "2tb", "1e30k", "infk", "nanm", "k", "-1k", "9223372036854775807"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, units bool) {
		v, err := parseInt(s, units)
		if err != nil {
			return
		}
		if units && v < 0 && !strings.HasPrefix(strings.TrimSpace(s), "-") {
			t.Fatalf("%q parsed as %d", s, v)
		}
	})
}

// FuzzCLI runs the command line with arbitrary arguments after a command
// that cannot create anything, against an empty state root: no argument
// list may panic warren. (create, run, spec, exec, events and enter are
// left out: they make containers, write files or wait.)
func FuzzCLI(f *testing.F) {
	for _, s := range []string{
		"state\x00x", "list\x00--format\x00json", "list\x00-f\x00yaml", "kill\x00x\x00SIGRTMIN+40",
		"kill\x00--all\x00x\x009", "delete\x00--force\x00../../etc", "delete\x00-f\x00#new-1",
		"pause\x00x", "resume\x00", "ps\x00--format\x00json\x00x", "update\x00--memory\x001e30k\x00x",
		"update\x00-r\x00-\x00x", "features\x00extra", "start\x00", "state\x00--help",
	} {
		f.Add(s)
	}
	safe := map[string]bool{"state": true, "list": true, "kill": true, "delete": true, "pause": true,
		"resume": true, "ps": true, "update": true, "features": true, "start": true}
	root := f.TempDir()
	stdin, stdout, stderr := os.Stdin, os.Stdout, os.Stderr
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { null.Close() })
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		if !safe[args[0]] {
			return
		}
		for _, a := range args[1:] {
			// update -r reads a file: only stdin or a missing one.
			if strings.HasPrefix(a, "/") && a != "/nonexistent" {
				return
			}
		}
		os.Stdin, os.Stdout, os.Stderr = null, null, null
		defer func() { os.Stdin, os.Stdout, os.Stderr = stdin, stdout, stderr }()
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		_ = app.Run(append([]string{"warren", "--root", root}, args...))
	})
}
