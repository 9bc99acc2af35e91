//go:build linux

package main

// Pure helpers (no system calls) so they can be unit tested without root.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is one line of /proc/self/mountinfo (see proc(5)).
type Mount struct {
	ID           int      `json:"id"`
	ParentID     int      `json:"parentId"`
	MajorMinor   string   `json:"majorMinor"`
	Root         string   `json:"root"`
	Mountpoint   string   `json:"mountpoint"`
	Options      string   `json:"options"`  // per-mount options (field 6), e.g. "rw,nosuid,relatime"
	Optional     []string `json:"optional"` // optional fields, e.g. ["shared:1"] or ["master:2"]
	FSType       string   `json:"fstype"`
	Source       string   `json:"source"`
	SuperOptions string   `json:"superOptions"`
}

// unescapeOctal undoes the kernel's mangling of mountinfo fields: space, tab,
// newline and backslash are written as \040, \011, \012 and \134. Anything
// that is not a backslash followed by three octal digits is kept verbatim.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		// \4xx and above would not fit in a byte; the kernel never emits them.
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// parseMountinfoLine parses one line of /proc/<pid>/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Fields are separated by single spaces; empty fields (an empty source) are
// preserved.
func parseMountinfoLine(line string) (Mount, error) {
	line = strings.TrimRight(line, "\n")
	fields := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 {
		return Mount{}, fmt.Errorf("mountinfo line %q: missing separator", line)
	}
	if len(fields)-sep-1 < 3 {
		return Mount{}, fmt.Errorf("mountinfo line %q: want 3 fields after separator, got %d", line, len(fields)-sep-1)
	}
	id, err := strconv.Atoi(fields[0])
	if err != nil {
		return Mount{}, fmt.Errorf("mountinfo line %q: bad mount id: %w", line, err)
	}
	parent, err := strconv.Atoi(fields[1])
	if err != nil {
		return Mount{}, fmt.Errorf("mountinfo line %q: bad parent id: %w", line, err)
	}
	m := Mount{
		ID:           id,
		ParentID:     parent,
		MajorMinor:   fields[2],
		Root:         unescapeOctal(fields[3]),
		Mountpoint:   unescapeOctal(fields[4]),
		Options:      fields[5],
		Optional:     []string{},
		FSType:       unescapeOctal(fields[sep+1]),
		Source:       unescapeOctal(fields[sep+2]),
		SuperOptions: unescapeOctal(strings.Join(fields[sep+3:], " ")),
	}
	for _, f := range fields[6:sep] {
		if f != "" {
			m.Optional = append(m.Optional, f)
		}
	}
	return m, nil
}

