package main

import (
	"fmt"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512m": 512 << 20, "1g": 1 << 30, "1G": 1 << 30, "100": 100, "2k": 2048, "1.5m": 3 << 19, "64mb": 64 << 20, "3MiB": 3 << 20, "10b": 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "-1m", "12x", "lots", "1..2m"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q): no error", bad)
		}
	}
}

func TestParseVolume(t *testing.T) {
	m, err := parseVolume("/srv/data:/data:ro")
	if err != nil || m.Type != "bind" || m.Source != "/srv/data" || m.Destination != "/data" || !m.ReadOnly {
		t.Errorf("bind: %+v %v", m, err)
	}
	m, err = parseVolume("cache:/var/cache")
	if err != nil || m.Type != "volume" || m.Source != "cache" || m.ReadOnly {
		t.Errorf("named: %+v %v", m, err)
	}
	m, err = parseVolume("/scratch")
	if err != nil || m.Type != "volume" || len(m.Source) != 32 || m.Destination != "/scratch" {
		t.Errorf("anonymous: %+v %v", m, err)
	}
	for _, bad := range []string{"a:b", "x:y:z:w", ":/d"} {
		if _, err := parseVolume(bad); err == nil {
			t.Errorf("parseVolume(%q): no error", bad)
		}
	}
}

func TestParseRestart(t *testing.T) {
	p, err := parseRestart("on-failure:3")
	if err != nil || p.Name != "on-failure" || p.MaximumRetryCount != 3 {
		t.Errorf("%+v %v", p, err)
	}
	for _, bad := range []string{"sometimes", "always:2", "on-failure:x"} {
		if _, err := parseRestart(bad); err == nil {
			t.Errorf("parseRestart(%q): no error", bad)
		}
	}
}

func TestParsePort(t *testing.T) {
	for in, want := range map[string][4]string{
		"8080:80":              {"", "8080", "80", ""},
		"127.0.0.1:8080:80":    {"127.0.0.1", "8080", "80", ""},
		"[::1]:53:5353/udp":    {"::1", "53", "5353", "udp"},
		"10.0.0.1:9000:90/tcp": {"10.0.0.1", "9000", "90", "tcp"},
	} {
		m, err := parsePort(in)
		if err != nil || m.HostIP != want[0] || fmt.Sprint(m.HostPort) != want[1] || fmt.Sprint(m.ContainerPort) != want[2] || m.Protocol != want[3] {
			t.Errorf("parsePort(%q) = %+v, %v", in, m, err)
		}
	}
	for _, bad := range []string{"80", "0:80", "a:b", "8080:80/sctp", "::1:80:80", "1:2:3:4", "70000:80"} {
		if _, err := parsePort(bad); err == nil {
			t.Errorf("parsePort(%q): no error", bad)
		}
	}
}
