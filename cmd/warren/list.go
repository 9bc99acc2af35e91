package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
)

var listCommand = cli.Command{
	Name:  "list",
	Usage: "lists containers started by warren with the given root",
	ArgsUsage: `

Where the given root is specified via the global option "--root"
(default: "/run/warren").

EXAMPLE 1:
To list containers created via the default "--root":
       # warren list

EXAMPLE 2:
To list containers created using a non-default value for "--root":
       # warren --root value list`,
	Flags: []cli.Flag{
		cli.StringFlag{Name: "format, f", Value: "table", Usage: "select one of: table or json"},
		cli.BoolFlag{Name: "quiet, q", Usage: "display only container IDs"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 0 {
			return fmt.Errorf("list: %w: \"list\" takes no arguments", errdefs.ErrInvalid)
		}
		states, err := runtime.List(rootDir(c))
		if err != nil {
			return err
		}
		if c.Bool("quiet") {
			for _, s := range states {
				fmt.Println(s.ID)
			}
			return nil
		}
		switch c.String("format") {
		case "table":
			w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
			fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
			for _, s := range states {
				pid := s.Pid
				if s.Status == runtime.Stopped {
					pid = 0
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
			}
			return w.Flush()
		case "json":
			out := make([]runtime.PublicState, 0, len(states))
			for i := range states {
				out = append(out, runtime.Public(&states[i]))
			}
			return printJSON(out, false)
		default:
			return fmt.Errorf("list: invalid --format %q (want table or json): %w", c.String("format"), errdefs.ErrInvalid)
		}
	},
}
