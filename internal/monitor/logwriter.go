package monitor

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"time"
	"unicode/utf8"
)

// maxLogLine is the longest line content (without its "\n") one LogEntry
// carries; a longer line is split so that neither the log nor a reader
// needs unbounded buffers (docker's json-file splits at 16 KiB too).
const maxLogLine = 16 << 10

const (
	streamStdout = 0
	streamStderr = 1
)

var streamNames = [2]string{"stdout", "stderr"}

// logWriter turns container output into ctr.log JSON lines, one per line
// of output, and rotates the file by size. It is not safe for concurrent
// use (the monitor holds its lock around it).
type logWriter struct {
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
	partial  [2][]byte // the current incomplete line of each stream
	rec      []byte    // scratch for one encoded entry
	now      func() time.Time
	err      error // the first write error, kept for the monitor's record
}

func openLogWriter(path string, maxSize int64, maxFiles int) (*logWriter, error) {
	w := &logWriter{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Write logs p, a chunk of stream's output: complete lines become
// entries, the rest waits for its newline (or for Flush at exit).
func (w *logWriter) Write(stream int, p []byte) {
	at := w.now()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			line := append(w.partial[stream], p[:i+1]...)
			p = p[i+1:]
			w.emitLine(stream, line, at)
			w.partial[stream] = shrink(line[:0])
			continue
		}
		pb := append(w.partial[stream], p...)
		p = nil
		// Emit full pieces only while more than maxLogLine bytes wait:
		// a line of exactly maxLogLine bytes whose "\n" is in the next
		// read stays one entry.
		for len(pb) > maxLogLine {
			w.entry(stream, pb[:maxLogLine], at)
			pb = pb[:copy(pb, pb[maxLogLine:])]
		}
		w.partial[stream] = pb
	}
}

// shrink drops a scratch buffer a very long line grew, so an idle
// monitor does not keep it.
func shrink(b []byte) []byte {
	if cap(b) > 2*maxLogLine+1 {
		return nil
	}
	return b
}

// emitLine logs one line ending in "\n", split into pieces of at most
// maxLogLine bytes of content; only the last piece carries the "\n".
func (w *logWriter) emitLine(stream int, line []byte, at time.Time) {
	for len(line)-1 > maxLogLine {
		w.entry(stream, line[:maxLogLine], at)
		line = line[maxLogLine:]
	}
	w.entry(stream, line, at)
}

// Flush logs every stream's incomplete last line (at exit: output that
// did not end in a newline is still output).
func (w *logWriter) Flush() {
	at := w.now()
	for s := range w.partial {
		if len(w.partial[s]) > 0 {
			w.entry(s, w.partial[s], at)
			w.partial[s] = nil
		}
	}
}

func (w *logWriter) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// entry writes one JSON line, in docker's json-file key order. It is
// encoded by hand: this runs for every line a container prints, and
// encoding/json's reflection would allocate for each.
func (w *logWriter) entry(stream int, log []byte, at time.Time) {
	b := append(w.rec[:0], `{"log":`...)
	b = appendJSONString(b, log)
	b = append(b, `,"stream":"`...)
	b = append(b, streamNames[stream]...)
	b = append(b, `","time":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, "\"}\n"...)
	w.rec = shrink(b)
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		w.rotate()
	}
	if w.f == nil {
		// A failed rotation left no file: try again for every entry
		// rather than losing the rest of the log.
		if err := w.open(); err != nil {
			w.setErr(err)
			return
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		w.setErr(err)
	}
}

func (w *logWriter) setErr(err error) {
	if w.err == nil {
		w.err = err
	}
}

// rotate shifts ctr.log → ctr.log.1 → … → ctr.log.(maxFiles-1), dropping
// the oldest, and starts an empty ctr.log. Rename, not copy-truncate:
// a reader following the old file keeps its fd and finishes it.
func (w *logWriter) rotate() {
	w.f.Close()
	w.f = nil
	keep := max(w.maxFiles-1, 1)
	for i := keep - 1; i >= 1; i-- {
		err := os.Rename(w.path+"."+strconv.Itoa(i), w.path+"."+strconv.Itoa(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.setErr(err)
		}
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.setErr(err)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		w.setErr(err)
		return
	}
	w.f, w.size = f, 0
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does
// (invalid UTF-8 becomes U+FFFD; <, > and & are escaped so the log can be
// embedded in HTML, as docker's is).
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 end lines in JavaScript.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
