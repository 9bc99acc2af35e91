package linux

import (
	"strings"

	"golang.org/x/sys/unix"
)

// MountOptions is the parsed form of an OCI mounts[].options list.
type MountOptions struct {
	Flags       uintptr // flags for mount(2)
	ClearFlags  uintptr // flags explicitly turned off (rw, suid, dev, exec, ...)
	Propagation []uintptr
	// Recursive attributes for mount_setattr(2) with AT_RECURSIVE (rro, rnosuid, ...).
	RecAttrSet, RecAttrClr uint64
	Data                   []string // options passed to the filesystem
	TmpCopyUp              bool
	// RecursiveIDMap: the ridmap option (every mount of an rbind tree is
	// id-mapped, see IDMapTree). idmap and ridmap are never passed to
	// mount(2).
	RecursiveIDMap bool
}

var flagOpts = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"loud":          {true, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

var propagationOpts = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"shared":      unix.MS_SHARED,
	"slave":       unix.MS_SLAVE,
	"unbindable":  unix.MS_UNBINDABLE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

var recAttrOpts = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro":            {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":            {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {false, unix.MOUNT_ATTR_NODEV},
	"rdev":           {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {true, unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {false, unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":    {true, unix.MOUNT_ATTR_RELATIME},
	"rnoatime":       {false, unix.MOUNT_ATTR_NOATIME},
	"ratime":         {true, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime":   {false, unix.MOUNT_ATTR_STRICTATIME},
	"rnostrictatime": {true, unix.MOUNT_ATTR_STRICTATIME},
	"rnosymfollow":   {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// ParseMountOptions splits OCI mount options into mount(2) flags,
// propagation changes, recursive attributes and filesystem data. Options it
// does not know are passed to the filesystem as data, as runc does.
func ParseMountOptions(opts []string) MountOptions {
	var m MountOptions
	for _, o := range opts {
		if f, ok := flagOpts[o]; ok {
			if f.clear {
				m.Flags &^= f.flag
				m.ClearFlags |= f.flag
			} else {
				m.Flags |= f.flag
				m.ClearFlags &^= f.flag
			}
			continue
		}
		if p, ok := propagationOpts[o]; ok {
			m.Propagation = append(m.Propagation, p)
			continue
		}
		if a, ok := recAttrOpts[o]; ok {
			if a.clear {
				m.RecAttrClr |= a.attr
				m.RecAttrSet &^= a.attr
			} else {
				m.RecAttrSet |= a.attr
				m.RecAttrClr &^= a.attr
			}
			continue
		}
		if o == "idmap" || o == "ridmap" {
			m.RecursiveIDMap = m.RecursiveIDMap || o == "ridmap"
			continue
		}
		if o == "tmpcopyup" {
			m.TmpCopyUp = true
			continue
		}
		m.Data = append(m.Data, o)
	}
	return m
}

// DataString joins filesystem data options for mount(2).
func (o MountOptions) DataString() string { return strings.Join(o.Data, ",") }

// PropagationFlags parses a linux.rootfsPropagation value.
func PropagationFlags(s string) (uintptr, bool) {
	p, ok := propagationOpts[s]
	return p, ok
}
