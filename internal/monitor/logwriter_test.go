package monitor

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readEntries(t *testing.T, path string) []LogEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []LogEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLogWriterLines(t *testing.T) {
	dir := t.TempDir()
	w, err := openLogWriter(filepath.Join(dir, logName), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	w.now = func() time.Time { return at }
	// Lines split across reads, two lines in one read, streams
	// interleaved, bytes JSON must escape.
	w.Write(streamStdout, []byte("hel"))
	w.Write(streamStderr, []byte("err\n"))
	w.Write(streamStdout, []byte("lo\nsecond \"q\" <&> \x01\xff\r\n"))
	w.Write(streamStdout, []byte("no newline"))
	w.Write(streamStderr, []byte("also partial"))
	w.Flush()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readEntries(t, filepath.Join(dir, logName))
	want := []LogEntry{
		{at, "stderr", "err\n"},
		{at, "stdout", "hello\n"},
		{at, "stdout", "second \"q\" <&> \x01\ufffd\r\n"},
		{at, "stdout", "no newline"},
		{at, "stderr", "also partial"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !got[i].Time.Equal(want[i].Time) || got[i].Stream != want[i].Stream || got[i].Log != want[i].Log {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	st, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", st.Mode().Perm())
	}
}

// The encoder agrees with encoding/json on every byte value.
func TestAppendJSONString(t *testing.T) {
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	for _, s := range []string{string(all), "héllo wörld \u2028\u2029 ☃", "\xe2\x82", ""} {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, []byte(s)); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestLogWriterLongLines(t *testing.T) {
	dir := t.TempDir()
	w, err := openLogWriter(filepath.Join(dir, logName), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	exact := strings.Repeat("a", maxLogLine)
	long := strings.Repeat("b", 2*maxLogLine+100)
	// Written in small reads, as a pipe delivers it.
	for _, s := range []string{exact + "\n", long + "\n", strings.Repeat("c", maxLogLine+5)} {
		for len(s) > 0 {
			n := min(len(s), 3000)
			w.Write(streamStdout, []byte(s[:n]))
			s = s[n:]
		}
	}
	w.Flush()
	w.Close()
	got := readEntries(t, filepath.Join(dir, logName))
	want := []string{
		exact + "\n", // exactly 16 KiB of content stays whole
		strings.Repeat("b", maxLogLine), strings.Repeat("b", maxLogLine), strings.Repeat("b", 100) + "\n",
		strings.Repeat("c", maxLogLine), strings.Repeat("c", 5), // the unfinished line, flushed at exit
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Log != want[i] {
			t.Errorf("entry %d: %d bytes ending %q, want %d bytes ending %q", i, len(got[i].Log), tailOf(got[i].Log), len(want[i]), tailOf(want[i]))
		}
	}
}

func tailOf(s string) string { return s[max(0, len(s)-3):] }

func TestLogWriterRotation(t *testing.T) {
	for _, tc := range []struct {
		maxFiles int
		rotated  int // ctr.log.N files that exist at the end
	}{{0, 1}, {1, 1}, {3, 2}} {
		dir := t.TempDir()
		path := filepath.Join(dir, logName)
		w, err := openLogWriter(path, 300, tc.maxFiles)
		if err != nil {
			t.Fatal(err)
		}
		// Each entry is ~80 bytes: 3 per file, 20 entries → 7 files' worth.
		for i := range 20 {
			w.Write(streamStdout, []byte(strings.Repeat("x", 10)+string(rune('A'+i))+"\n"))
		}
		w.Close()
		for n := 1; n <= tc.rotated+1; n++ {
			p := path + "." + string(rune('0'+n))
			_, err := os.Stat(p)
			if n <= tc.rotated && err != nil {
				t.Errorf("maxFiles %d: %s missing: %v", tc.maxFiles, p, err)
			}
			if n > tc.rotated && err == nil {
				t.Errorf("maxFiles %d: %s exists, want at most %d rotated files", tc.maxFiles, p, tc.rotated)
			}
		}
		// Every file is within the size limit and the files, oldest
		// first, hold the latest entries in order.
		var all []LogEntry
		for n := tc.rotated; n >= 0; n-- {
			p := path
			if n > 0 {
				p += "." + string(rune('0'+n))
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() > 300 {
				t.Errorf("%s is %d bytes, over the 300 limit", p, st.Size())
			}
			all = append(all, readEntries(t, p)...)
		}
		last := all[len(all)-1].Log
		if last != strings.Repeat("x", 10)+"T\n" {
			t.Errorf("maxFiles %d: last entry %q, want the 20th", tc.maxFiles, last)
		}
		for i := 1; i < len(all); i++ {
			if all[i].Log[10] != all[i-1].Log[10]+1 {
				t.Errorf("maxFiles %d: entries out of order or missing: %q after %q", tc.maxFiles, all[i].Log, all[i-1].Log)
			}
		}
	}
}
