//go:build linux && (amd64 || arm64)

package earlyrlimit

// rawPrlimitNofile calls prlimit64(0, RLIMIT_NOFILE, NULL, old) and returns
// the raw kernel result: 0 on success, -errno on failure.
//
//go:noescape
func rawPrlimitNofile(old *[2]uint64) int64
