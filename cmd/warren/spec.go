package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/spec"
)

var specCommand = cli.Command{
	Name:  "spec",
	Usage: "create a new specification file",
	Description: `The spec command creates the new specification file named "config.json" for
the bundle, with runc's defaults except the hostname ("warren") and an
always-present cgroup namespace. The default has "terminal": true, which this
version rejects: set it to false (and set the process args) before running.

EXAMPLE:
  mkdir rootfs && tar -C rootfs -xf busybox.tar
  warren spec
  sed -i 's/"terminal": true/"terminal": false/' config.json
  warren run mycontainer`,
	Flags: []cli.Flag{
		cli.StringFlag{Name: "bundle, b", Value: "", Usage: "path to the root of the bundle directory"},
		cli.BoolFlag{Name: "rootless", Usage: "generate a configuration for a rootless container"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 0 {
			return fmt.Errorf("spec: %w: \"spec\" takes no arguments", errdefs.ErrInvalid)
		}
		s := spec.Default()
		if c.Bool("rootless") {
			spec.Rootless(s, uint32(os.Geteuid()), uint32(os.Getegid()))
		}
		dir := c.String("bundle")
		if dir == "" {
			dir = "."
		}
		path := filepath.Join(dir, spec.ConfigName)
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("file %s exists. Remove it first: %w", path, errdefs.ErrExists)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		b, err := json.MarshalIndent(s, "", "\t")
		if err != nil {
			return err
		}
		return os.WriteFile(path, b, 0o666)
	},
}
