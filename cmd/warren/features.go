package main

import (
	"fmt"
	"os"

	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/linux"

	"github.com/warren-runtime/warren/internal/spec"
)

var featuresCommand = cli.Command{
	Name:  "features",
	Usage: "show the enabled features",
	Description: `Show what this build of warren supports on this kernel, as the JSON document
of the OCI runtime spec's features.md. Annotations name what is not supported yet.`,
	Action: func(c *cli.Context) error {
		on := true
		spec.Seccomp = &features.Seccomp{
			Enabled: &on, Actions: linux.SeccompActions, Operators: linux.SeccompOperators,
			Archs: linux.SeccompArchs(), KnownFlags: linux.SeccompFlags, SupportedFlags: linux.SeccompFlags,
		}
		b, err := spec.FeaturesJSON()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(os.Stdout, string(b))
		return err
	},
}
