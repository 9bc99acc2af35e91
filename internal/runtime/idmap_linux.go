package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/linux"
	"github.com/warren-runtime/warren/internal/runtime/nsexec"
	"github.com/warren-runtime/warren/internal/spec"
)

// idMapPlan says how the parent writes a new user namespace's id maps. Root
// writes any map itself. An unprivileged user may write only a map of its
// own id (and, for gid_map, only after denying setgroups(2)); anything more
// goes through the setuid helpers newuidmap/newgidmap, which check the
// ranges /etc/subuid and /etc/subgid grant the user.
type idMapPlan struct {
	uidHelper, gidHelper string // helper path; "" means write the map directly
	denySetgroups        bool   // write "deny" to setgroups before gid_map
}

// planIDMaps checks, before anything is started, that the caller may write
// the config's maps, and how: every refusal is reported here, naming the
// mapping and the missing grant, instead of as a helper's exit status.
func planIDMaps(s *specs.Spec) (*idMapPlan, error) {
	p := &idMapPlan{}
	euid, egid := os.Geteuid(), os.Getegid()
	if euid == 0 {
		return p, nil
	}
	name := strconv.Itoa(euid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	var err error
	if !selfMap(s.Linux.UIDMappings, euid) {
		p.uidHelper, err = helperFor("newuidmap", "/etc/subuid", "linux.uidMappings", "uid", s.Linux.UIDMappings, name, euid)
		if err != nil {
			return nil, err
		}
	}
	if selfMap(s.Linux.GIDMappings, egid) {
		p.denySetgroups = true
	} else {
		p.gidHelper, err = helperFor("newgidmap", "/etc/subgid", "linux.gidMappings", "gid", s.Linux.GIDMappings, name, egid)
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// selfMap reports whether maps is the one line an unprivileged process may
// write itself: its own id, once.
func selfMap(maps []specs.LinuxIDMapping, id int) bool {
	return len(maps) == 1 && maps[0].Size == 1 && int64(maps[0].HostID) == int64(id)
}

// helperFor checks maps against the user's subordinate ids in file and
// finds the helper that will write them.
func helperFor(helper, file, field, kind string, maps []specs.LinuxIDMapping, name string, self int) (string, error) {
	ranges, err := linux.SubIDs(file, name, self)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	for i, m := range maps {
		if m.Size == 1 && int64(m.HostID) == int64(self) {
			continue // the helpers allow the caller's own id
		}
		if len(ranges) == 0 {
			return "", fmt.Errorf("%s[%d]: host %ss %d-%d are not the caller's own %s (%d), and user %s has no entry in %s; add one (e.g. \"%s:100000:65536\") or map only %s %d with size 1: %w",
				field, i, kind, m.HostID, uint64(m.HostID)+uint64(m.Size)-1, kind, self, name, file, name, kind, self, errdefs.ErrInvalid)
		}
		ok := false
		for _, r := range ranges {
			if r.Contains(uint64(m.HostID), uint64(m.Size)) {
				ok = true
				break
			}
		}
		if !ok {
			return "", fmt.Errorf("%s[%d]: host %ss %d-%d are outside the ranges %s grants user %s (%s): %w",
				field, i, kind, m.HostID, uint64(m.HostID)+uint64(m.Size)-1, file, name, formatRanges(ranges), errdefs.ErrInvalid)
		}
	}
	path, err := exec.LookPath(helper)
	if err != nil {
		return "", fmt.Errorf("%s: an unprivileged user needs %s (Debian package uidmap) to map more than its own %s: %w", field, helper, kind, err)
	}
	return path, nil
}

func formatRanges(rs []linux.SubIDRange) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%d-%d", r.Start, r.Start+r.Count-1))
	}
	return strings.Join(parts, ", ")
}

// write writes the maps for the new user namespace of pid.
func (p *idMapPlan) write(proc *linux.Proc, pid int, s *specs.Spec) error {
	ps := strconv.Itoa(pid)
	if err := p.writeOne(proc, ps, "uid_map", p.uidHelper, "linux.uidMappings", s.Linux.UIDMappings); err != nil {
		return err
	}
	if p.denySetgroups {
		if err := proc.Write(ps+"/setgroups", "deny"); err != nil {
			return fmt.Errorf("linux.gidMappings: deny setgroups (needed to map the caller's own gid): %w", err)
		}
	}
	return p.writeOne(proc, ps, "gid_map", p.gidHelper, "linux.gidMappings", s.Linux.GIDMappings)
}

func (p *idMapPlan) writeOne(proc *linux.Proc, pid, file, helper, field string, maps []specs.LinuxIDMapping) error {
	if helper == "" {
		if err := proc.Write(pid+"/"+file, formatMap(maps)); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		return nil
	}
	args := []string{pid}
	for _, m := range maps {
		args = append(args, strconv.FormatUint(uint64(m.ContainerID), 10), strconv.FormatUint(uint64(m.HostID), 10), strconv.FormatUint(uint64(m.Size), 10))
	}
	cmd := exec.Command(helper, args...)
	err := nsexec.Unblocked(cmd)
	var out []byte
	if err == nil {
		out, err = cmd.CombinedOutput()
	}
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w: %s", field, helper, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// idmappedMounts prepares the id-mapped bind mounts of s (mounts with the
// idmap or ridmap option, or with their own uidMappings/gidMappings): for
// each, a detached clone of the source, id-mapped through a user namespace
// with the mount's maps or, without them, the container's. It is done here,
// in the runtime, because id-mapping a host filesystem needs CAP_SYS_ADMIN
// in the initial user namespace, which the init (in the container's user
// namespace) lacks; the init attaches the clones. The result is indexed by
// mount; the caller closes the files.
func idmappedMounts(s *specs.Spec, bundle string) (_ map[int]*os.File, err error) {
	out := map[int]*os.File{}
	userns := map[string]*os.File{}
	defer func() {
		for _, f := range userns {
			f.Close()
		}
		if err != nil {
			for _, f := range out {
				f.Close()
			}
		}
	}()
	for i, m := range s.Mounts {
		if _, ok := spec.IDMapped(m); !ok {
			continue
		}
		o := linux.ParseMountOptions(m.Options)
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("mounts[%d] (%s): id-mapped mounts need root on the host (CAP_SYS_ADMIN over the host's filesystems), not available to a rootless container: %w", i, m.Destination, errdefs.ErrNotSupported)
		}
		uids, gids := m.UIDMappings, m.GIDMappings
		if len(uids) == 0 && len(gids) == 0 {
			uids, gids = s.Linux.UIDMappings, s.Linux.GIDMappings
		}
		key := formatMap(uids) + "/" + formatMap(gids)
		ns, ok := userns[key]
		if !ok {
			if ns, err = newUsernsFd(uids, gids); err != nil {
				return nil, fmt.Errorf("mounts[%d] (%s): %w", i, m.Destination, err)
			}
			userns[key] = ns
		}
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
		tree, err := linux.IDMapTree(src, o.Flags&unix.MS_REC != 0, o.RecursiveIDMap, int(ns.Fd()))
		if err != nil {
			return nil, fmt.Errorf("mounts[%d] (%s): %w", i, m.Destination, err)
		}
		out[i] = tree
	}
	return out, nil
}

// newUsernsFd returns a new user namespace with the given maps, held by a
// short-lived process (the nsexec constructor in hold mode, which never
// starts the Go runtime) that exits once the namespace is open.
func newUsernsFd(uids, gids []specs.LinuxIDMapping) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	conv := func(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		var out []syscall.SysProcIDMap
		for _, m := range ms {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		return out
	}
	cmd := &exec.Cmd{
		Path:  "/proc/self/exe",
		Args:  []string{"warren-userns"},
		Env:   []string{nsexec.EnvUsernsHold + "=1"},
		Stdin: r,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: conv(uids),
			GidMappings: conv(gids),
			Pdeathsig:   unix.SIGKILL,
		},
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("create a user namespace for the id-mapping: %w", err)
	}
	defer func() {
		w.Close()
		cmd.Wait()
	}()
	f, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user")
	if err != nil {
		return nil, fmt.Errorf("open the id-mapping user namespace: %w", err)
	}
	return f, nil
}
