//go:build linux

package escape

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CVE-2025-52565 (runc) and the 2026 crun series: the image's /dev, or
// /dev/console, /dev/ptmx, /dev/pts/N, is a symlink, and the runtime follows
// it while it mounts /dev, creates device nodes, opens the terminal or
// bind-mounts the pty onto /dev/console, so the mount or the open lands on
// a file outside the rootfs (or on a protected file inside it).
//
// warren: /dev and every device node are resolved inside the rootfs by fd
// (linux.MkdirInRoot, linux.CreateDevice: mknodat on a parent handle after
// unlinking whatever the image put at that name); the terminal comes from
// /dev/pts/ptmx opened in the rootfs and checked to be on a devpts
// (linux.OpenPty), its peer from TIOCGPTPEER, never from a /dev/pts/N path
// (init_linux.go setupTerminal).

// TestEscapeDevSymlink: the image's /dev is a symlink to a host directory.
// A vulnerable runtime mounts the /dev tmpfs (or devpts, shm, mqueue) on
// the host directory, or creates the device nodes in it: the pre-pivot
// mount table or the victim's content shows it.
func TestEscapeDevSymlink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		tmpfsDev, mirrored bool
	}{
		{"tmpfs-dev", true, false}, {"tmpfs-dev-mirrored", true, true},
		{"image-dev", false, false}, {"image-dev-mirrored", false, true},
	} {
		tmpfsDev := tc.tmpfsDev
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			if !tmpfsDev {
				b.removeMount("/dev")
			}
			victim := b.victimDir("victim-dev")
			b.symlink(victim, "/dev")
			if tc.mirrored {
				b.mirror(victim, "/dev")
			}
			dump := b.mountinfoHook()
			b.setArgs("/testinit", "probe", "/dev/null", "/dev/pts/ptmx")
			c, r := b.tryCreate(runOpts{})
			assertNoMountsOn(t, dump, r.ok(), victim)
			if r.ok() {
				c.start()
				b.waitStatus(c.id, "stopped")
				p := decodeProbes(t, c.output())
				if n := p["/dev/null"]; tmpfsDev && (n.Stat.Type != "char" || n.Stat.Major != 1 || n.Stat.Minor != 3) {
					t.Errorf("/dev/null in the container is not the null device: %+v", n)
				}
			} else {
				t.Logf("refused (fine):\n%s", r)
			}
			assertVictimDirUnchanged(t, victim)
		})
	}
}

// consoleSocket listens on a unix socket for the pty master that warren
// sends with --console-socket (one SCM_RIGHTS message).
func consoleSocket(t *testing.T, b *bundle) (string, <-chan *os.File) {
	t.Helper()
	sock := filepath.Join(b.tempDir("console"), "c.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan *os.File, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			got <- nil
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		if len(fds) != 1 {
			got <- nil
			return
		}
		got <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return sock, got
}

// readPty reads the container's terminal until the probe output is complete
// (or the terminal closes).
func readPty(t *testing.T, master *os.File) string {
	t.Helper()
	master.SetReadDeadline(time.Now().Add(pollDeadline))
	var all []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(all), `"probes"`) || !strings.HasSuffix(strings.TrimRight(string(all), "\r\n"), "}") {
		n, err := master.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			break
		}
	}
	return string(all)
}

func isPtySlave(s statInfo) bool { return s.Type == "char" && s.Major >= 136 && s.Major <= 143 }

// TestEscapeConsoleSymlink: process.terminal true with symlinks planted at
// /dev/console, /dev/ptmx, /dev/pts/N or /dev. Against a vulnerable runtime:
// the host victim changes (the pty was opened or bound through the
// symlink, and the container's output went there), the container's stdio is
// not a pty of its own devpts, or, for a /dev/console symlink to a file of
// the image, that file is covered by the pty inside the container (the
// console target was not checked to be the console).
func TestEscapeConsoleSymlink(t *testing.T) {
	t.Parallel()
	copyUp := func(b *bundle) {
		for i := range b.spec.Mounts {
			if b.spec.Mounts[i].Destination == "/dev" {
				// tmpcopyup carries the image's /dev (and its
				// symlinks) into the fresh tmpfs.
				b.spec.Mounts[i].Options = append(b.spec.Mounts[i].Options, "tmpcopyup")
			}
		}
	}
	cases := []struct {
		name  string
		setup func(b *bundle, victim, victimDir string)
	}{
		{"tmpfs-dev-console-to-host-file", func(b *bundle, victim, _ string) {
			copyUp(b)
			b.symlink(victim, "/dev/console")
		}},
		{"image-dev-console-and-ptmx-to-host-file", func(b *bundle, victim, _ string) {
			b.removeMount("/dev")
			b.symlink(victim, "/dev/console")
			b.symlink(victim, "/dev/ptmx")
		}},
		{"image-dev-pts-entries-to-host-file", func(b *bundle, victim, _ string) {
			b.removeMount("/dev")
			b.removeMount("/dev/pts")
			b.symlink(victim, "/dev/pts/ptmx")
			for n := 0; n < 4; n++ {
				b.symlink(victim, "/dev/pts/"+strconv.Itoa(n))
			}
		}},
		{"tmpfs-dev-console-to-image-file", func(b *bundle, _, _ string) {
			copyUp(b)
			b.symlink("/etc/console-target", "/dev/console")
		}},
		{"dev-symlink-to-host-dir", func(b *bundle, _, victimDir string) {
			b.symlink(victimDir, "/dev")
			b.mirror(victimDir, "/dev")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			victim := b.victimFile("console-victim")
			victimDir := b.victimDir("victim-devdir")
			writeFile(t, filepath.Join(b.rootfs, "etc", "console-target"), "a file of the image\n")
			tc.setup(b, victim, victimDir)
			b.spec.Process.Terminal = true
			dump := b.mountinfoHook()
			b.setArgs("/testinit", "probe", "/proc/self/fd/0", "/dev/console", "/etc/console-target")
			sock, got := consoleSocket(t, b)
			c, r := b.tryCreate(runOpts{}, "--console-socket", sock)
			assertNoMountsOn(t, dump, r.ok(), victim, victimDir)
			if r.ok() {
				var master *os.File
				select {
				case master = <-got:
				case <-time.After(pollDeadline):
				}
				if master == nil {
					t.Fatal("no pty master received on the console socket")
				}
				defer master.Close()
				c.start()
				out := readPty(t, master)
				p := decodeProbes(t, out)
				if s := p["/proc/self/fd/0"].Stat; !isPtySlave(s) {
					t.Errorf("ESCAPE (CVE-2025-52565, %s): the container's terminal is not a pty (stdin is %+v)", tc.name, s)
				}
				if s := p["/dev/console"].Lstat; s.Exists && s.Type != "symlink" && !isPtySlave(s) {
					t.Errorf("%s: /dev/console in the container is %+v, neither the pty nor the image's symlink", tc.name, s)
				}
				if s := p["/etc/console-target"].Lstat; s.Type != "file" {
					t.Errorf("ESCAPE (CVE-2025-52565 class, %s): /etc/console-target, the target of the image's /dev/console symlink, is now %+v inside the container: the pty was bind-mounted through the symlink instead of the console target being checked", tc.name, s)
				}
			} else {
				t.Logf("refused (fine):\n%s", r)
			}
			assertVictimFileUnchanged(t, victim)
			assertVictimDirUnchanged(t, victimDir)
		})
	}
}
