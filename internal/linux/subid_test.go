package linux

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseSubIDs(t *testing.T) {
	const file = `# comment
alice:100000:65536
bob:165536:65536
1001:300000:10
alice:500000:5
`
	sc := func() *bufio.Scanner { return bufio.NewScanner(strings.NewReader(file)) }
	got, err := parseSubIDs(sc(), "subuid", "alice", "1000")
	if err != nil || len(got) != 2 || got[0] != (SubIDRange{100000, 65536}) || got[1] != (SubIDRange{500000, 5}) {
		t.Fatalf("alice: got %v, %v", got, err)
	}
	got, err = parseSubIDs(sc(), "subuid", "carol", "1001")
	if err != nil || len(got) != 1 || got[0] != (SubIDRange{300000, 10}) {
		t.Fatalf("uid 1001 by number: got %v, %v", got, err)
	}
	if got, _ := parseSubIDs(sc(), "subuid", "dave", "1002"); len(got) != 0 {
		t.Fatalf("dave: got %v, want none", got)
	}
	if _, err := parseSubIDs(bufio.NewScanner(strings.NewReader("alice:x:1\n")), "subuid", "alice", "1000"); err == nil || !strings.Contains(err.Error(), "subuid:1") {
		t.Fatalf("malformed line: got %v, want an error naming subuid:1", err)
	}
	r := SubIDRange{100000, 65536}
	if !r.Contains(100000, 65536) || r.Contains(99999, 2) || r.Contains(165535, 2) {
		t.Fatalf("Contains is wrong")
	}
}
