//go:build !(linux && (amd64 || arm64))

package earlyrlimit

// rawPrlimitNofile is not implemented on this platform; the limit is
// reported as unavailable.
func rawPrlimitNofile(old *[2]uint64) int64 { return -1 }
