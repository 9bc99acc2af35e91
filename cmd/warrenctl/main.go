// Command warrenctl drives warren's engine: containers, images and
// events through warrend's API (package api/client). The `image`
// subcommands work on the image store directly, with or without a
// running warrend (the store locks per operation), for offline use.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/images"
)

var version = "0.1.0-dev"

func main() {
	app := cli.NewApp()
	app.Name = "warrenctl"
	app.Usage = "warren's engine: containers and images, through warrend's API"
	app.Version = version
	app.UseShortOptionHandling = true
	app.Flags = []cli.Flag{
		cli.StringFlag{Name: "host, H", EnvVar: "WARREN_HOST", Value: "unix://" + api.DefaultSocket, Usage: "warrend's API: unix:///PATH or tcp://HOST:PORT (mutual TLS)"},
		cli.StringFlag{Name: "tls-cert", EnvVar: "WARREN_TLS_CERT", Usage: "client certificate for tcp://"},
		cli.StringFlag{Name: "tls-key", EnvVar: "WARREN_TLS_KEY", Usage: "client key for tcp://"},
		cli.StringFlag{Name: "tls-ca", EnvVar: "WARREN_TLS_CA", Usage: "CA of warrend's certificate for tcp://"},
		cli.StringFlag{Name: "root", Value: images.DefaultRoot, Usage: "the store the image subcommands work on directly"},
	}
	app.Commands = append(containerCommands, networkCommand, podCommand, imageCommand)
	if err := app.Run(os.Args); err != nil {
		var ex *exitCode
		if errors.As(err, &ex) {
			os.Exit(ex.code)
		}
		fmt.Fprintln(os.Stderr, "warrenctl: "+err.Error())
		os.Exit(1)
	}
}

func store(c *cli.Context) (*images.Store, error) {
	return images.Open(c.GlobalString("root"))
}

var formatFlag = cli.StringFlag{Name: "format", Value: "table", Usage: "table or json"}

var imageCommand = cli.Command{
	Name:  "image",
	Usage: "manage images: import, pull, ls, inspect, rm, prune, mount, bundle",
	Subcommands: []cli.Command{
		{
			Name:      "import",
			Usage:     "store an image from an OCI layout, an OCI archive or a docker archive",
			ArgsUsage: "oci:DIR[:REF] | oci-archive:FILE[:REF] | docker-archive:FILE[:TAG] | DIR",
			Flags: []cli.Flag{
				cli.StringFlag{Name: "name", Usage: "name to store the image under (default: the source's ref, else kind:basename)"},
				progressFlag,
			},
			Action: importImage,
		},
		{
			Name:      "pull",
			Usage:     "store an image from a registry (credentials from ~/.docker/config.json)",
			ArgsUsage: "REFERENCE",
			Flags: []cli.Flag{
				cli.BoolFlag{Name: "insecure", Usage: "allow a plain-HTTP or unverified-TLS registry"},
				progressFlag,
			},
			Action: pullImage,
		},
		{Name: "ls", Usage: "list images", Flags: []cli.Flag{formatFlag}, Action: listImages},
		{Name: "inspect", Usage: "show an image's record and config", ArgsUsage: "NAME", Action: inspectImage},
		{Name: "rm", Usage: "forget images (prune removes their unshared layers)", ArgsUsage: "NAME...", Action: removeImages},
		{Name: "prune", Usage: "remove blobs and layers no image uses", Action: pruneImages},
		{
			Name:      "bundle",
			Usage:     "make DIR an OCI bundle of the image: its overlay on DIR/rootfs and DIR/config.json from the image config",
			ArgsUsage: "NAME DIR",
			Action:    bundleImage,
		},
		{
			Name:      "mount",
			Usage:     "mount an image's layers as an overlay on DIR/rootfs (DIR/upper takes the writes)",
			ArgsUsage: "NAME DIR",
			Action:    mountImage,
		},
	},
}

// progress reports layer by layer: a line that redraws itself on a
// terminal, JSON lines with --progress json, nothing otherwise (scripts
// and logs get the result alone).
func progress(c *cli.Context) (func(images.Progress), error) {
	mode := c.String("progress")
	if mode == "auto" {
		mode = "none"
		if _, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS); err == nil {
			mode = "tty"
		}
	}
	switch mode {
	case "none":
		return nil, nil
	case "json":
		enc := json.NewEncoder(os.Stderr)
		return func(p images.Progress) { enc.Encode(p) }, nil
	case "tty":
		start := time.Now()
		return func(p images.Progress) {
			const width = 30
			fill := width
			if p.Size > 0 && p.Phase == "fetch" {
				fill = int(min(p.Done, p.Size) * width / p.Size)
			}
			bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
			fmt.Fprintf(os.Stderr, "\r\033[K[%5.1fs] layer %d/%d %s [%s] %s/%s %s", time.Since(start).Seconds(), p.Layer, p.Layers,
				strings.TrimPrefix(p.Digest, "sha256:")[:12], bar, humanSize(min(p.Done, p.Size)), humanSize(p.Size), p.Phase)
			if p.Phase == "unpack" && p.Layer == p.Layers {
				fmt.Fprintln(os.Stderr)
			}
		}, nil
	}
	return nil, fmt.Errorf("--progress %q: want auto, tty, json or none: %w", mode, errdefs.ErrInvalid)
}

