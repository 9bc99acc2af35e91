package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/api"
)

// parseBytes reads docker's memory strings: a number with an optional
// unit b, k, m, g, t (powers of 1024, any case, an optional trailing b
// after k/m/g/t).
func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	t = strings.TrimSuffix(t, "ib")
	if len(t) > 1 && strings.HasSuffix(t, "b") && strings.ContainsAny(t[len(t)-2:len(t)-1], "kmgt") {
		t = t[:len(t)-1]
	}
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'b':
			t = t[:n-1]
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || t == "" {
		return 0, fmt.Errorf("%q is not a size: use a number with an optional unit b, k, m, g (e.g. 512m)", s)
	}
	v := f * float64(mult)
	if v > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

// parseCPUs reads --cpus (a decimal number of CPUs) as nano CPUs.
func parseCPUs(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("--cpus %q: want a positive number of CPUs (e.g. 1.5)", s)
	}
	return int64(f * 1e9), nil
}

// parseVolume reads -v: /host:/ctr[:ro|rw] (bind), name:/ctr[:ro|rw]
// (named volume), /ctr (a new anonymous volume).
func parseVolume(s string) (api.Mount, error) {
	parts := strings.Split(s, ":")
	m := api.Mount{}
	if n := len(parts); n > 1 && (parts[n-1] == "ro" || parts[n-1] == "rw") {
		m.ReadOnly = parts[n-1] == "ro"
		parts = parts[:n-1]
	}
	switch len(parts) {
	case 1:
		b := make([]byte, 16)
		rand.Read(b)
		m.Type, m.Source, m.Destination = "volume", hex.EncodeToString(b), parts[0]
	case 2:
		m.Source, m.Destination = parts[0], parts[1]
		m.Type = "volume"
		if strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, ".") {
			m.Type = "bind"
		}
	default:
		return m, fmt.Errorf("-v %q: want SRC:DEST[:ro], NAME:DEST[:ro] or DEST", s)
	}
	if m.Source == "" || !strings.HasPrefix(m.Destination, "/") {
		return m, fmt.Errorf("-v %q: the destination must be an absolute path in the container", s)
	}
	if m.Type == "bind" && !strings.HasPrefix(m.Source, "/") {
		abs, err := absPath(m.Source)
		if err != nil {
			return m, err
		}
		m.Source = abs
	}
	return m, nil
}

func absPath(p string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + strings.TrimPrefix(p, "./"), nil
}

// parseRestart reads --restart no|on-failure[:N]|always|unless-stopped.
func parseRestart(s string) (api.RestartPolicy, error) {
	name, n, hasN := strings.Cut(s, ":")
	p := api.RestartPolicy{Name: name}
	switch name {
	case "", "no", "always", "unless-stopped":
		if hasN {
			return p, fmt.Errorf("--restart %q: only on-failure takes a retry count", s)
		}
	case "on-failure":
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return p, fmt.Errorf("--restart %q: the retry count must be a number >= 0", s)
			}
			p.MaximumRetryCount = v
		}
	default:
		return p, fmt.Errorf("--restart %q: use no, on-failure[:N], always or unless-stopped", s)
	}
	return p, nil
}

// envList completes -e KEY (no '=') from warrenctl's own environment,
// as docker does; an unset KEY is dropped.
func envList(in []string) []string {
	var out []string
	for _, kv := range in {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
		} else if v, ok := os.LookupEnv(kv); ok {
			out = append(out, kv+"="+v)
		}
	}
	return out
}

// parsePort reads -p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]; an
// IPv6 host address goes in brackets ([::1]:8080:80).
func parsePort(s string) (api.PortMapping, error) {
	var m api.PortMapping
	rest, proto, ok := strings.Cut(s, "/")
	if ok {
		if proto != "tcp" && proto != "udp" {
			return m, fmt.Errorf("-p %q: protocol %q: use tcp or udp", s, proto)
		}
		m.Protocol = proto
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return m, fmt.Errorf("-p %q: an IPv6 host address goes in brackets: [::1]:8080:80", s)
		}
		m.HostIP, rest = rest[1:end], rest[end+2:]
	}
	parts := strings.Split(rest, ":")
	if len(parts) == 3 && m.HostIP == "" {
		m.HostIP, parts = parts[0], parts[1:]
	}
	if len(parts) != 2 {
		return m, fmt.Errorf("-p %q: want [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp]", s)
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return m, fmt.Errorf("-p %q: port %q is not 1-65535", s, p)
		}
		if i == 0 {
			m.HostPort = uint16(n)
		} else {
			m.ContainerPort = uint16(n)
		}
	}
	return m, nil
}

// portFlags reads the repeated -p of run, create and pod create.
func portFlags(c *cli.Context) ([]api.PortMapping, error) {
	var ports []api.PortMapping
	for _, p := range c.StringSlice("publish") {
		m, err := parsePort(p)
		if err != nil {
			return nil, err
		}
		ports = append(ports, m)
	}
	return ports, nil
}

// resourceFlags reads -m, --cpus and --pids-limit of run, create and pod
// create.
func resourceFlags(c *cli.Context) (api.Resources, error) {
	r := api.Resources{PidsLimit: c.Int64("pids-limit")}
	if v := c.String("memory"); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			return r, fmt.Errorf("--memory: %w", err)
		}
		r.Memory = n
	}
	if v := c.String("cpus"); v != "" {
		n, err := parseCPUs(v)
		if err != nil {
			return r, err
		}
		r.NanoCPUs = n
	}
	return r, nil
}
