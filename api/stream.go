package api

import (
	"encoding/binary"
	"fmt"
	"io"
)

// UpgradeProto is the Upgrade header value of attach and exec.
const UpgradeProto = "warren-stream/1"

// Frame types of an upgraded connection. Each frame is one type byte, a
// 4-byte big-endian payload length and the payload.
const (
	FrameStdin      byte = 0 // client -> server: bytes for the process's stdin
	FrameStdout     byte = 1 // server -> client
	FrameStderr     byte = 2 // server -> client
	FrameResize     byte = 3 // client -> server: rows, cols as two big-endian uint16
	FrameCloseStdin byte = 4 // client -> server: stdin reached EOF
	FrameExit       byte = 5 // server -> client, last: WaitResponse JSON
)

// MaxFrame bounds a payload: a peer announcing more is broken or hostile.
const MaxFrame = 1 << 20

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame; buf is reused when large enough.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("stream frame of %d bytes is larger than %d", n, MaxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return h[0], buf, nil
}

// ResizePayload encodes a terminal size.
func ResizePayload(rows, cols uint16) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:], rows)
	binary.BigEndian.PutUint16(b[2:], cols)
	return b[:]
}

// ParseResize decodes a FrameResize payload.
func ParseResize(p []byte) (rows, cols uint16, ok bool) {
	if len(p) != 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(p[0:]), binary.BigEndian.Uint16(p[2:]), true
}
