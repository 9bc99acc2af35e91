package linux

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// SubIDRange is one line of /etc/subuid or /etc/subgid: Count ids from
// Start that the user may map into user namespaces it creates (through the
// setuid newuidmap/newgidmap helpers).
type SubIDRange struct {
	Start, Count uint64
}

// Contains reports whether [id, id+size) lies inside r.
func (r SubIDRange) Contains(id, size uint64) bool {
	return id >= r.Start && id+size <= r.Start+r.Count
}

// SubIDs returns the ranges file (/etc/subuid or /etc/subgid) grants the
// user with the given name or numeric id, in file order. A missing file is
// no ranges, not an error; a malformed line for this user is an error.
func SubIDs(file, name string, id int) ([]SubIDRange, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	return parseSubIDs(bufio.NewScanner(f), file, name, strconv.Itoa(id))
}

func parseSubIDs(sc *bufio.Scanner, file, name, id string) ([]SubIDRange, error) {
	var out []SubIDRange
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != id) || parts[0] == "" {
			continue
		}
		start, err1 := strconv.ParseUint(parts[1], 10, 32)
		count, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			return nil, fmt.Errorf("%s:%d: malformed range %q (want name:start:count)", file, n, line)
		}
		out = append(out, SubIDRange{Start: start, Count: count})
	}
	return out, sc.Err()
}
