package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// DefaultRoot is where the engine keeps images unless configured.
const DefaultRoot = "/var/lib/warren"

// On disk, under the root:
//
//	blobs/sha256/<hex>     manifests, configs and compressed layers, by
//	                       digest, written to ingest/ first and renamed
//	                       here only once their digest and size checked out
//	ingest/                blobs being written (removed on failure)
//	snapshots/<hex>/       one layer unpacked in overlayfs form, named by
//	                       its chain ID (the layer's diff ID, the digest of
//	                       its uncompressed tar, chained with those below
//	                       it, as in the image spec): a directory the layer
//	                       only implies takes its metadata from the layers
//	                       below, so a snapshot depends on them. Images
//	                       sharing base layers share those snapshots.
//	                       Unpacked in snapshots/tmp-*, renamed on success.
//	meta.db                bbolt: bucket "images", image name -> Image JSON
//
// A blob or snapshot no image names is garbage (Prune removes it). The
// database is opened per operation (bbolt locks it), so concurrent
// warrenctl processes serialise their metadata updates; blob and snapshot
// writes are atomic renames, safe to race.
type Store struct {
	root string
}

// Image is the metadata of one stored image.
type Image struct {
	Name     string    `json:"name"`
	Manifest v1.Hash   `json:"manifest"`
	Config   v1.Hash   `json:"config"`
	Layers   []Layer   `json:"layers"`
	Size     int64     `json:"size"` // compressed layers + config + manifest
	Created  time.Time `json:"created"`
	Platform string    `json:"platform,omitempty"`
}

// Layer names a layer's blob and its snapshot.
type Layer struct {
	Blob    v1.Hash `json:"blob"`
	DiffID  v1.Hash `json:"diffID"`
	ChainID v1.Hash `json:"chainID"`
	Size    int64   `json:"size"`
}

// ChainID is the image spec's identifier of a stack of layers: the first
// layer's diff ID, then sha256(parent chain ID + " " + diff ID).
func ChainID(parent, diffID v1.Hash) v1.Hash {
	if parent.Hex == "" {
		return diffID
	}
	sum := sha256.Sum256([]byte(parent.String() + " " + diffID.String()))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

var imagesBucket = []byte("images")

// Open makes the store's directories under root if needed.
func Open(root string) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "ingest", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store %s: %w", root, err)
		}
	}
	return &Store{root: root}, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) db(write bool) (*bolt.DB, error) {
	db, err := bolt.Open(filepath.Join(s.root, "meta.db"), 0o600, &bolt.Options{Timeout: 30 * time.Second, ReadOnly: false})
	if err != nil {
		return nil, fmt.Errorf("image store %s: open meta.db: %w", s.root, err)
	}
	if write {
		if err := db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(imagesBucket)
			return err
		}); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// BlobPath is where a verified blob lives.
func (s *Store) BlobPath(d v1.Hash) string {
	return filepath.Join(s.root, "blobs", d.Algorithm, d.Hex)
}

// SnapshotPath is the directory of a layer's snapshot, by chain ID.
func (s *Store) SnapshotPath(chainID v1.Hash) string {
	return filepath.Join(s.root, "snapshots", chainID.Hex)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func checkDigest(d v1.Hash) error {
	if d.Algorithm != "sha256" || len(d.Hex) != 64 {
		return fmt.Errorf("digest %q: only sha256 is supported: %w", d, errdefs.ErrNotSupported)
	}
	if _, err := hex.DecodeString(d.Hex); err != nil {
		return fmt.Errorf("digest %q: %w", d, errdefs.ErrInvalid)
	}
	return nil
}

// PutBlob stores r's content as blob d, checking that it hashes to d and,
// if size >= 0, has that size. It reports whether the blob was new. A blob
// already stored is not read again; a bad one is never renamed into place.
func (s *Store) PutBlob(d v1.Hash, size int64, r io.Reader) (bool, error) {
	if err := checkDigest(d); err != nil {
		return false, err
	}
	dst := s.BlobPath(d)
	if exists(dst) {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "ingest"), d.Hex+"-*")
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", d, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("blob %s: write: %w", d, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return false, fmt.Errorf("blob %s: content has digest sha256:%s: %w", d, got, errdefs.ErrInvalid)
	}
	if size >= 0 && n != size {
		return false, fmt.Errorf("blob %s: %d bytes, the descriptor says %d: %w", d, n, size, errdefs.ErrInvalid)
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return false, fmt.Errorf("blob %s: %w", d, err)
	}
	return true, nil
}

