package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
)

var psCommand = cli.Command{
	Name:      "ps",
	Usage:     "ps displays the processes running inside a container",
	ArgsUsage: `<container-id> [ps options]`,
	Flags: []cli.Flag{
		cli.StringFlag{Name: "format, f", Value: "table", Usage: "select one of: table or json"},
	},
	SkipArgReorder: true,
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, -1)
		if err != nil {
			return err
		}
		ctr, err := runtime.Load(rootDir(c), id)
		if err != nil {
			return err
		}
		pids, err := ctr.Pids()
		ctr.Close()
		if err != nil {
			return err
		}
		switch c.String("format") {
		case "json":
			if pids == nil {
				pids = []int{}
			}
			return printJSON(pids, false)
		case "table":
		default:
			return fmt.Errorf("ps: invalid --format %q (want table or json): %w", c.String("format"), errdefs.ErrInvalid)
		}
		psArgs := []string{"-ef"}
		if c.NArg() > 1 {
			psArgs = c.Args()[1:]
		}
		out, err := exec.Command("ps", psArgs...).Output()
		if err != nil {
			return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		col := -1
		for i, h := range strings.Fields(lines[0]) {
			if h == "PID" {
				col = i
			}
		}
		if col < 0 {
			return fmt.Errorf("ps %s: output has no PID column", strings.Join(psArgs, " "))
		}
		in := map[int]bool{}
		for _, p := range pids {
			in[p] = true
		}
		var b bytes.Buffer
		b.WriteString(lines[0] + "\n")
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) <= col {
				continue
			}
			if p, err := strconv.Atoi(f[col]); err == nil && in[p] {
				b.WriteString(l + "\n")
			}
		}
		_, err = os.Stdout.Write(b.Bytes())
		return err
	},
}
