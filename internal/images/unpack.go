package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// OCI whiteouts (image-spec layer.md) and their overlayfs form.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// Decompress returns the uncompressed tar stream of a layer blob, whatever
// its media type says: gzip and zstd are recognised by their magic bytes,
// anything else is taken as a plain tar.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("layer: gzip: %w", err)
		}
		return z, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("layer: zstd: %w", err)
		}
		return z.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// ApplyLayer unpacks one layer, an uncompressed tar stream, into dir, an
// empty directory that becomes an overlayfs lower layer. OCI whiteouts
// become overlayfs ones: ".wh.NAME" a 0/0 character device NAME, and
// ".wh..wh..opq" the trusted.overlay.opaque xattr on its directory. Owners,
// modes (set-id and sticky bits included), xattrs, device numbers and
// modification times are kept.
//
// Nothing is written outside dir: an absolute name, a name with "..", an
// entry below a symlink (the layer's own or not) and a hard link to
// anything but an earlier entry of the same layer are refused with an
// error naming the entry. Every lookup is one path component at a time
// with O_NOFOLLOW from a directory fd, so a symlink is never followed,
// whatever the layer planted. A failed apply leaves a partial dir; callers
// unpack into a temporary directory and rename it into place on success.
//
// lowers are the unpacked layers below this one, top first: a directory
// this layer only implies (as the parent of an entry) gets the metadata it
// has there, as it would in a tree the layers are applied to in turn.
func ApplyLayer(dir string, r io.Reader, lowers ...string) error {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open layer directory %s: %w", dir, err)
	}
	defer unix.Close(root)
	a := &applier{root: root, asRoot: os.Geteuid() == 0}
	for _, l := range lowers {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open lower layer %s: %w", l, err)
		}
		defer unix.Close(fd)
		a.lowers = append(a.lowers, fd)
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("layer: read tar: %w", err)
		}
		if err := a.apply(hdr, tr); err != nil {
			return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	return a.finish()
}

type applier struct {
	root   int
	asRoot bool
	// lowers are the layers below this one (top first, fds), for the
	// metadata of implied parent directories.
	lowers    []int
	inherited []inheritedTime
	// dirs get their modification time last: adding entries changes it.
	dirs []dirTime
}

type inheritedTime struct {
	rel          string
	atime, mtime unix.Timespec
}

type dirTime struct {
	rel  string
	hdr  *tar.Header
	mode int64
}

// cleanName turns a tar entry name into a path relative to the layer root,
// refusing one that is absolute or climbs out.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute path in a layer: %w", errdefs.ErrInvalid)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("path with \"..\" in a layer: %w", errdefs.ErrInvalid)
		}
	}
	return path.Clean(name), nil
}

func (a *applier) apply(hdr *tar.Header, body io.Reader) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil // consumed by archive/tar
	}
	if rel == "." {
		// The layer's root: only its metadata.
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("the layer root is not a directory: %w", errdefs.ErrInvalid)
		}
		a.dirs = append(a.dirs, dirTime{rel: ".", hdr: hdr, mode: hdr.Mode})
		return a.metadata(a.root, "", hdr)
	}
	dirRel, base := path.Split(rel)
	parent, err := a.openDir(strings.TrimSuffix(dirRel, "/"), true)
	if err != nil {
		return err
	}
	defer unix.Close(parent)

	if base == opaqueMarker {
		return setXattrAt(parent, "", opaqueXattr, []byte("y"))
	}
	if name, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("bad whiteout name: %w", errdefs.ErrInvalid)
		}
		if err := removeAt(parent, name); err != nil {
			return err
		}
		if err := unix.Mknodat(parent, name, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("whiteout %s: mknod: %w", name, err)
		}
		return nil
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		var st unix.Stat_t
		err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := removeAt(parent, base); err != nil {
				return err
			}
			err = unix.ENOENT
		}
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(parent, base, 0o700); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		} else if err != nil {
			return err
		}
		a.dirs = append(a.dirs, dirTime{rel: rel, hdr: hdr, mode: hdr.Mode})
		return a.metadata(parent, base, hdr)
	case tar.TypeReg:
		if err := removeAt(parent, base); err != nil {
			return err
		}
		fd, err := unix.Openat(parent, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		f := os.NewFile(uintptr(fd), rel)
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
	case tar.TypeSymlink:
		if err := removeAt(parent, base); err != nil {
			return err
		}
		// The target is data: it is never followed here.
		if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || target == "." {
			return fmt.Errorf("hard link to %q, outside the layer: %w", hdr.Linkname, errdefs.ErrInvalid)
		}
		tDir, tBase := path.Split(target)
		tParent, err := a.openDir(strings.TrimSuffix(tDir, "/"), false)
		if err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		defer unix.Close(tParent)
		var st unix.Stat_t
		if err := unix.Fstatat(tParent, tBase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("hard link to %q, not an earlier entry of this layer: %w", hdr.Linkname, errdefs.ErrInvalid)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("hard link to the directory %q: %w", hdr.Linkname, errdefs.ErrInvalid)
		}
		if err := removeAt(parent, base); err != nil {
			return err
		}
		// No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
		if err := unix.Linkat(tParent, tBase, parent, base, 0); err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		return nil // a hard link shares its target's metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := removeAt(parent, base); err != nil {
			return err
		}
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(parent, base, mode|0o600, int(dev)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, errdefs.ErrNotSupported)
	}
	return a.metadata(parent, base, hdr)
}

