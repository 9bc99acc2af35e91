// Command warren-monitor is the per-container monitor warrend starts (one
// process per container, like podman's conmon): it creates the container
// through an OCI runtime, owns its stdio and log, and reports its exit.
// It is not run by hand; see internal/monitor for the protocol.
//
// `warren-monitor --hold` only waits for its stdin to close: the engine
// clones it into a new user namespace to get a namespace fd with a
// container's id maps (for id-mapped image layers), then lets it go.
package main

import (
	"io"
	"os"

	"github.com/warren-runtime/warren/internal/monitor"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--hold" {
		io.Copy(io.Discard, os.Stdin)
		return
	}
	os.Exit(monitor.Main())
}
