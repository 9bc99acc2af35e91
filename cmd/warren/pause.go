package main

import (
	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/runtime"
)

var pauseCommand = cli.Command{
	Name:  "pause",
	Usage: "pause suspends all processes inside the container",
	ArgsUsage: `<container-id>

Where "<container-id>" is the name for the instance of the container to be
paused. Every process of the container is frozen with the cgroup freezer
(v1 freezer.state, v2 cgroup.freeze).`,
	Action: func(c *cli.Context) error {
		return withContainer(c, (*runtime.Container).Pause)
	},
}

var resumeCommand = cli.Command{
	Name:  "resume",
	Usage: "resumes all processes that have been previously paused",
	ArgsUsage: `<container-id>

Where "<container-id>" is the name for the instance of the container to be
resumed.`,
	Action: func(c *cli.Context) error {
		return withContainer(c, (*runtime.Container).Resume)
	},
}

// withContainer loads the one container named by the arguments, locked,
// and runs op on it.
func withContainer(c *cli.Context, op func(*runtime.Container) error) error {
	id, err := requireID(c, 1, 1)
	if err != nil {
		return err
	}
	ctr, err := runtime.Load(rootDir(c), id)
	if err != nil {
		return err
	}
	defer ctr.Close()
	return op(ctr)
}
