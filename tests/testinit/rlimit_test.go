//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const nofileChildEnv = "TESTINIT_NOFILE_CHILD"

// The child half of TestReportNofileIsStartupValue: prints what the report
// says about RLIMIT_NOFILE and what the limit is now.
func TestNofileChild(t *testing.T) {
	if os.Getenv(nofileChildEnv) != "1" {
		t.Skip("helper process only")
	}
	r := collectReport()
	var now unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &now); err != nil {
		t.Fatal(err)
	}
	lim := r.Rlimits["RLIMIT_NOFILE"]
	fmt.Printf("NOFILE %d %d %d\n", lim.Soft, lim.Hard, now.Cur)
}

// Package syscall raises the soft RLIMIT_NOFILE during init; the report
// must show the value the process was started with.
func TestReportNofileIsStartupValue(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Max < 300 {
		t.Skipf("hard RLIMIT_NOFILE %d too small", orig.Max)
	}
	// unix.Setrlimit goes through syscall.Setrlimit, which also stops
	// os/exec from "restoring" the old soft limit in the child.
	low := unix.Rlimit{Cur: 200, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &orig)

	cmd := exec.Command(os.Args[0], "-test.run=^TestNofileChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), nofileChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	// Restore before anything else so the rest of the tests are unaffected.
	unix.Setrlimit(unix.RLIMIT_NOFILE, &orig)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var soft, hard, now uint64
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "NOFILE %d %d %d", &soft, &hard, &now); err == nil {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("no NOFILE line in child output:\n%s", out)
	}
	if soft != 200 || hard != orig.Max {
		t.Errorf("report RLIMIT_NOFILE = {%d %d}, want {200 %d} (current soft in child: %d)", soft, hard, orig.Max, now)
	}
	if now == 200 {
		t.Logf("runtime did not raise the soft limit; test is not exercising the early snapshot")
	}
}
