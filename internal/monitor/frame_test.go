package monitor

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []struct {
		typ     byte
		payload []byte
	}{
		{frameHello, []byte{protoVersion, helloAttach}},
		{frameStdin, []byte("echo hi\n")},
		{frameCloseStdin, nil},
		{frameResize, resizePayload(33, 111)},
		{frameStdout, bytes.Repeat([]byte("x"), 70000)},
		{frameExit, []byte(`{"code":3}`)},
	}
	var stream []byte
	for _, f := range frames {
		stream = appendFrame(stream, f.typ, f.payload)
	}
	r := bytes.NewReader(stream)
	var buf []byte
	for i, want := range frames {
		typ, p, err := readFrame(r, &buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if typ != want.typ || !bytes.Equal(p, want.payload) {
			t.Fatalf("frame %d: got %q (%d bytes), want %q (%d bytes)", i, typ, len(p), want.typ, len(want.payload))
		}
	}
	if _, _, err := readFrame(r, &buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
	rows, cols, ok := parseResize(resizePayload(33, 111))
	if !ok || rows != 33 || cols != 111 {
		t.Fatalf("parseResize = %d %d %v", rows, cols, ok)
	}
	if _, _, ok := parseResize([]byte{1, 2, 3}); ok {
		t.Fatal("parseResize accepted 3 bytes")
	}
}

func TestFrameErrors(t *testing.T) {
	var buf []byte
	// A truncated payload is an unexpected EOF, not a clean end.
	trunc := appendFrame(nil, frameStdout, []byte("hello"))[:7]
	if _, _, err := readFrame(bytes.NewReader(trunc), &buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v, want unexpected EOF", err)
	}
	// A length beyond the limit is refused before allocating it.
	huge := []byte{frameStdin, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := readFrame(bytes.NewReader(huge), &buf); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized frame: %v", err)
	}
	if cap(buf) > maxFramePayload {
		t.Errorf("buffer grew to %d for a refused frame", cap(buf))
	}
}
