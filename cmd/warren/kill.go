package main

import (
	"fmt"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/linux"
	"github.com/warren-runtime/warren/internal/runtime"
)

var killCommand = cli.Command{
	Name:  "kill",
	Usage: "kill sends the specified signal (default: SIGTERM) to the container's init process",
	ArgsUsage: `<container-id> [signal]

Where "<container-id>" is the name for the instance of the container and
"[signal]" is the signal to be sent to the init process (a name such as KILL
or SIGKILL, or a number).

EXAMPLE:
For example, if the container id is "ubuntu01" the following will send a "KILL"
signal to the init process of the "ubuntu01" container:

       # warren kill ubuntu01 KILL`,
	Flags: []cli.Flag{
		cli.BoolFlag{Name: "all, a", Usage: "send the specified signal to all processes inside the container"},
	},
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, 2)
		if err != nil {
			return err
		}
		sigStr := "SIGTERM"
		if c.NArg() == 2 {
			sigStr = c.Args().Get(1)
		}
		sig, err := linux.ParseSignal(sigStr)
		if err != nil {
			return fmt.Errorf("kill: %w: %w", err, errdefs.ErrInvalid)
		}
		ctr, err := runtime.Load(rootDir(c), id)
		if err != nil {
			return err
		}
		defer ctr.Close()
		return ctr.Kill(sig, c.Bool("all"))
	},
}
