//go:build linux

package engines2

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostPathGuard snapshots some host paths (each with everything below it)
// before an engine runs, so that cleanup removes what appeared there
// since: new files (unless dirsOnly), then new directories once empty, and
// new parents of the roots. What existed before stays, and so does
// anything a concurrent user of the same directory put in it while the
// test ran, when dirsOnly (a directory that is not empty is left alone).
type hostPathGuard struct {
	roots    []string
	dirsOnly bool
	existed  map[string]bool
}

// guardHostPaths guards roots of which every new file is the engine's.
func guardHostPaths(roots ...string) *hostPathGuard { return newGuard(false, roots) }

// guardHostDirs guards roots shared with other users (a containerd of
// another test suite puts its shim sockets in /run/containerd/s too): only
// new directories that end up empty are removed.
func guardHostDirs(roots ...string) *hostPathGuard { return newGuard(true, roots) }

func newGuard(dirsOnly bool, roots []string) *hostPathGuard {
	g := &hostPathGuard{roots: roots, dirsOnly: dirsOnly, existed: map[string]bool{}}
	for _, r := range roots {
		for p := r; p != "/"; p = filepath.Dir(p) {
			if _, err := os.Lstat(p); err == nil {
				g.existed[p] = true
			}
		}
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil {
				g.existed[p] = true
			}
			return nil
		})
	}
	return g
}

// removeCreated removes what appeared under the guarded roots and returns
// the paths removed.
func (g *hostPathGuard) removeCreated(t *testing.T) []string {
	var created []string
	seen := map[string]bool{}
	for _, r := range g.roots {
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && !g.existed[p] && !seen[p] {
				seen[p] = true
				created = append(created, p)
			}
			return nil
		})
		for p := filepath.Dir(r); p != "/"; p = filepath.Dir(p) {
			if _, err := os.Lstat(p); err == nil && !g.existed[p] && !seen[p] {
				seen[p] = true
				created = append(created, p)
			}
		}
	}
	// Deepest first, so directories are empty when their turn comes.
	sort.Slice(created, func(i, j int) bool {
		return strings.Count(created[i], "/") > strings.Count(created[j], "/")
	})
	var removed []string
	for _, p := range created {
		st, err := os.Lstat(p)
		if err != nil || (g.dirsOnly && !st.IsDir()) {
			continue
		}
		if err := os.Remove(p); err != nil {
			if !st.IsDir() {
				t.Errorf("cleanup: removing %s, which the engine created: %v", p, err)
			}
			continue // a directory that still holds something not ours
		}
		removed = append(removed, p)
	}
	sort.Strings(removed)
	return removed
}

// processesUnder returns the PIDs of processes whose command line mentions
// dir: the daemons, shims and conmons started for this test (their argv
// carries their private state paths, all under dir).
func processesUnder(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killProcessesUnder sends SIGKILL to each process processesUnder finds,
// by PID, and waits for them to go.
func killProcessesUnder(t *testing.T, dir string) {
	pids := processesUnder(dir)
	if len(pids) == 0 {
		return
	}
	for _, pid := range pids {
		t.Logf("cleanup: killing leftover process %d (%s)", pid, cmdlineOf(pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	pollUntil(10*time.Second, func() bool { return len(processesUnder(dir)) == 0 })
}

func cmdlineOf(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// unmountUnder detaches every mount point at or below dir, deepest first
// (storage drivers mount overlays, shm and netns files under their roots).
func unmountUnder(t *testing.T, dir string) {
	for range 3 {
		mps := mountPointsUnder(dir)
		if len(mps) == 0 {
			return
		}
		for _, mp := range mps {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
				t.Logf("cleanup: umount %s: %v", mp, err)
			}
		}
	}
}

func mountPointsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	return mps
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupDirs returns the directory of cgroup path rel (e.g. "/we2-podman-x")
// in every mounted cgroup hierarchy that has it.
func cgroupDirs(rel string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		_, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf := strings.Fields(post)
		if len(pf) == 0 || (pf[0] != "cgroup" && pf[0] != "cgroup2") {
			continue
		}
		fields := strings.Fields(line)
		root, mp := unescapeMountinfo(fields[3]), unescapeMountinfo(fields[4])
		// Only hierarchies mounted at their root: a rel path is absolute
		// in the hierarchy.
		if root != "/" {
			continue
		}
		d := filepath.Join(mp, rel)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// removeCgroupTree removes the cgroup rel and everything below it in every
// hierarchy (a cgroup directory is removed with rmdir, children first). It
// reports the directories that still exist, for example because a process
// still lives in them.
func removeCgroupTree(rel string) []string {
	var left []string
	for _, top := range cgroupDirs(rel) {
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			var err error
			for i := 0; i < 20; i++ {
				if err = unix.Rmdir(d); err == nil || err == unix.ENOENT {
					break
				}
				// EBUSY right after the last process left: the kernel
				// frees the css asynchronously.
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil && err != unix.ENOENT {
				left = append(left, d+": "+err.Error())
			}
		}
	}
	return left
}