// OpenBlob opens a stored blob.
func (s *Store) OpenBlob(d v1.Hash) (*os.File, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.BlobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return f, err
}

// hashingReader hashes what passes through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// Unpack makes the snapshot chainID of a stored layer blob on top of the
// snapshots lowers (top first) unless it exists: the blob is decompressed,
// checked against diffID while it is applied, and the snapshot renamed
// into place only if both succeed. It reports whether it was new.
func (s *Store) Unpack(blob, diffID, chainID v1.Hash, lowers []string) (bool, error) {
	if err := checkDigest(diffID); err != nil {
		return false, err
	}
	dst := s.SnapshotPath(chainID)
	if exists(dst) {
		return false, nil
	}
	f, err := s.OpenBlob(blob)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "snapshots"), "tmp-")
	if err != nil {
		return false, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return false, err
	}
	tarStream, err := Decompress(f)
	if err != nil {
		return false, fmt.Errorf("layer %s: %w", blob, err)
	}
	defer tarStream.Close()
	hr := &hashingReader{r: tarStream, h: sha256.New()}
	if err := ApplyLayer(tmp, hr, lowers...); err != nil {
		return false, fmt.Errorf("layer %s: %w", blob, err)
	}
	// Whatever follows the tar's end still counts for the diff ID.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return false, fmt.Errorf("layer %s: %w", blob, err)
	}
	if got := hex.EncodeToString(hr.h.Sum(nil)); got != diffID.Hex {
		return false, fmt.Errorf("layer %s: uncompressed content has digest sha256:%s, the image config says %s: %w", blob, got, diffID, errdefs.ErrInvalid)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if exists(dst) { // unpacked meanwhile by another process
			return false, nil
		}
		return false, fmt.Errorf("layer %s: %w", blob, err)
	}
	ok = true
	return true, nil
}