// parseMountinfo parses the whole content of a mountinfo file.
func parseMountinfo(data string) ([]Mount, error) {
	mounts := []Mount{}
	for _, line := range strings.Split(data, "\n") {
		if line == "" {
			continue
		}
		m, err := parseMountinfoLine(line)
		if err != nil {
			return mounts, err
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

// parseNSLink parses a /proc/<pid>/ns/* link target such as "mnt:[4026531841]".
func parseNSLink(link string) (string, uint64, error) {
	i := strings.Index(link, ":[")
	if i <= 0 || !strings.HasSuffix(link, "]") {
		return "", 0, fmt.Errorf("namespace link %q: want type:[inode]", link)
	}
	ino, err := strconv.ParseUint(link[i+2:len(link)-1], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("namespace link %q: bad inode: %w", link, err)
	}
	return link[:i], ino, nil
}

// parseStatusLine splits a /proc/<pid>/status line "Key:\tvalue" into its key
// and whitespace-trimmed value.
func parseStatusLine(line string) (key, value string, ok bool) {
	k, v, found := strings.Cut(line, ":")
	if !found || k == "" || strings.ContainsAny(k, " \t") {
		return "", "", false
	}
	return k, strings.TrimSpace(v), true
}

// parseStatus turns /proc/<pid>/status into a key -> value map.
func parseStatus(data string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(data, "\n") {
		if k, v, ok := parseStatusLine(line); ok {
			m[k] = v
		}
	}
	return m
}

// capKeys are the capability set lines of /proc/<pid>/status.
var capKeys = []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}

// capsFromStatus extracts the capability sets (as the kernel's hex strings)
// from a parsed status map. Sets the kernel does not report are left out.
func capsFromStatus(status map[string]string) (map[string]string, error) {
	caps := make(map[string]string, len(capKeys))
	for _, k := range capKeys {
		v, ok := status[k]
		if !ok {
			continue
		}
		if _, err := strconv.ParseUint(v, 16, 64); err != nil {
			return caps, fmt.Errorf("status %s: %q is not a hex mask", k, v)
		}
		caps[k] = v
	}
	return caps, nil
}

// statusInt returns the decimal integer value of key, or an error if the key
// is missing or not a number.
func statusInt(status map[string]string, key string) (int, error) {
	v, ok := status[key]
	if !ok {
		return 0, fmt.Errorf("status: no %s line", key)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("status %s: %w", key, err)
	}
	return n, nil
}

// statusOctal is statusInt for octal values such as "Umask:\t0022".
func statusOctal(status map[string]string, key string) (int, error) {
	v, ok := status[key]
	if !ok {
		return 0, fmt.Errorf("status: no %s line", key)
	}
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("status %s: %w", key, err)
	}
	return int(n), nil
}

// fileType names the file type encoded in a stat mode.
func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "unknown"
}

// modeString renders a stat mode the way ls -l does, e.g. "drwxr-xr-x",
// "crw-rw-rw-", "-rwsr-xr-x", "drwxrwxrwt".
func modeString(mode uint32) string {
	var b [10]byte
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		b[0] = '-'
	case unix.S_IFDIR:
		b[0] = 'd'
	case unix.S_IFLNK:
		b[0] = 'l'
	case unix.S_IFCHR:
		b[0] = 'c'
	case unix.S_IFBLK:
		b[0] = 'b'
	case unix.S_IFIFO:
		b[0] = 'p'
	case unix.S_IFSOCK:
		b[0] = 's'
	default:
		b[0] = '?'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if mode&(1<<uint(8-i)) != 0 {
			b[1+i] = rwx[i]
		} else {
			b[1+i] = '-'
		}
	}
	special := func(idx int, bit uint32, set, unsetExec byte) {
		if mode&bit == 0 {
			return
		}
		if b[idx] == 'x' {
			b[idx] = set
		} else {
			b[idx] = unsetExec
		}
	}
	special(3, unix.S_ISUID, 's', 'S')
	special(6, unix.S_ISGID, 's', 'S')
	special(9, unix.S_ISVTX, 't', 'T')
	return string(b[:])
}

// parseSignal accepts a signal number ("15") or name ("TERM", "SIGTERM",
// case-insensitive). 0 is allowed (existence check).
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// parseSeconds converts a (possibly fractional) number of seconds into a
// duration. Very large values are clamped to the longest duration.
func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: %w", s, err)
	}
	if math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf("bad duration %q: must be a non-negative number", s)
	}
	if f >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64), nil
	}
	return time.Duration(f * float64(time.Second)), nil
}

// parseIfFlags parses /sys/class/net/<if>/flags ("0x1003").
func parseIfFlags(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "0x") {
		return 0, errors.New("interface flags: missing 0x prefix")
	}
	return strconv.ParseUint(s[2:], 16, 64)
}

// cString converts a NUL-terminated byte array (as in struct utsname).
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// parseUptime returns the first field of /proc/uptime ("350735.47
// 234388.90") as seconds.
func parseUptime(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("/proc/uptime: empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || math.IsNaN(v) || v < 0 {
		return 0, fmt.Errorf("/proc/uptime: bad uptime %q", f[0])
	}
	return v, nil
}

// nsToSeconds converts nanoseconds to float seconds without losing the
// whole-second part to rounding.
func nsToSeconds(ns int64) float64 {
	return float64(ns/1e9) + float64(ns%1e9)/1e9
}
