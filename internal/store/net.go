package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
)

var (
	bucketNetworks = []byte("networks")
	bucketLeases   = []byte("leases")
	bucketPods     = []byte("pods")
	bucketPodNames = []byte("podnames")
)

// NetworkRecord is a bridge network.
type NetworkRecord struct {
	api.Network
}

// Lease is one address a network has given an owner (a container or a
// pod id).
type Lease struct {
	Network string     `json:"network"`
	Addr    netip.Addr `json:"addr"`
	Owner   string     `json:"owner"`
}

// PodRecord is a pod as the engine keeps it.
type PodRecord struct {
	api.Pod
	// Dir holds the pinned IPC and UTS namespaces.
	Dir string `json:"dir"`
	// CgroupPath is the parent of its members' cgroups.
	CgroupPath string `json:"cgroupPath"`
}

func leaseKey(network string, a netip.Addr) []byte { return []byte(network + "/" + a.String()) }

// CreateNetwork stores a new network; ErrExists if the name is taken.
func (s *Store) CreateNetwork(n *NetworkRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNetworks)
		if b.Get([]byte(n.Name)) != nil {
			return fmt.Errorf("network %q exists: %w", n.Name, errdefs.ErrExists)
		}
		v, err := json.Marshal(n)
		if err != nil {
			return err
		}
		return b.Put([]byte(n.Name), v)
	})
}

// Network returns a network by name.
func (s *Store) Network(name string) (*NetworkRecord, error) {
	var n *NetworkRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNetworks).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("no such network: %s: %w", name, errdefs.ErrNotFound)
		}
		n = new(NetworkRecord)
		return json.Unmarshal(v, n)
	})
	return n, err
}

// Networks lists the networks by name.
func (s *Store) Networks() ([]*NetworkRecord, error) {
	var ns []*NetworkRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNetworks).ForEach(func(k, v []byte) error {
			n := new(NetworkRecord)
			if err := json.Unmarshal(v, n); err != nil {
				return fmt.Errorf("network %s: %v: %w", k, err, errdefs.ErrCorrupt)
			}
			ns = append(ns, n)
			return nil
		})
	})
	return ns, err
}

// DeleteNetwork forgets a network; refused while it has leases.
func (s *Store) DeleteNetwork(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLeases).Cursor()
		prefix := []byte(name + "/")
		if k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)) {
			return fmt.Errorf("network %s is used by %s: remove it first: %w", name, shortID(string(v)), errdefs.ErrState)
		}
		return tx.Bucket(bucketNetworks).Delete([]byte(name))
	})
}

// Leases returns the leases of a network.
func (s *Store) Leases(network string) ([]Lease, error) {
	var ls []Lease
	err := s.db.View(func(tx *bolt.Tx) error {
		ls = leasesIn(tx, network)
		return nil
	})
	return ls, err
}

func leasesIn(tx *bolt.Tx, network string) []Lease {
	var ls []Lease
	prefix := network + "/"
	c := tx.Bucket(bucketLeases).Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
		a, err := netip.ParseAddr(strings.TrimPrefix(string(k), prefix))
		if err == nil {
			ls = append(ls, Lease{Network: network, Addr: a, Owner: string(v)})
		}
	}
	return ls
}

// Lease gives owner an address on network, chosen by pick from the
// current leases, in one transaction: two allocations never race to the
// same address, and a crash leaves the lease either taken or not.
func (s *Store) Lease(network, owner string, pick func([]Lease) (netip.Addr, error)) (netip.Addr, error) {
	var got netip.Addr
	err := s.db.Update(func(tx *bolt.Tx) error {
		a, err := pick(leasesIn(tx, network))
		if err != nil {
			return err
		}
		got = a
		return tx.Bucket(bucketLeases).Put(leaseKey(network, a), []byte(owner))
	})
	return got, err
}

// ReleaseOwner frees every lease of owner, on every network.
func (s *Store) ReleaseOwner(owner string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		var keys [][]byte
		b.ForEach(func(k, v []byte) error {
			if string(v) == owner {
				keys = append(keys, append([]byte{}, k...))
			}
			return nil
		})
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// AllLeases lists every lease (for recovery's sweep).
func (s *Store) AllLeases() ([]Lease, error) {
	var ls []Lease
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
			net, addr, _ := strings.Cut(string(k), "/")
			if a, err := netip.ParseAddr(addr); err == nil {
				ls = append(ls, Lease{Network: net, Addr: a, Owner: string(v)})
			}
			return nil
		})
	})
	return ls, err
}

// CreatePod stores a new pod and takes its name.
func (s *Store) CreatePod(p *PodRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketPodNames)
		if other := names.Get([]byte(p.Name)); other != nil {
			return fmt.Errorf("the pod name %q is in use by pod %s: %w", p.Name, shortID(string(other)), errdefs.ErrExists)
		}
		if err := names.Put([]byte(p.Name), []byte(p.ID)); err != nil {
			return err
		}
		return putPod(tx, p)
	})
}

func putPod(tx *bolt.Tx, p *PodRecord) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketPods).Put([]byte(p.ID), v)
}

// PutPod replaces a pod's record.
func (s *Store) PutPod(p *PodRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putPod(tx, p) })
}

// Pod finds a pod by id, name or unique id prefix.
func (s *Store) Pod(ref string) (*PodRecord, error) {
	var p *PodRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPods)
		id := ref
		if v := tx.Bucket(bucketPodNames).Get([]byte(ref)); v != nil {
			id = string(v)
		} else if b.Get([]byte(ref)) == nil {
			var found []string
			c := b.Cursor()
			for k, _ := c.Seek([]byte(ref)); k != nil && ref != "" && strings.HasPrefix(string(k), ref); k, _ = c.Next() {
				found = append(found, string(k))
			}
			if len(found) != 1 {
				return fmt.Errorf("no such pod: %s: %w", ref, errdefs.ErrNotFound)
			}
			id = found[0]
		}
		v := b.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("no such pod: %s: %w", ref, errdefs.ErrNotFound)
		}
		p = new(PodRecord)
		return json.Unmarshal(v, p)
	})
	return p, err
}

// Pods lists the pods, oldest first.
func (s *Store) Pods() ([]*PodRecord, error) {
	var ps []*PodRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPods).ForEach(func(k, v []byte) error {
			p := new(PodRecord)
			if err := json.Unmarshal(v, p); err != nil {
				return fmt.Errorf("pod %s: %v: %w", k, err, errdefs.ErrCorrupt)
			}
			ps = append(ps, p)
			return nil
		})
	})
	sort.Slice(ps, func(i, j int) bool { return ps[i].Created.Before(ps[j].Created) })
	return ps, err
}

// DeletePod forgets a pod and its name.
func (s *Store) DeletePod(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPods).Get([]byte(id))
		if v == nil {
			return nil
		}
		var p PodRecord
		if json.Unmarshal(v, &p) == nil {
			names := tx.Bucket(bucketPodNames)
			if string(names.Get([]byte(p.Name))) == id {
				names.Delete([]byte(p.Name))
			}
		}
		return tx.Bucket(bucketPods).Delete([]byte(id))
	})
}
