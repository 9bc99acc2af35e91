package main

import (
	"errors"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
)

var deleteCommand = cli.Command{
	Name:  "delete",
	Usage: "delete any resources held by the container often used with detached container",
	ArgsUsage: `<container-id>

Where "<container-id>" is the name for the instance of the container.

EXAMPLE:
For example, if the container id is "ubuntu01" and warren list currently shows the
status of "ubuntu01" as "stopped" the following will delete resources held for
"ubuntu01" removing "ubuntu01" from the warren list of containers:

       # warren delete ubuntu01`,
	Flags: []cli.Flag{
		cli.BoolFlag{Name: "force, f", Usage: "Forcibly deletes the container if it is still running (uses SIGKILL)"},
	},
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, 1)
		if err != nil {
			return err
		}
		force := c.Bool("force")
		ctr, err := runtime.Load(rootDir(c), id)
		if err != nil {
			if force && (isNotExist(err) || errors.Is(err, errdefs.ErrCorrupt)) {
				// A directory without a readable state file: remove
				// it, with whatever processes and cgroups the file
				// still names.
				return runtime.ForceDeleteMissing(rootDir(c), id)
			}
			return err
		}
		defer ctr.Close()
		return ctr.Delete(force)
	},
}
