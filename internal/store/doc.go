// Package store is the engine's metadata store: one bbolt database,
// ROOT/engine.db, owned by the running warrend (bbolt's file lock keeps a
// second daemon out). Every change is one transaction, committed with
// fsync before the call returns, so a warrend killed at any instant finds
// each record either before or after a change, never half-written.
//
// Schema (version 1, bucket "meta" key "version"):
//
//	containers   id (64 hex) -> Record JSON
//	names        name -> id            unique: a name is taken in the same
//	                                   transaction that creates the record
//	userns       range start (decimal) -> id   host uid/gid ranges handed
//	                                   to --userns auto containers
//	networks     name -> NetworkRecord JSON     bridge networks
//	leases       network "/" address -> owner id (container or pod): IPAM,
//	                                   allocated in one transaction with
//	                                   the choice, freed on removal
//	pods         id -> PodRecord JSON
//	podnames     name -> pod id
//
// The record's State.Status is the intent log of a container: "creating"
// (rootfs and bundle being made; recovery removes it), "starting" (a
// monitor may exist; recovery asks it), "running"/"paused" (a monitor
// owns it), "created"/"exited" (no process), "removing" (recovery
// finishes the removal).
package store
