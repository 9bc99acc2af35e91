//go:build linux

package engines

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// The images the tests run. Both are built from the host's static busybox
// into one OCI image-layout tarball (no registry involved) and share their
// single layer; they differ only in their configs.
const (
	busyboxImage = "docker.io/warren/busybox:e2e"
	// pauseImage is the CRI sandbox image (containerd's sandbox_image): its
	// only job is to hold the pod's namespaces, so it sleeps "forever".
	pauseImage = "docker.io/warren/pause:e2e"
)

const (
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type blob struct {
	digest string // "sha256:<hex>"
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), data: data}
}

// imageEpoch is the mtime of every layer entry, so that the layer (and so
// every digest) is the same from one run to the next.
var imageEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// busyboxLayer returns an uncompressed layer tar: bin/busybox (the host's
// static binary) with a symlink per applet, and the few files an image
// usually has (/etc/passwd and /etc/group so that engines can resolve user
// names, a sticky /tmp).
func busyboxLayer(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) error {
		h.ModTime = imageEpoch
		h.Format = tar.FormatPAX
		return tw.WriteHeader(h)
	}
	for _, d := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"dev/", 0o755}, {"etc/", 0o755}, {"proc/", 0o555}, {"root/", 0o700}, {"sys/", 0o555}, {"tmp/", 0o1777}, {"var/", 0o755}} {
		if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode}); err != nil {
			return nil, err
		}
	}
	if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a == "busybox" || strings.ContainsRune(a, '/') {
			continue
		}
		if err := hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: path.Join("bin", a), Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for _, name := range []string{"etc/group", "etc/passwd"} {
		data := files[name]
		if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type imageSpec struct {
	name       string // full reference, e.g. docker.io/warren/busybox:e2e
	entrypoint []string
	cmd        []string
}

// buildImageArchive writes an OCI image layout, as a tar stream, holding one
// image per spec (all sharing the busybox layer). Each manifest carries the
// io.containerd.image.name annotation, which `ctr images import` uses as the
// image's name.
func buildImageArchive(dest, busybox string, images []imageSpec) error {
	layerData, err := busyboxLayer(busybox)
	if err != nil {
		return err
	}
	layer := newBlob(layerData)
	blobs := []blob{layer}
	plat := &platform{Architecture: runtime.GOARCH, OS: "linux"}
	var manifests []descriptor
	for _, img := range images {
		cfg := map[string]any{
			"created":      imageEpoch.Format(time.RFC3339),
			"architecture": plat.Architecture,
			"os":           plat.OS,
			"config": map[string]any{
				"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
				"Entrypoint": img.entrypoint,
				"Cmd":        img.cmd,
				"WorkingDir": "/",
			},
			"rootfs": map[string]any{
				"type":     "layers",
				"diff_ids": []string{layer.digest},
			},
			"history": []map[string]any{{
				"created":    imageEpoch.Format(time.RFC3339),
				"created_by": "warren integration/engines: /bin/busybox from the host",
			}},
		}
		cfgJSON, err := json.Marshal(cfg)
		if err != nil {
			return err
		}
		cfgBlob := newBlob(cfgJSON)
		manifest := map[string]any{
			"schemaVersion": 2,
			"mediaType":     mediaTypeManifest,
			"config":        descriptor{MediaType: mediaTypeConfig, Digest: cfgBlob.digest, Size: int64(len(cfgJSON))},
			"layers":        []descriptor{{MediaType: mediaTypeLayer, Digest: layer.digest, Size: int64(len(layerData))}},
		}
		mJSON, err := json.Marshal(manifest)
		if err != nil {
			return err
		}
		mBlob := newBlob(mJSON)
		blobs = append(blobs, cfgBlob, mBlob)
		tag := img.name[strings.LastIndex(img.name, ":")+1:]
		manifests = append(manifests, descriptor{
			MediaType: mediaTypeManifest,
			Digest:    mBlob.digest,
			Size:      int64(len(mJSON)),
			Platform:  plat,
			Annotations: map[string]string{
				"io.containerd.image.name":          img.name,
				"org.opencontainers.image.ref.name": tag,
			},
		})
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeIndex,
		"manifests":     manifests,
	})
	if err != nil {
		return err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: imageEpoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: imageEpoch}); err != nil {
			return err
		}
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.digest] {
			continue
		}
		seen[b.digest] = true
		if err := add("blobs/sha256/"+strings.TrimPrefix(b.digest, "sha256:"), b.data); err != nil {
			return err
		}
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dest, buf.Bytes(), 0o644)
}
