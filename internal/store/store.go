package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
)

const schemaVersion = "1"

var (
	bucketMeta       = []byte("meta")
	bucketContainers = []byte("containers")
	bucketNames      = []byte("names")
	bucketUserns     = []byte("userns")
)

// Record is a container as the engine keeps it: the API's view plus where
// its files and runtime state live.
type Record struct {
	api.Container
	// Dir holds the bundle (config.json, rootfs, upper, work), the
	// monitor's socket, pid, exit file and logs.
	Dir string `json:"dir"`
	// RuntimePath and RuntimeRoot are the runtime binary and --root it
	// was created with; kept so a later change of the engine's runtime
	// table cannot orphan it.
	RuntimePath string   `json:"runtimePath"`
	RuntimeRoot string   `json:"runtimeRoot"`
	RuntimeArgs []string `json:"runtimeArgs,omitempty"`
	CgroupsPath string   `json:"cgroupsPath"`
	// UsernsStart is the first host id of its --userns auto range (0: none).
	UsernsStart uint32 `json:"usernsStart,omitempty"`
	// Netns is its own pinned network namespace on a bridge network
	// (made at each start, removed at each exit); "" for other modes and
	// for pod members, whose namespace is the pod's.
	Netns string `json:"netns,omitempty"`
	// Infra marks a pod's infra container (no image: a pause process).
	Infra bool `json:"infra,omitempty"`
}

// Store is the open database.
type Store struct{ db *bolt.DB }

// Open opens (creating) the database at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store %s is held by another process (is another warrend running on this root?): %w", path, errdefs.ErrLocked)
		}
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketContainers, bucketNames, bucketUserns, bucketNetworks, bucketLeases, bucketPods, bucketPodNames} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		switch v := string(m.Get([]byte("version"))); v {
		case "":
			return m.Put([]byte("version"), []byte(schemaVersion))
		case schemaVersion:
			return nil
		default:
			return fmt.Errorf("schema version %q is not %s (a newer warrend made it?): %w", v, schemaVersion, errdefs.ErrCorrupt)
		}
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Create stores a new record and takes its name; ErrExists when the name
// is in use.
func (s *Store) Create(r *Record) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		if other := names.Get([]byte(r.Name)); other != nil {
			return fmt.Errorf("the name %q is in use by container %s: remove it or choose another name: %w", r.Name, shortID(string(other)), errdefs.ErrExists)
		}
		cs := tx.Bucket(bucketContainers)
		if cs.Get([]byte(r.ID)) != nil {
			return fmt.Errorf("container %s: %w", r.ID, errdefs.ErrExists)
		}
		if err := names.Put([]byte(r.Name), []byte(r.ID)); err != nil {
			return err
		}
		return put(cs, r)
	})
}

func put(b *bolt.Bucket, r *Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(r.ID), v)
}

// Put replaces an existing record.
func (s *Store) Put(r *Record) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		cs := tx.Bucket(bucketContainers)
		if cs.Get([]byte(r.ID)) == nil {
			return fmt.Errorf("container %s: %w", r.ID, errdefs.ErrNotFound)
		}
		return put(cs, r)
	})
}

// Get returns the record of id.
func (s *Store) Get(id string) (*Record, error) {
	var r *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketContainers).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("no such container: %s: %w", id, errdefs.ErrNotFound)
		}
		r = new(Record)
		return json.Unmarshal(v, r)
	})
	return r, err
}

// Delete forgets a record, its name and its userns range.
func (s *Store) Delete(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		cs := tx.Bucket(bucketContainers)
		v := cs.Get([]byte(id))
		if v == nil {
			return nil
		}
		var r Record
		if err := json.Unmarshal(v, &r); err == nil {
			names := tx.Bucket(bucketNames)
			if string(names.Get([]byte(r.Name))) == id {
				if err := names.Delete([]byte(r.Name)); err != nil {
					return err
				}
			}
			if r.UsernsStart != 0 {
				if err := tx.Bucket(bucketUserns).Delete([]byte(strconv.FormatUint(uint64(r.UsernsStart), 10))); err != nil {
					return err
				}
			}
		}
		return cs.Delete([]byte(id))
	})
}

// List returns every record, oldest first.
func (s *Store) List() ([]*Record, error) {
	var rs []*Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			r := new(Record)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("container %s: record: %v: %w", k, err, errdefs.ErrCorrupt)
			}
			rs = append(rs, r)
			return nil
		})
	})
	sort.Slice(rs, func(i, j int) bool { return rs[i].Created.Before(rs[j].Created) })
	return rs, err
}

// Resolve finds the id a user's reference means: a full id, a name, or a
// unique id prefix.
func (s *Store) Resolve(ref string) (string, error) {
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		if ref == "" {
			return fmt.Errorf("empty container name or id: %w", errdefs.ErrInvalid)
		}
		if tx.Bucket(bucketContainers).Get([]byte(ref)) != nil {
			id = ref
			return nil
		}
		if v := tx.Bucket(bucketNames).Get([]byte(ref)); v != nil {
			id = string(v)
			return nil
		}
		c := tx.Bucket(bucketContainers).Cursor()
		var found []string
		for k, _ := c.Seek([]byte(ref)); k != nil && strings.HasPrefix(string(k), ref); k, _ = c.Next() {
			found = append(found, string(k))
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
		case 1:
			id = found[0]
			return nil
		default:
			return fmt.Errorf("%q names %d containers: give more of the id: %w", ref, len(found), errdefs.ErrInvalid)
		}
	})
	return id, err
}

// AllocUserns reserves the first free range of size ids at or above base
// (ranges are size apart) for id and returns its start.
func (s *Store) AllocUserns(id string, base, size, count uint32) (uint32, error) {
	var start uint32
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUserns)
		for i := uint32(0); i < count; i++ {
			st := base + i*size
			k := []byte(strconv.FormatUint(uint64(st), 10))
			if b.Get(k) == nil {
				start = st
				return b.Put(k, []byte(id))
			}
		}
		return fmt.Errorf("all %d user namespace ranges of %d ids from %d are in use: remove containers started with --userns auto", count, size, base)
	})
	return start, err
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
