// Package images holds the engine's images: a content-addressed store of
// blobs verified on write, layers unpacked once each into overlayfs-form
// snapshot directories shared by every image that has them, and the
// metadata naming images (see store.go for the on-disk layout).
//
// It does not import the runtime: a container's root is an overlay mount
// of snapshots plus its own upper and work directories, handed to any OCI
// runtime as root.path.
package images
