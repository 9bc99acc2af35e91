//go:build linux

package escape

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CVE-2021-30465 (runc): a mount destination inside the rootfs that is (or,
// racing, becomes) a symlink pointing out of it makes a runtime that mounts
// on the path string mount onto a host directory. CVE-2024-45310 (runc):
// the same race makes the runtime's "mkdir -p" of a destination create
// directories or files on the host.
//
// warren resolves each destination inside the rootfs with openat2
// RESOLVE_IN_ROOT (linux.MkdirInRoot / linux.CreateInRoot, creating what is
// missing relative to a handle) and mounts on the resulting fd
// (open_tree + move_mount for binds, /proc/self/fd/N for new file systems):
// whatever a name points at, the mount lands on the inode that was resolved
// inside the rootfs.

func bindMount(src, dst string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rw"}}
}

// Static case: the destinations are symlinks out of the rootfs before the
// container starts.
func TestEscapeMountDestinationSymlink(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	src := b.tempDir("src")
	writeFile(t, filepath.Join(src, "marker"), "bound\n")
	srcFile := filepath.Join(b.tempDir("srcfile"), "file")
	writeFile(t, srcFile, "bound file\n")

	vBind := b.victimDir("victim-bind")
	vTmpfs := b.victimDir("victim-tmpfs")
	vDeep := b.victimDir("victim-deep")
	vFile := b.victimFile("victim-file")
	b.symlink(vBind, "/mnt/bind")                    // absolute host path
	b.symlink("../../../victim-tmpfs", "/mnt/tmpfs") // relative, climbing out
	b.symlink(vDeep, "/mnt/deep")                    // a missing subpath is created below it
	b.symlink(vFile, "/mnt/file")                    // file bind
	// The targets exist inside the rootfs too, so resolving them there
	// works and the container can show where the mounts landed.
	b.mirror(vBind, "/mnt/bind")
	b.mirror("../../../victim-tmpfs", "/mnt/tmpfs")
	b.mirror(vDeep, "/mnt/deep")
	if err := os.MkdirAll(filepath.Join(b.rootfs, filepath.Dir(vFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(b.rootfs, vFile), "the image's file\n")
	b.spec.Mounts = append(b.spec.Mounts,
		bindMount(src, "/mnt/bind"),
		specs.Mount{Destination: "/mnt/tmpfs", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
		bindMount(src, "/mnt/deep/a/b"),
		bindMount(srcFile, "/mnt/file"),
	)
	dump := b.mountinfoHook()
	b.setArgs("/testinit", "probe", "/mnt/bind/marker", "/mnt/deep/a/b/marker", "/mnt/file", "/mnt/tmpfs")
	c, r := b.tryCreate(runOpts{})
	assertNoMountsOn(t, dump, r.ok(), vBind, vTmpfs, vDeep, vFile)
	if r.ok() {
		c.start()
		b.waitStatus(c.id, "stopped")
		p := decodeProbes(t, c.output())
		for _, f := range []string{"/mnt/bind/marker", "/mnt/deep/a/b/marker", "/mnt/file"} {
			if !p[f].Read.OK || p[f].Bytes == 0 {
				t.Errorf("%s: the bind mount is not visible inside the container: %+v", f, p[f])
			}
		}
		if p["/mnt/tmpfs"].FsType != unix.TMPFS_MAGIC {
			t.Errorf("/mnt/tmpfs inside is not a tmpfs: %+v", p["/mnt/tmpfs"])
		}
	} else {
		t.Logf("refused (fine):\n%s", r)
	}
	for _, v := range []string{vBind, vTmpfs, vDeep} {
		assertVictimDirUnchanged(t, v)
	}
	assertVictimFileUnchanged(t, vFile)
}

// Race: while warren runs containers, a host process keeps swapping the
// mount destination /mnt/a (a directory) with /mnt/b (a symlink to a host
// victim directory) with renameat2(RENAME_EXCHANGE), as a second container
// sharing the volume would (CVE-2021-30465's exploit). The destinations are
// /mnt/a and /mnt/a/sub/deeper (a path warren must create, CVE-2024-45310).
// Best effort: 200 runs; if a mount ever lands on the victim (seen in the
// pre-pivot mount table) or anything is created in it, the test fails.
func TestEscapeMountDestinationRenameRace(t *testing.T) {
	t.Parallel()
	const workers, runsPerWorker = 4, 50
	var created, refused atomic.Int64
	for w := 0; w < workers; w++ {
		t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			src := b.tempDir("src")
			writeFile(t, filepath.Join(src, "marker"), "bound\n")
			victim := b.victimDir("victim")
			a, link := filepath.Join(b.rootfs, "mnt", "a"), filepath.Join(b.rootfs, "mnt", "b")
			if err := os.Mkdir(a, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			b.spec.Mounts = append(b.spec.Mounts, bindMount(src, "/mnt/a"), bindMount(src, "/mnt/a/sub/deeper"))
			b.setArgs("/bin/true")

			stop := make(chan struct{})
			var swaps atomic.Int64
			racerDone := make(chan struct{})
			go func() {
				defer close(racerDone)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE) == nil {
						swaps.Add(1)
					}
				}
			}()
			for i := 0; i < runsPerWorker && !t.Failed(); i++ {
				dump := b.mountinfoHook()
				r := b.runQuick()
				if r.ok() {
					created.Add(1)
				} else {
					refused.Add(1)
				}
				assertNoMountsOn(t, dump, r.ok(), victim)
				assertVictimDirUnchanged(t, victim)
				if t.Failed() {
					t.Errorf("run %d: ESCAPE with the mount destination raced:\n%s", i, r)
				}
			}
			close(stop)
			<-racerDone
			t.Logf("%d runs, %d destination swaps", runsPerWorker, swaps.Load())
			if swaps.Load() == 0 {
				t.Errorf("the racer never swapped the destination: the race was not exercised")
			}
			b.assertNoLeftoversAll()
		})
	}
	// Runs after the parallel workers are done.
	t.Cleanup(func() {
		t.Logf("runs that completed: %d, refused (fine): %d", created.Load(), refused.Load())
	})
}

// runQuick runs the container in the foreground without a teardown per
// container (the race test makes hundreds); assertNoLeftoversAll checks
// them all at the end.
func (b *bundle) runQuick() result {
	b.t.Helper()
	b.writeSpec()
	id := newID(b.t)
	b.ids = append(b.ids, id)
	return b.warrenWith(runOpts{}, "run", "--bundle", b.dir, id)
}

func (b *bundle) assertNoLeftoversAll() {
	b.t.Helper()
	for _, id := range b.ids {
		if _, err := os.Lstat(filepath.Join(b.root, id)); !errors.Is(err, fs.ErrNotExist) {
			b.warren("delete", "--force", id)
			b.t.Errorf("leftover: state directory of %s after `run`", id)
		}
		for _, d := range containerCgroupDirs(id) {
			if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
				b.t.Errorf("leftover: cgroup directory %s", d)
			}
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err != nil {
			continue
		}
		for _, id := range b.ids {
			if strings.Contains(string(cg), "/"+id+"\n") || strings.Contains(string(cg), "/"+id+"/") {
				b.t.Errorf("leftover: process %s still in the cgroup of %s", e.Name(), id)
			}
		}
	}
	b.assertNoNewHostMounts()
}
