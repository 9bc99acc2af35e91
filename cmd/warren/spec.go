package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/linux"
	"github.com/warren-runtime/warren/internal/spec"
)

var specCommand = cli.Command{
	Name:  "spec",
	Usage: "create a new specification file",
	Description: `The spec command creates the new specification file named "config.json" for
the bundle, with runc's defaults except the hostname ("warren") and an
always-present cgroup namespace. The default runs "sh" with "terminal": true:
"warren run" from a terminal gives a shell. Set it to false (and set the
process args) to run without one.

With --rootless the configuration suits an unprivileged user: a new user
namespace mapping root to the caller and, with /etc/subuid and /etc/subgid
entries, ids 1 and up to the caller's subordinate ids; no resources.

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
			uids, gids, err := rootlessMappings()
			if err != nil {
				return err
			}
			spec.Rootless(s, uids, gids)
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

// rootlessMappings maps root in the container to the caller and, when
// /etc/subuid and /etc/subgid grant the caller ranges, ids 1 and up to them
// (written by newuidmap/newgidmap at create).
func rootlessMappings() (uids, gids []specs.LinuxIDMapping, err error) {
	uid, gid := os.Geteuid(), os.Getegid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	sub := func(file string) ([][2]uint32, error) {
		rs, err := linux.SubIDs(file, name, uid)
		if err != nil {
			return nil, err
		}
		var out [][2]uint32
		for _, r := range rs {
			out = append(out, [2]uint32{uint32(r.Start), uint32(r.Count)})
		}
		return out, nil
	}
	su, err := sub("/etc/subuid")
	if err != nil {
		return nil, nil, err
	}
	sg, err := sub("/etc/subgid")
	if err != nil {
		return nil, nil, err
	}
	return spec.RootlessMappings(uint32(uid), su), spec.RootlessMappings(uint32(gid), sg), nil
}