// Progress is what Add reports before and while it fetches a layer's blob
// (Phase "fetch", unless the blob is already stored) and before it unpacks
// it ("unpack"; a snapshot that exists is not unpacked again).
type Progress struct {
	Image  string `json:"image"`
	Phase  string `json:"phase"`
	Layer  int    `json:"layer"`
	Layers int    `json:"layers"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Done counts the bytes of the blob fetched so far: "fetch" events
	// repeat while it downloads, at most every progressEvery.
	Done   int64 `json:"done"`
	Stored bool  `json:"stored"`
}

const progressEvery = 200 * time.Millisecond

// progressReader reports a blob's download as it is read.
type progressReader struct {
	io.ReadCloser
	ev     Progress
	report func(Progress)
	last   time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	p.ev.Done += int64(n)
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.report(p.ev)
	}
	return n, err
}

// lockGC takes gc.lock: shared while adding (blobs and snapshots exist
// before the record naming them), exclusive while pruning.
func (s *Store) lockGC(exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.root, "gc.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image store %s: lock: %w", s.root, err)
	}
	return func() { f.Close() }, nil
}

// Add stores img (all its blobs, verified, and a snapshot per layer) under
// name, replacing what name named before. On failure the blobs and
// snapshots this call added are removed again and name is unchanged.
func (s *Store) Add(name string, img v1.Image, progress func(Progress)) (*Image, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	unlock, err := s.lockGC(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var added []string
	ok := false
	defer func() {
		if !ok {
			for _, p := range added {
				os.RemoveAll(p)
			}
		}
	}()
	put := func(d v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
		if exists(s.BlobPath(d)) {
			return nil
		}
		r, err := open()
		if err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		defer r.Close()
		isNew, err := s.PutBlob(d, size, r)
		if isNew {
			added = append(added, s.BlobPath(d))
		}
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", name, err)
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", name, err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", name, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", name, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: %d layers in the manifest, %d diff IDs in the config: %w", name, len(m.Layers), len(cfg.RootFS.DiffIDs), errdefs.ErrInvalid)
	}
	rec := &Image{Name: name, Manifest: manifestDigest, Config: m.Config.Digest, Created: time.Now().UTC()}
	if cfg.OS != "" {
		rec.Platform = cfg.OS + "/" + cfg.Architecture
		if cfg.Variant != "" {
			rec.Platform += "/" + cfg.Variant
		}
	}
	if err := put(manifestDigest, int64(len(rawManifest)), func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(rawManifest))), nil }); err != nil {
		return nil, err
	}
	if err := put(m.Config.Digest, m.Config.Size, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(rawConfig))), nil }); err != nil {
		return nil, err
	}
	rec.Size = int64(len(rawManifest)) + m.Config.Size
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image %s: layers: %w", name, err)
	}
	var chain v1.Hash
	var lowers []string
	for i, l := range layers {
		desc := m.Layers[i]
		diffID := cfg.RootFS.DiffIDs[i]
		chain = ChainID(chain, diffID)
		ev := Progress{Image: name, Layer: i + 1, Layers: len(layers), Digest: desc.Digest.String(), Size: desc.Size, Stored: exists(s.BlobPath(desc.Digest))}
		if !ev.Stored {
			ev.Phase = "fetch"
			progress(ev)
		}
		open := func() (io.ReadCloser, error) {
			rc, err := l.Compressed()
			if err != nil {
				return nil, err
			}
			return &progressReader{ReadCloser: rc, ev: ev, report: progress}, nil
		}
		if err := put(desc.Digest, desc.Size, open); err != nil {
			return nil, err
		}
		ev.Phase = "unpack"
		ev.Done = ev.Size
		progress(ev)
		isNew, err := s.Unpack(desc.Digest, diffID, chain, lowers)
		if isNew {
			added = append(added, s.SnapshotPath(chain))
		}
		if err != nil {
			return nil, err
		}
		lowers = append([]string{s.SnapshotPath(chain)}, lowers...)
		rec.Layers = append(rec.Layers, Layer{Blob: desc.Digest, DiffID: diffID, ChainID: chain, Size: desc.Size})
		rec.Size += desc.Size
	}
	db, err := s.db(true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	b, _ := json.Marshal(rec)
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(imagesBucket).Put([]byte(name), b) }); err != nil {
		return nil, fmt.Errorf("image %s: record: %w", name, err)
	}
	ok = true
	return rec, nil
}

// List returns every image, sorted by name.
func (s *Store) List() ([]Image, error) {
	db, err := s.db(true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []Image
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(imagesBucket).ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("image %s: corrupt record: %w", k, err)
			}
			out = append(out, img)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Get returns the image called name.
func (s *Store) Get(name string) (*Image, error) {
	db, err := s.db(true)
	if err != nil {
		return nil, err
	}
	var rec []byte
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(imagesBucket).Get([]byte(name)); v != nil {
			rec = append([]byte(nil), v...)
		}
		return nil
	})
	db.Close()
	if rec != nil {
		var img Image
		if err := json.Unmarshal(rec, &img); err != nil {
			return nil, fmt.Errorf("image %s: corrupt record: %w", name, err)
		}
		return &img, nil
	}
	// Not a name: a manifest digest, or a prefix of 12 or more hex digits.
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	for i := range imgs {
		if imgs[i].Name == name || imgs[i].Manifest.String() == name || (len(name) >= 12 && strings.HasPrefix(imgs[i].Manifest.Hex, name)) {
			return &imgs[i], nil
		}
	}
	return nil, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
}

// Config returns an image's config file.
func (s *Store) Config(img *Image) (*v1.ConfigFile, error) {
	f, err := s.OpenBlob(img.Config)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return v1.ParseConfigFile(f)
}

// Remove forgets the image called name; Prune then removes what only it used.
func (s *Store) Remove(name string) error {
	img, err := s.Get(name)
	if err != nil {
		return err
	}
	db, err := s.db(true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error { return tx.Bucket(imagesBucket).Delete([]byte(img.Name)) })
}

// Prune removes blobs and snapshots no image names, and leftovers of
// interrupted writes; it returns the paths removed. It waits for images
// being added to finish (gc.lock), and none starts meanwhile.
func (s *Store) Prune() ([]string, error) {
	unlock, err := s.lockGC(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	db, err := s.db(true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	used := map[string]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(imagesBucket).ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("image %s: corrupt record: %w", k, err)
			}
			used[s.BlobPath(img.Manifest)] = true
			used[s.BlobPath(img.Config)] = true
			for _, l := range img.Layers {
				used[s.BlobPath(l.Blob)] = true
				used[s.SnapshotPath(l.ChainID)] = true
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, dir := range []string{filepath.Join(s.root, "blobs", "sha256"), filepath.Join(s.root, "snapshots"), filepath.Join(s.root, "ingest")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return removed, err
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if used[p] {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return removed, err
			}
			removed = append(removed, p)
		}
	}
	return removed, nil
}
