package main

import (
	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/runtime"
)

var startCommand = cli.Command{
	Name:  "start",
	Usage: "executes the user defined process in a created container",
	ArgsUsage: `<container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting.`,
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, 1)
		if err != nil {
			return err
		}
		ctr, err := runtime.Load(rootDir(c), id)
		if err != nil {
			return err
		}
		defer ctr.Close()
		return ctr.Start()
	},
}