var progressFlag = cli.StringFlag{Name: "progress", Value: "auto", Usage: "auto (a line on a terminal, else none), tty, json (lines on stderr) or none"}

func importImage(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("image import: want one source: %w", errdefs.ErrInvalid)
	}
	img, def, cleanup, err := images.FromSource(c.Args().First())
	if err != nil {
		return err
	}
	defer cleanup()
	name := c.String("name")
	if name == "" {
		name = def
	}
	return addImage(c, name, img)
}

// addImage stores img under name, reporting progress, and prints its
// manifest digest.
func addImage(c *cli.Context, name string, img v1.Image) error {
	s, err := store(c)
	if err != nil {
		return err
	}
	p, err := progress(c)
	if err != nil {
		return err
	}
	rec, err := s.Add(name, img, p)
	if err != nil {
		return err
	}
	fmt.Println(rec.Manifest)
	return nil
}

func pullImage(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("image pull: want one reference: %w", errdefs.ErrInvalid)
	}
	img, name, err := images.FromRegistry(c.Args().First(), images.PullOptions{Insecure: c.Bool("insecure")})
	if err != nil {
		return err
	}
	return addImage(c, name, img)
}

func listImages(c *cli.Context) error {
	s, err := store(c)
	if err != nil {
		return err
	}
	imgs, err := s.List()
	if err != nil {
		return err
	}
	switch c.String("format") {
	case "json":
		if imgs == nil {
			imgs = []images.Image{}
		}
		return json.NewEncoder(os.Stdout).Encode(imgs)
	case "table":
		w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
		fmt.Fprintln(w, "NAME\tDIGEST\tLAYERS\tSIZE\tPLATFORM\tCREATED")
		for _, i := range imgs {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", i.Name, i.Manifest.Hex[:12], len(i.Layers), humanSize(i.Size), i.Platform, i.Created.Format(time.RFC3339))
		}
		return w.Flush()
	}
	return fmt.Errorf("--format %q: want table or json: %w", c.String("format"), errdefs.ErrInvalid)
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func inspectImage(c *cli.Context) error {
	s, img, err := storedImage(c, 1, "one image")
	if err != nil {
		return err
	}
	cfg, err := s.Config(img)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*images.Image
		ConfigFile *v1.ConfigFile `json:"configFile"`
	}{img, cfg})
}

func removeImages(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("image rm: name at least one image: %w", errdefs.ErrInvalid)
	}
	s, err := store(c)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range c.Args() {
		if err := s.Remove(n); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Println(n)
	}
	return errors.Join(errs...)
}

// storedImage checks the argument count of an image subcommand and
// returns the store and the image its first argument names.
func storedImage(c *cli.Context, nargs int, want string) (*images.Store, *images.Image, error) {
	if c.NArg() != nargs {
		return nil, nil, fmt.Errorf("image %s: want %s: %w", c.Command.Name, want, errdefs.ErrInvalid)
	}
	s, err := store(c)
	if err != nil {
		return nil, nil, err
	}
	img, err := s.Get(c.Args().Get(0))
	if err != nil {
		return nil, nil, err
	}
	return s, img, nil
}

func pruneImages(c *cli.Context) error {
	s, err := store(c)
	if err != nil {
		return err
	}
	removed, err := s.Prune()
	for _, p := range removed {
		fmt.Println(p)
	}
	return err
}

func mountImage(c *cli.Context) error {
	s, img, err := storedImage(c, 2, "an image and a directory")
	if err != nil {
		return err
	}
	rootfs, err := s.MountImage(img, c.Args().Get(1))
	if err != nil {
		return err
	}
	fmt.Println(rootfs)
	return nil
}

func bundleImage(c *cli.Context) error {
	s, img, err := storedImage(c, 2, "an image and a directory")
	if err != nil {
		return err
	}
	cfg, err := s.Config(img)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(c.Args().Get(1))
	if err != nil {
		return err
	}
	rootfs, err := s.MountImage(img, dir)
	if err != nil {
		return err
	}
	spec, err := images.Spec(cfg, rootfs)
	if err == nil {
		var b []byte
		if b, err = json.MarshalIndent(spec, "", "  "); err == nil {
			err = os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
		}
	}
	if err != nil {
		unix.Unmount(rootfs, unix.MNT_DETACH)
		return err
	}
	fmt.Println(dir)
	return nil
}
