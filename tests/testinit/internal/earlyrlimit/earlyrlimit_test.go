//go:build linux && (amd64 || arm64)

package earlyrlimit

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestRawPrlimitMatchesUnix(t *testing.T) {
	var got [2]uint64
	if r := rawPrlimitNofile(&got); r != 0 {
		t.Fatalf("rawPrlimitNofile returned %d", r)
	}
	var want unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &want); err != nil {
		t.Fatal(err)
	}
	if got[0] != want.Cur || got[1] != want.Max {
		t.Fatalf("raw prlimit = %v, unix.Prlimit = {%d %d}", got, want.Cur, want.Max)
	}
}

func TestNofileRecordedAtInit(t *testing.T) {
	soft, hard, ok := Nofile()
	if !ok {
		t.Fatal("RLIMIT_NOFILE was not recorded at init")
	}
	if hard == 0 || soft > hard {
		t.Fatalf("implausible startup RLIMIT_NOFILE soft=%d hard=%d", soft, hard)
	}
}
