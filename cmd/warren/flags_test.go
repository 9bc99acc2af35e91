package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli"
)

// The C constructor finds the verb before the Go runtime starts, skipping
// the global flags and the values of those that take one; its list of
// those (forwards_signals in nsexec.c) must follow the CLI's, or a
// foreground run or exec would not block the signals it forwards.
func TestConstructorKnowsValueFlags(t *testing.T) {
	src, err := os.ReadFile("../../internal/runtime/nsexec/nsexec.c")
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	i := strings.Index(body, "static int forwards_signals(")
	if i < 0 {
		t.Fatal("forwards_signals not found in nsexec.c")
	}
	body = body[i:]
	body = body[:strings.Index(body, "\n}\n")]
	var inC []string
	for _, m := range regexp.MustCompile(`strcmp\(a, "([^"]+)"\)`).FindAllStringSubmatch(body, -1) {
		if m[1] != "run" && m[1] != "exec" && m[1] != "--" {
			inC = append(inC, m[1])
		}
	}
	var want []string
	for _, f := range newApp().Flags {
		if _, isBool := f.(cli.BoolFlag); isBool {
			continue
		}
		for _, name := range strings.Split(f.GetName(), ",") {
			want = append(want, strings.TrimSpace(name))
		}
	}
	slices.Sort(inC)
	slices.Sort(want)
	if !slices.Equal(inC, want) {
		t.Errorf("nsexec.c skips the values of %v, the CLI's global flags with values are %v", inC, want)
	}
}
