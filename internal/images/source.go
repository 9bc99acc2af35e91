package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// refNameAnnotation tags a manifest in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Platform is the platform images are chosen for from a multi-platform
// index: this machine's.
func Platform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}
	if goruntime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// FromLayout opens the image tagged ref (or the only one, when ref is
// empty) in the OCI image layout at dir. A multi-platform index is
// resolved to this machine's platform.
func FromLayout(dir, ref string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: index.json: %w", dir, err)
	}
	var picked []v1.Descriptor
	for _, d := range im.Manifests {
		if ref == "" || d.Annotations[refNameAnnotation] == ref {
			picked = append(picked, d)
		}
	}
	switch {
	case len(picked) == 0 && ref != "":
		return nil, fmt.Errorf("OCI layout %s: no image tagged %q: %w", dir, ref, errdefs.ErrNotFound)
	case len(picked) == 0:
		return nil, fmt.Errorf("OCI layout %s: no image in index.json: %w", dir, errdefs.ErrNotFound)
	case len(picked) > 1:
		return nil, fmt.Errorf("OCI layout %s: %d images; name one as %s:<ref>: %w", dir, len(picked), dir, errdefs.ErrInvalid)
	}
	d := picked[0]
	if d.MediaType.IsIndex() {
		sub, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
		}
		return pickPlatform(sub, dir)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return img, nil
}

func pickPlatform(idx v1.ImageIndex, what string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	want := Platform()
	var seen []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			continue
		}
		seen = append(seen, d.Platform.String())
		if d.Platform.Satisfies(want) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("%s: no image for %s (the index has %s): %w", what, want.String(), strings.Join(seen, ", "), errdefs.ErrNotFound)
}

// FromDockerArchive opens the image tagged tag (or the only one) in a
// `docker save` archive.
func FromDockerArchive(file, tag string) (v1.Image, error) {
	var t *name.Tag
	if tag != "" {
		tt, err := name.NewTag(tag)
		if err != nil {
			return nil, fmt.Errorf("docker archive %s: tag %q: %w", file, tag, errdefs.ErrInvalid)
		}
		t = &tt
	}
	img, err := tarball.ImageFromPath(file, t)
	if err != nil {
		return nil, fmt.Errorf("docker archive %s: %w", file, err)
	}
	return img, nil
}

// ExtractLayoutTar unpacks an OCI layout archive (oci-archive) into dir:
// regular files and directories only, every name inside dir.
func ExtractLayoutTar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("OCI archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("OCI archive %s: %w", file, err)
		}
		rel, err := cleanName(h.Name)
		if err != nil {
			return fmt.Errorf("OCI archive %s: entry %q: %w", file, h.Name, err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("OCI archive %s: entry %q: %w", file, h.Name, err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("OCI archive %s: entry %q: only files and directories belong in an image layout: %w", file, h.Name, errdefs.ErrInvalid)
		}
	}
}

// PullOptions are the inputs of a registry pull.
type PullOptions struct {
	// Insecure allows plain HTTP (and unverified TLS) registries.
	Insecure bool
}

// FromRegistry resolves ref on its registry, with credentials from the
// usual ~/.docker/config.json (authn.DefaultKeychain), choosing this
// machine's platform from a multi-platform index. Layers are fetched when
// the store reads them.
func FromRegistry(ref string, o PullOptions) (v1.Image, string, error) {
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, "", fmt.Errorf("image reference %q: %w", ref, errdefs.ErrInvalid)
	}
	ropts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithPlatform(Platform())}
	if o.Insecure {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = insecureTLS()
		ropts = append(ropts, remote.WithTransport(tr))
	}
	img, err := remote.Image(r, ropts...)
	if err != nil {
		return nil, "", fmt.Errorf("pull %s: %w", ref, err)
	}
	return img, r.Name(), nil
}

// SourceName is the name an imported image gets when none is given.
func SourceName(kind, location, ref string) string {
	if ref != "" {
		return ref
	}
	return kind + ":" + path.Base(location)
}

// FromSource opens an import source — oci:DIR[:REF],
// oci-archive:FILE[:REF], docker-archive:FILE[:TAG], or a bare DIR (an
// OCI layout) — and returns the image, the name it gets when none is
// given, and a cleanup to call once the image is stored.
func FromSource(src string) (v1.Image, string, func(), error) {
	nop := func() {}
	kind, rest, ok := strings.Cut(src, ":")
	if !ok || (kind != "oci" && kind != "oci-archive" && kind != "docker-archive") {
		kind, rest = "oci", src
	}
	// LOCATION[:REF]: the shortest prefix that exists is the location,
	// so a ref may hold colons ("image.tar:example.org/app:v1").
	location, ref := rest, ""
	if _, err := os.Stat(rest); err != nil {
		for i := strings.Index(rest, ":"); i > 0; {
			if _, err := os.Stat(rest[:i]); err == nil {
				location, ref = rest[:i], rest[i+1:]
				break
			}
			j := strings.Index(rest[i+1:], ":")
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	var img v1.Image
	var err error
	cleanup := nop
	switch kind {
	case "oci":
		img, err = FromLayout(location, ref)
	case "oci-archive":
		tmp, terr := os.MkdirTemp("", "warren-oci-")
		if terr != nil {
			return nil, "", nop, terr
		}
		cleanup = func() { os.RemoveAll(tmp) }
		if err = ExtractLayoutTar(location, tmp); err == nil {
			img, err = FromLayout(tmp, ref)
		}
	case "docker-archive":
		img, err = FromDockerArchive(location, ref)
	}
	if err != nil {
		cleanup()
		return nil, "", nop, err
	}
	return img, SourceName(kind, location, ref), cleanup, nil
}
