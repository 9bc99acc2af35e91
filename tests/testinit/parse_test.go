//go:build linux

package main

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUnescapeOctal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/plain/path", "/plain/path"},
		{`/with\040space`, "/with space"},
		{`/a\040b\040c`, "/a b c"},
		{`tab\011nl\012bs\134end`, "tab\tnl\nbs\\end"},
		{`\040leading`, " leading"},
		{`trailing\040`, "trailing "},
		{`short\04`, `short\04`}, // not three digits: kept
		{`not\08x`, `not\08x`},   // 8 is not octal: kept
		{`big\477`, `big\477`},   // does not fit a byte: kept
		{`lone\`, `lone\`},       // trailing backslash: kept
		{`\134040`, `\040`},      // unescaping is single pass
		{`x\1010`, "xA0"},        // \101 == 'A'
		{"", ""},
	} {
		if got := unescapeOctal(tc.in); got != tc.want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseMountinfoLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want Mount
	}{
		{
			name: "proc(5) example",
			line: "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
			want: Mount{ID: 36, ParentID: 35, MajorMinor: "98:0", Root: "/mnt1", Mountpoint: "/mnt/parent",
				Options: "rw,noatime", Optional: []string{"master:1"}, FSType: "ext3", Source: "/dev/root",
				SuperOptions: "rw,errors=continue"},
		},
		{
			name: "no optional fields",
			line: "21 26 0:20 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw",
			want: Mount{ID: 21, ParentID: 26, MajorMinor: "0:20", Root: "/", Mountpoint: "/proc",
				Options: "rw,nosuid,nodev,noexec,relatime", Optional: []string{}, FSType: "proc", Source: "proc",
				SuperOptions: "rw"},
		},
		{
			name: "several optional fields",
			line: "100 1 0:50 / /shared rw shared:5 master:3 propagate_from:2 unbindable - tmpfs tmpfs rw,size=64k",
			want: Mount{ID: 100, ParentID: 1, MajorMinor: "0:50", Root: "/", Mountpoint: "/shared",
				Options: "rw", Optional: []string{"shared:5", "master:3", "propagate_from:2", "unbindable"},
				FSType: "tmpfs", Source: "tmpfs", SuperOptions: "rw,size=64k"},
		},
		{
			name: "escaped spaces in root, mountpoint and source",
			line: `200 26 8:1 /dir\040one /mnt/my\040mount ro,relatime - ext4 /dev/disk\040a rw`,
			want: Mount{ID: 200, ParentID: 26, MajorMinor: "8:1", Root: "/dir one", Mountpoint: "/mnt/my mount",
				Options: "ro,relatime", Optional: []string{}, FSType: "ext4", Source: "/dev/disk a",
				SuperOptions: "rw"},
		},
		{
			name: "mountpoint named like the separator",
			line: "300 26 0:60 / /- rw - tmpfs none rw",
			want: Mount{ID: 300, ParentID: 26, MajorMinor: "0:60", Root: "/", Mountpoint: "/-",
				Options: "rw", Optional: []string{}, FSType: "tmpfs", Source: "none", SuperOptions: "rw"},
		},
		{
			name: "empty source field",
			line: "301 26 0:61 / /e rw - tmpfs  rw,size=1k\n",
			want: Mount{ID: 301, ParentID: 26, MajorMinor: "0:61", Root: "/", Mountpoint: "/e",
				Options: "rw", Optional: []string{}, FSType: "tmpfs", Source: "", SuperOptions: "rw,size=1k"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountinfoLine(tc.line)
			if err != nil {
				t.Fatalf("parseMountinfoLine: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseMountinfoLine(%q)\n got  %+v\n want %+v", tc.line, got, tc.want)
			}
		})
	}
}

func TestParseMountinfoLineErrors(t *testing.T) {
	for _, line := range []string{
		"",
		"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 ext3 /dev/root rw", // no separator
		"36 35 98:0 /mnt1 /mnt/parent rw,noatime - ext3",                     // too few trailing fields
		"x 35 98:0 / / rw - ext3 /dev/root rw",                               // bad id
		"36 y 98:0 / / rw - ext3 /dev/root rw",                               // bad parent
		"36 35 98:0 / - ext3 /dev/root rw",                                   // separator too early
	} {
		if m, err := parseMountinfoLine(line); err == nil {
			t.Errorf("parseMountinfoLine(%q) = %+v, want error", line, m)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	data := "21 26 0:20 / /proc rw,relatime - proc proc rw\n" +
		"\n" +
		`26 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw` + "\n" +
		`27 26 0:24 / /a\040b ro - tmpfs tmpfs ro` + "\n"
	mounts, err := parseMountinfo(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mounts {
		got = append(got, m.Mountpoint)
	}
	if want := []string{"/proc", "/", "/a b"}; !slices.Equal(got, want) {
		t.Errorf("mountpoints = %q, want %q", got, want)
	}
	if _, err := parseMountinfo(data + "garbage\n"); err == nil {
		t.Error("parseMountinfo accepted a garbage line")
	}
}

func TestParseNSLink(t *testing.T) {
	for _, tc := range []struct {
		link string
		typ  string
		ino  uint64
	}{
		{"mnt:[4026531841]", "mnt", 4026531841},
		{"pid_for_children:[4026532200]", "pid_for_children", 4026532200},
		{"time_for_children:[1]", "time_for_children", 1},
		{"user:[18446744073709551615]", "user", 18446744073709551615},
	} {
		typ, ino, err := parseNSLink(tc.link)
		if err != nil || typ != tc.typ || ino != tc.ino {
			t.Errorf("parseNSLink(%q) = %q, %d, %v; want %q, %d", tc.link, typ, ino, err, tc.typ, tc.ino)
		}
	}
	for _, bad := range []string{"", "mnt", "mnt:4026531841", "mnt:[]", "mnt:[abc]", ":[123]",
		"mnt:[123", "mnt:[-1]", "/proc/self/ns/mnt"} {
		if typ, ino, err := parseNSLink(bad); err == nil {
			t.Errorf("parseNSLink(%q) = %q, %d; want error", bad, typ, ino)
		}
	}
}

const sampleStatus = `Name:	testinit
Umask:	0027
State:	R (running)
Pid:	1
PPid:	0
Uid:	1000	1000	1000	1000
Groups:	10 20 
NoNewPrivs:	1
Seccomp:	2
Seccomp_filters:	1
CapInh:	0000000000000000
CapPrm:	00000000a80425fb
CapEff:	00000000a80425fb
CapBnd:	00000000a80425fb
CapAmb:	0000000000000000
Speculation_Store_Bypass:	thread vulnerable
`

func TestParseStatusLine(t *testing.T) {
	for _, tc := range []struct {
		line, key, value string
		ok               bool
	}{
		{"CapEff:\t000001ffffffffff", "CapEff", "000001ffffffffff", true},
		{"CapAmb:\t0000000000000000", "CapAmb", "0000000000000000", true},
		{"Groups:\t10 20 ", "Groups", "10 20", true},
		{"Groups:", "Groups", "", true},
		{"State:\tS (sleeping)", "State", "S (sleeping)", true},
		{"no colon here", "", "", false},
		{":\tvalue", "", "", false},
		{"two words:\t1", "", "", false},
		{"", "", "", false},
	} {
		k, v, ok := parseStatusLine(tc.line)
		if k != tc.key || v != tc.value || ok != tc.ok {
			t.Errorf("parseStatusLine(%q) = %q, %q, %v; want %q, %q, %v", tc.line, k, v, ok, tc.key, tc.value, tc.ok)
		}
	}
}

func TestCapsFromStatus(t *testing.T) {
	st := parseStatus(sampleStatus)
	caps, err := capsFromStatus(st)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"CapInh": "0000000000000000",
		"CapPrm": "00000000a80425fb",
		"CapEff": "00000000a80425fb",
		"CapBnd": "00000000a80425fb",
		"CapAmb": "0000000000000000",
	}
	if !reflect.DeepEqual(caps, want) {
		t.Errorf("capsFromStatus = %v, want %v", caps, want)
	}

	// Old kernels have no CapAmb line: it is left out, not invented.
	old := parseStatus(strings.ReplaceAll(sampleStatus, "CapAmb:\t0000000000000000\n", ""))
	caps, err = capsFromStatus(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := caps["CapAmb"]; ok || len(caps) != 4 {
		t.Errorf("capsFromStatus without CapAmb = %v", caps)
	}

	bad := parseStatus("CapEff:\tnot-hex\n")
	if _, err := capsFromStatus(bad); err == nil {
		t.Error("capsFromStatus accepted a non-hex mask")
	}
}

func TestStatusNumbers(t *testing.T) {
	st := parseStatus(sampleStatus)
	for _, tc := range []struct {
		key  string
		want int
	}{{"NoNewPrivs", 1}, {"Seccomp", 2}, {"Seccomp_filters", 1}, {"Pid", 1}} {
		if got, err := statusInt(st, tc.key); err != nil || got != tc.want {
			t.Errorf("statusInt(%s) = %d, %v; want %d", tc.key, got, err, tc.want)
		}
	}
	if got, err := statusOctal(st, "Umask"); err != nil || got != 0o027 {
		t.Errorf("statusOctal(Umask) = %o, %v; want 027", got, err)
	}
	if _, err := statusInt(st, "Missing"); err == nil {
		t.Error("statusInt accepted a missing key")
	}
	if _, err := statusInt(st, "State"); err == nil {
		t.Error("statusInt accepted a non-number")
	}
	if _, err := statusOctal(parseStatus("Umask:\t0089\n"), "Umask"); err == nil {
		t.Error("statusOctal accepted a non-octal value")
	}
}

func TestModeString(t *testing.T) {
	for _, tc := range []struct {
		mode uint32
		want string
		typ  string
	}{
		{unix.S_IFDIR | 0o755, "drwxr-xr-x", "dir"},
		{unix.S_IFREG | 0o644, "-rw-r--r--", "file"},
		{unix.S_IFREG | 0o4755, "-rwsr-xr-x", "file"},
		{unix.S_IFREG | 0o2644, "-rw-r-Sr--", "file"},
		{unix.S_IFREG | 0o6000, "---S--S---", "file"},
		{unix.S_IFDIR | 0o1777, "drwxrwxrwt", "dir"},
		{unix.S_IFDIR | 0o1770, "drwxrwx--T", "dir"},
		{unix.S_IFLNK | 0o777, "lrwxrwxrwx", "symlink"},
		{unix.S_IFCHR | 0o666, "crw-rw-rw-", "char"},
		{unix.S_IFBLK | 0o660, "brw-rw----", "block"},
		{unix.S_IFIFO | 0o600, "prw-------", "fifo"},
		{unix.S_IFSOCK | 0o777, "srwxrwxrwx", "socket"},
		{0o7, "?------rwx", "unknown"},
	} {
		if got := modeString(tc.mode); got != tc.want {
			t.Errorf("modeString(%o) = %q, want %q", tc.mode, got, tc.want)
		}
		if got := fileType(tc.mode); got != tc.typ {
			t.Errorf("fileType(%o) = %q, want %q", tc.mode, got, tc.typ)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"15": unix.SIGTERM, "0": 0, "9": unix.SIGKILL,
		"TERM": unix.SIGTERM, "SIGTERM": unix.SIGTERM, "sigkill": unix.SIGKILL, "hup": unix.SIGHUP,
		"USR1": unix.SIGUSR1,
	} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "65", "NOPE", "SIG"} {
		if got, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%q) = %v, want error", bad, got)
		}
	}
}

func TestParseSeconds(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "1": time.Second, "0.25": 250 * time.Millisecond, "1.5": 1500 * time.Millisecond,
		"1e30": time.Duration(1<<63 - 1), "inf": time.Duration(1<<63 - 1),
	} {
		if got, err := parseSeconds(in); err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "abc", "NaN", "1s"} {
		if got, err := parseSeconds(bad); err == nil {
			t.Errorf("parseSeconds(%q) = %v, want error", bad, got)
		}
	}
}

func TestParseIfFlags(t *testing.T) {
	if f, err := parseIfFlags("0x1003\n"); err != nil || f != 0x1003 || f&unix.IFF_UP == 0 {
		t.Errorf("parseIfFlags(0x1003) = %#x, %v", f, err)
	}
	if f, err := parseIfFlags("0x1002"); err != nil || f&unix.IFF_UP != 0 {
		t.Errorf("parseIfFlags(0x1002) = %#x, %v; want IFF_UP clear", f, err)
	}
	if _, err := parseIfFlags("4099"); err == nil {
		t.Error("parseIfFlags accepted a value without 0x")
	}
}

func TestCString(t *testing.T) {
	if got := cString([]byte{'h', 'o', 's', 't', 0, 'x'}); got != "host" {
		t.Errorf("cString = %q, want host", got)
	}
	if got := cString([]byte("full")); got != "full" {
		t.Errorf("cString without NUL = %q", got)
	}
}

func TestLimitedBuilder(t *testing.T) {
	var sb strings.Builder
	lb := &limitedBuilder{b: &sb, max: 5}
	for _, p := range []string{"abc", "defg", "hij"} {
		if n, err := lb.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if sb.String() != "abcde" {
		t.Errorf("kept %q, want %q", sb.String(), "abcde")
	}
}

// collectFDs must list descriptors we hold and must not list the one it
// used to read /proc/self/fd.
func TestCollectFDs(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds, targets, err := collectFDs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fds, int(f.Fd())) {
		t.Errorf("fd %d (%s) missing from %v", f.Fd(), os.DevNull, fds)
	}
	if targets[int(f.Fd())] != os.DevNull {
		t.Errorf("target of fd %d = %q, want %q", f.Fd(), targets[int(f.Fd())], os.DevNull)
	}
	if !slices.IsSorted(fds) {
		t.Errorf("fds not sorted: %v", fds)
	}
	for fd, target := range targets {
		if strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") {
			t.Errorf("listing directory fd %d (%s) was reported", fd, target)
		}
	}
}

// Dispatch by argv[1] and by argv[0]'s base name.
func TestRunDispatch(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want int
	}{
		{[]string{"testinit", "exit", "3"}, 3},
		{[]string{"/usr/bin/exit", "42"}, 42},
		{[]string{"/testinit", "exit", "0"}, 0},
		{[]string{"testinit", "exit", "256"}, 1},
		{[]string{"testinit", "exit"}, 1},
		{[]string{"testinit", "no-such-command"}, 1},
		{[]string{"testinit", "sleep", "0"}, 0},
	} {
		if got := run(tc.argv); got != tc.want {
			t.Errorf("run(%q) = %d, want %d", tc.argv, got, tc.want)
		}
	}
}

func TestParseUptime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"350735.47 234388.90\n", 350735.47, true},
		{"0.01 0.00\n", 0.01, true},
		{"1728123.99 1.00", 1728123.99, true},
		{"", 0, false},
		{"\n", 0, false},
		{"abc 1.0\n", 0, false},
		{"-1.0 1.0\n", 0, false},
	} {
		got, err := parseUptime(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseUptime(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestNSToSeconds(t *testing.T) {
	for _, tc := range []struct {
		ns   int64
		want float64
	}{
		{0, 0},
		{1_500_000_000, 1.5},
		{864000_250_000_000, 864000.25},
	} {
		if got := nsToSeconds(tc.ns); got != tc.want {
			t.Errorf("nsToSeconds(%d) = %v, want %v", tc.ns, got, tc.want)
		}
	}
}
