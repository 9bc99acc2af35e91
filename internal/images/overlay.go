package images

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// MountOverlay mounts an overlayfs on target with lowers (top layer
// first), and upper and work for a writable one. The lower layers are
// added one fsconfig call each ("lowerdir+", Linux 6.8), so an image of any
// depth mounts: the classic comma-separated option is capped at a page
// (~4 KiB, some 60 layers of store paths). On an older kernel it falls back
// to that option.
func MountOverlay(target string, lowers []string, upper, work string) error {
	if len(lowers) == 0 {
		return fmt.Errorf("overlay on %s: no layers: %w", target, errdefs.ErrInvalid)
	}
	for _, l := range lowers {
		if strings.ContainsAny(l, ",:\\") {
			return fmt.Errorf("overlay on %s: layer path %q has a character overlayfs options cannot carry: %w", target, l, errdefs.ErrInvalid)
		}
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return mountOverlayLegacy(target, lowers, upper, work)
	}
	defer unix.Close(fd)
	set := func(k, v string) error {
		if err := unix.FsconfigSetString(fd, k, v); err != nil {
			return fmt.Errorf("overlay on %s: %s=%s: %w", target, k, v, err)
		}
		return nil
	}
	for _, l := range lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			if errors.Is(err, unix.EINVAL) && l == lowers[0] {
				return mountOverlayLegacy(target, lowers, upper, work)
			}
			return fmt.Errorf("overlay on %s: layer %s: %w", target, l, err)
		}
	}
	if upper != "" {
		if err := set("upperdir", upper); err != nil {
			return err
		}
		if err := set("workdir", work); err != nil {
			return err
		}
	}
	if err := set("source", "warren"); err != nil {
		return err
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("overlay on %s: create: %w", target, err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("overlay on %s: fsmount: %w", target, err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("overlay on %s: attach: %w", target, err)
	}
	return nil
}

func mountOverlayLegacy(target string, lowers []string, upper, work string) error {
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay on %s: %d layers do not fit in a mount option on this kernel (no lowerdir+ before Linux 6.8): %w", target, len(lowers), errdefs.ErrNotSupported)
	}
	if err := unix.Mount("warren", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay on %s: %w", target, err)
	}
	return nil
}

// MountImage mounts img for a container under dir: dir/rootfs is an
// overlay of the image's snapshots with dir/upper and dir/work, which
// hold everything the container writes.
func (s *Store) MountImage(img *Image, dir string) (string, error) {
	var lowers []string
	for i := len(img.Layers) - 1; i >= 0; i-- {
		p := s.SnapshotPath(img.Layers[i].ChainID)
		if !exists(p) {
			return "", fmt.Errorf("image %s: layer %s is not unpacked (pull or import it again): %w", img.Name, img.Layers[i].DiffID, errdefs.ErrNotFound)
		}
		lowers = append(lowers, p)
	}
	if len(lowers) == 0 {
		// An image without layers: an empty lower.
		empty := filepath.Join(s.root, "snapshots", "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", err
		}
		lowers = append(lowers, empty)
	}
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := MountOverlay(rootfs, lowers, filepath.Join(dir, "upper"), filepath.Join(dir, "work")); err != nil {
		return "", err
	}
	return rootfs, nil
}