// openDir opens the directory rel (relative to the root, "" for the root)
// one component at a time without following symlinks; with create,
// missing components are made (0755, as a tar's implied parents).
func (a *applier) openDir(rel string, create bool) (int, error) {
	fd, err := unix.Dup(a.root)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if rel == "" || rel == "." {
		return fd, nil
	}
	walked := ""
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		walked = path.Join(walked, c)
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil {
				if next, err = unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
					err = a.inherit(next, walked)
				}
			}
		}
		if err != nil {
			defer unix.Close(fd)
			var st unix.Stat_t
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				if unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
					return -1, fmt.Errorf("below the symlink %s: %w", walked, errdefs.ErrInvalid)
				}
				return -1, fmt.Errorf("%s is not a directory: %w", walked, errdefs.ErrInvalid)
			}
			return -1, fmt.Errorf("open %s: %w", walked, err)
		}
		unix.Close(fd)
		fd = next
	}
	return fd, nil
}

// inherit gives a directory the layer creates only as a parent of its
// entries the metadata the same directory has in the layers below: in the
// overlay the upper layer's directory is the one seen, and a tar's implied
// parents must not turn /usr/share from 02775 root:staff into 0755
// root:root. The lowers are looked up without following any symlink; a
// path they do not have as a directory keeps 0755 root:root.
func (a *applier) inherit(fd int, rel string) error {
	for _, lower := range a.lowers {
		lfd, err := unix.Openat2(lower, rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		})
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil // a symlink or a file on the way: not a directory below
		}
		var st unix.Stat_t
		err = unix.Fstat(lfd, &st)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(lfd)
			return nil // a whiteout or a non-directory hides what is below
		}
		defer unix.Close(lfd)
		if a.asRoot {
			if err := unix.Fchownat(fd, "", int(st.Uid), int(st.Gid), unix.AT_EMPTY_PATH); err != nil {
				return fmt.Errorf("chown %s like the layer below: %w", rel, err)
			}
		}
		if err := chmodAt(fd, "", st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s like the layer below: %w", rel, err)
		}
		src := "/proc/self/fd/" + strconv.Itoa(lfd)
		if sz, _ := unix.Listxattr(src, nil); sz > 0 {
			buf := make([]byte, sz)
			n, _ := unix.Listxattr(src, buf)
			for _, k := range strings.Split(string(buf[:n]), "\x00") {
				if k == "" || strings.HasPrefix(k, "trusted.overlay.") {
					continue
				}
				v := make([]byte, 64<<10)
				vn, err := unix.Getxattr(src, k, v)
				if err != nil {
					continue
				}
				if err := setXattrAt(fd, "", k, v[:vn]); err != nil {
					return err
				}
			}
		}
		a.inherited = append(a.inherited, inheritedTime{rel: rel, atime: st.Atim, mtime: st.Mtim})
		return nil
	}
	return nil
}

// removeAt removes name from dir if it is there and not a directory; an
// existing directory is replaced only by a directory entry (callers make
// sure).
func removeAt(dir int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil
	}
	flags := 0
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(dir, name, flags); err != nil {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	return nil
}

// metadata sets owner, mode, xattrs and times of name in dir ("" for dir).
func (a *applier) metadata(dir int, name string, hdr *tar.Header) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	isLink := hdr.Typeflag == tar.TypeSymlink
	if a.asRoot {
		if err := unix.Fchownat(dir, name, hdr.Uid, hdr.Gid, flags); err != nil {
			return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	if !isLink {
		// After chown, which clears the set-id bits.
		if err := chmodAt(dir, name, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod %#o: %w", hdr.Mode&0o7777, err)
		}
	}
	for k, v := range hdr.PAXRecords {
		x, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := setXattrAt(dir, name, x, []byte(v)); err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		return setTimes(dir, name, hdr, flags)
	}
	return nil
}

// chmodAt changes the mode of a non-symlink through an O_PATH handle
// (fchmodat has no AT_SYMLINK_NOFOLLOW before Linux 6.6).
func chmodAt(dir int, name string, mode uint32) error {
	fd := dir
	if name != "" {
		var err error
		fd, err = unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// setXattrAt sets an xattr on name in dir without following a symlink.
func setXattrAt(dir int, name, key string, value []byte) error {
	p := "/proc/self/fd/" + strconv.Itoa(dir)
	var err error
	if name == "" {
		err = unix.Setxattr(p, key, value, 0) // the fd's own file, through the magic link
	} else {
		err = unix.Lsetxattr(p+"/"+name, key, value, 0)
	}
	if err != nil {
		return fmt.Errorf("set xattr %s: %w", key, err)
	}
	return nil
}

func setTimes(dir int, name string, hdr *tar.Header, flags int) error {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(dir, name, ts, flags); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// finish sets the directories' times, deepest first.
func (a *applier) finish() error {
	for i := len(a.inherited) - 1; i >= 0; i-- {
		d := a.inherited[i]
		fd, err := a.openDir(d.rel, false)
		if err != nil {
			continue
		}
		unix.UtimesNanoAt(fd, "", []unix.Timespec{d.atime, d.mtime}, unix.AT_EMPTY_PATH)
		unix.Close(fd)
	}
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		rel := d.rel
		dirPath, base := path.Split(rel)
		if rel == "." {
			dirPath, base = "", ""
		}
		fd, err := a.openDir(strings.TrimSuffix(dirPath, "/"), false)
		if err != nil {
			continue // replaced by a later entry
		}
		flags := unix.AT_SYMLINK_NOFOLLOW
		if base == "" {
			flags |= unix.AT_EMPTY_PATH
		}
		err = setTimes(fd, base, d.hdr, flags)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("layer entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}
