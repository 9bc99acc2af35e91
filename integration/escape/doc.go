// Package escape is warren's container-escape regression suite: one root-only
// test per known class of runtime escape (runc, crun and youki CVEs), each
// written so that it fails against a runtime with the bug. docs/escapes.md
// maps every class to warren's defence and to the test that guards it.
//
// Every victim is a file or directory under the test's temporary directory:
// no test writes a real host file, changes a host mount outside its
// temporary directories, or touches host networking, cgroups or sysctls.
// Probes inside the container only open protected files for writing and
// close them again; they never write to them.
//
// Run as root, against a built warren:
//
//	make warren
//	WARREN_BINARY=$PWD/bin/warren go test -count=1 -v ./integration/escape/
//
// Without $WARREN_BINARY the binary is built from this tree. When not run as
// root the package prints a skip message and exits 0.
package escape
