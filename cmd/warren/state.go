package main

import (
	"encoding/json"
	"os"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/runtime"
)

var stateCommand = cli.Command{
	Name:  "state",
	Usage: "output the state of a container",
	ArgsUsage: `<container-id>

Where "<container-id>" is your name for the instance of the container.`,
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, 1)
		if err != nil {
			return err
		}
		st, err := runtime.ReadState(rootDir(c), id)
		if err != nil {
			return err
		}
		return printJSON(runtime.Public(st), true)
	},
}

func printJSON(v any, indent bool) error {
	enc := json.NewEncoder(os.Stdout)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}
