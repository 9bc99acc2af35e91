package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/api/client"
)

var networkCommand = cli.Command{
	Name:  "network",
	Usage: "bridge networks: create, ls, inspect, rm",
	Subcommands: []cli.Command{
		{Name: "create", Usage: "make a bridge network", ArgsUsage: "NAME", Flags: []cli.Flag{
			cli.StringFlag{Name: "subnet", Usage: "IPv4 subnet (CIDR)"},
			cli.StringFlag{Name: "gateway", Usage: "IPv4 gateway (default: the subnet's first address)"},
			cli.StringFlag{Name: "subnet6", Usage: "IPv6 subnet (CIDR)"},
			cli.StringFlag{Name: "gateway6", Usage: "IPv6 gateway"},
			cli.BoolFlag{Name: "internal", Usage: "no outbound NAT"},
		}, Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("network create: name the network")
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			n, err := cl.CreateNetwork(context.Background(), api.NetworkConfig{Name: c.Args().First(), Subnet: c.String("subnet"),
				Gateway: c.String("gateway"), Subnet6: c.String("subnet6"), Gateway6: c.String("gateway6"), Internal: c.Bool("internal")})
			if err != nil {
				return err
			}
			fmt.Println(n.Name)
			return nil
		}},
		{Name: "ls", Usage: "list networks", Flags: []cli.Flag{formatFlag}, Action: func(c *cli.Context) error {
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			ns, err := cl.Networks(context.Background())
			if err != nil {
				return err
			}
			if c.String("format") == "json" {
				return json.NewEncoder(os.Stdout).Encode(ns)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tBRIDGE\tSUBNET\tSUBNET6\tINTERNAL")
			for _, n := range ns {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", n.Name, n.Bridge, n.Subnet, n.Subnet6, n.Internal)
			}
			return w.Flush()
		}},
		{Name: "inspect", Usage: "a network and its endpoints (JSON)", ArgsUsage: "NAME", Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("network inspect: name one network")
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			n, err := cl.InspectNetwork(context.Background(), c.Args().First())
			if err != nil {
				return err
			}
			return printJSON(n)
		}},
		{Name: "rm", Usage: "remove networks nothing uses", ArgsUsage: "NAME...",
			Action: eachContainer(func(ctx context.Context, cl *client.Client, n string) error { return cl.RemoveNetwork(ctx, n) })},
	},
}

var podCommand = cli.Command{
	Name:  "pod",
	Usage: "pods: containers sharing network, IPC and UTS (and with --share-pid, pid) namespaces",
	Subcommands: []cli.Command{
		{Name: "create", Usage: "make a pod", Flags: []cli.Flag{
			cli.StringFlag{Name: "name"},
			cli.BoolFlag{Name: "share-pid", Usage: "members share one pid namespace (an infra process holds it)"},
			cli.StringFlag{Name: "network, net", Usage: "a network's name (default: the default network), none or host"},
			cli.StringSliceFlag{Name: "publish, p", Usage: "[HOSTIP:]HOSTPORT:CONTAINERPORT[/udp]"},
			cli.StringFlag{Name: "hostname", Usage: "default: the pod's name"},
			cli.StringFlag{Name: "memory, m", Usage: "memory limit of the whole pod"},
			cli.StringFlag{Name: "cpus", Usage: "CPU limit of the whole pod"},
			cli.Int64Flag{Name: "pids-limit"},
		}, Action: createPod},
		{Name: "ls", Usage: "list pods", Flags: []cli.Flag{formatFlag}, Action: listPods},
		{Name: "inspect", Usage: "a pod (JSON)", ArgsUsage: "POD", Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("pod inspect: name one pod")
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			p, err := cl.InspectPod(context.Background(), c.Args().First())
			if err != nil {
				return err
			}
			return printJSON(p)
		}},
		{Name: "stop", Usage: "stop a pod's containers", ArgsUsage: "POD...",
			Flags: []cli.Flag{cli.IntFlag{Name: "time, t", Value: -1}},
			Action: func(c *cli.Context) error {
				t := timeoutFlag(c)
				return eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.StopPod(ctx, id, t) })(c)
			}},
		{Name: "rm", Usage: "remove pods", ArgsUsage: "POD...",
			Flags: []cli.Flag{cli.BoolFlag{Name: "force, f", Usage: "remove their containers too"}},
			Action: func(c *cli.Context) error {
				force := c.Bool("force")
				return eachContainer(func(ctx context.Context, cl *client.Client, id string) error { return cl.RemovePod(ctx, id, force) })(c)
			}},
	},
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func createPod(c *cli.Context) error {
	cfg := api.PodConfig{Name: c.String("name"), SharePid: c.Bool("share-pid"), Network: c.String("network"),
		Hostname: c.String("hostname")}
	var err error
	if cfg.Ports, err = portFlags(c); err != nil {
		return err
	}
	if cfg.Resources, err = resourceFlags(c); err != nil {
		return err
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	p, err := cl.CreatePod(context.Background(), cfg)
	if err != nil {
		return err
	}
	fmt.Println(p.ID)
	return nil
}

func listPods(c *cli.Context) error {
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	ps, err := cl.Pods(context.Background())
	if err != nil {
		return err
	}
	if c.String("format") == "json" {
		return json.NewEncoder(os.Stdout).Encode(ps)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "POD ID\tNAME\tSTATUS\tNETWORK\tADDRESSES\tCONTAINERS")
	for _, p := range ps {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", short(p.ID), p.Name, p.Status, p.Config.Network, strings.Join(p.Addresses, ","), len(p.Members))
	}
	return w.Flush()
}
