package engine

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/images"
)

// ImageView is an image as the API shows it.
func ImageView(i *images.Image) api.Image {
	return api.Image{Name: i.Name, Manifest: i.Manifest.String(), Config: i.Config.String(), Size: i.Size,
		Created: i.Created, Layers: len(i.Layers), Platform: i.Platform}
}

// Pull stores an image from a registry.
func (e *Engine) Pull(ref string, insecure bool, progress func(images.Progress)) (*api.Image, error) {
	img, name, err := images.FromRegistry(ref, images.PullOptions{Insecure: insecure})
	if err != nil {
		return nil, err
	}
	return e.addImage(name, img, "pull", progress)
}

// Import stores an image from a source on the daemon's file system
// (images.FromSource); name "" takes the source's.
func (e *Engine) Import(source, name string, progress func(images.Progress)) (*api.Image, error) {
	img, def, cleanup, err := images.FromSource(source)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if name == "" {
		name = def
	}
	return e.addImage(name, img, "import", progress)
}

func (e *Engine) addImage(name string, img v1.Image, action string, progress func(images.Progress)) (*api.Image, error) {
	stored, err := e.images.Add(name, img, progress)
	if err != nil {
		return nil, err
	}
	v := ImageView(stored)
	e.emit("image", action, v.Manifest, v.Name, nil)
	return &v, nil
}

// ListImages lists the stored images.
func (e *Engine) ListImages() ([]api.Image, error) {
	imgs, err := e.images.List()
	if err != nil {
		return nil, err
	}
	out := []api.Image{}
	for i := range imgs {
		out = append(out, ImageView(&imgs[i]))
	}
	return out, nil
}

// InspectImage returns an image and its config.
func (e *Engine) InspectImage(name string) (*api.Image, *v1.ConfigFile, error) {
	img, err := e.images.Get(name)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := e.images.Config(img)
	if err != nil {
		return nil, nil, err
	}
	v := ImageView(img)
	return &v, cfg, nil
}

// PruneImages removes blobs and layers no image uses.
func (e *Engine) PruneImages() ([]string, error) { return e.images.Prune() }

// RemoveImage forgets an image; refused while a container uses it.
func (e *Engine) RemoveImage(name string) error {
	img, err := e.images.Get(name)
	if err != nil {
		return err
	}
	rs, err := e.db.List()
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.ImageID == img.Manifest.String() && r.Image == img.Name {
			return fmt.Errorf("image %s is used by container %s (%s): remove the container first: %w", name, r.Name, r.ID[:12], errdefs.ErrState)
		}
	}
	if err := e.images.Remove(name); err != nil {
		return err
	}
	e.emit("image", "remove", img.Manifest.String(), name, nil)
	return nil
}
