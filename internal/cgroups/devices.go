package cgroups

import (
	"fmt"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/rawfile"
)

// DefaultAllowedDevices are allowed after the spec's rules so the devices the
// runtime creates in every container stay usable (as runc does).
var DefaultAllowedDevices = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},    // null
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"},    // zero
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"},    // full
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"},    // random
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"},    // urandom
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"},    // tty
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(1), Access: "rwm"},    // console
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},    // ptmx
	{Allow: true, Type: "c", Major: i64(136), Minor: nil, Access: "rwm"},     // pts
	{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"}, // tun
}

func i64(v int64) *int64 { return &v }

// DeviceRule renders one rule in the v1 devices.allow/deny syntax.
func DeviceRule(r specs.LinuxDeviceCgroup) string {
	typ := r.Type
	if typ == "" {
		typ = "a"
	}
	num := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return strconv.FormatInt(*p, 10)
	}
	access := r.Access
	if access == "" {
		access = "rwm"
	}
	if typ == "a" {
		return "a"
	}
	return fmt.Sprintf("%s %s:%s %s", typ, num(r.Major), num(r.Minor), access)
}

// DeviceRules is the full rule list for a container: the spec's rules,
// then the devices the runtime creates in every container, then the
// config's linux.devices (the spec says those must be available in the
// container), as runc does. No rules at all means no device restriction.
func DeviceRules(rules []specs.LinuxDeviceCgroup, devices []specs.LinuxDevice) []specs.LinuxDeviceCgroup {
	if len(rules) == 0 {
		return nil
	}
	all := append(append([]specs.LinuxDeviceCgroup{}, rules...), DefaultAllowedDevices...)
	for _, d := range devices {
		if d.Type == "p" {
			continue
		}
		typ := d.Type
		if typ == "u" {
			typ = "c"
		}
		all = append(all, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: i64(d.Major), Minor: i64(d.Minor), Access: "rwm"})
	}
	return all
}

// SetDevices writes the device rules to the v1 devices controller. Without a
// v1 devices hierarchy it does nothing: on v2 Set uses SetDevicesV2.
func (m *Manager) SetDevices(rules []specs.LinuxDeviceCgroup, devices []specs.LinuxDevice) error {
	dir := m.Paths["devices"]
	if dir == "" {
		return nil
	}
	for _, r := range DeviceRules(rules, devices) {
		file := "devices.deny"
		if r.Allow {
			file = "devices.allow"
		}
		if err := rawfile.Write(filepath.Join(dir, file), []byte(DeviceRule(r))); err != nil {
			return fmt.Errorf("linux.resources.devices: write %q to %s: %w", DeviceRule(r), filepath.Join(dir, file), err)
		}
	}
	return nil
}
