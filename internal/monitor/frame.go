package monitor

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Frame types of the client protocol (see the package documentation).
const (
	frameHello      byte = 'h'
	frameStdin      byte = 'i'
	frameCloseStdin byte = 'c'
	frameResize     byte = 'r'
	frameStdout     byte = 'o'
	frameStderr     byte = 'e'
	frameExit       byte = 'x'
	frameReady      byte = 'k'
)

const (
	protoVersion = 1
	// helloAttach in the hello flags: the client receives output and may
	// send input; without it the client only waits for the exit frame.
	helloAttach = 1

	frameHeaderLen = 5
	// maxFramePayload bounds what a peer can make the other side allocate.
	maxFramePayload = 1 << 20
)

// appendFrame appends one frame to dst.
func appendFrame(dst []byte, typ byte, payload []byte) []byte {
	dst = append(dst, typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(payload)))
	return append(dst, payload...)
}

// readFrame reads one frame; the payload lives in buf (grown as needed)
// and is valid until the next call with the same buf.
func readFrame(r io.Reader, buf *[]byte) (typ byte, payload []byte, err error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFramePayload {
		return 0, nil, fmt.Errorf("monitor protocol: frame %q of %d bytes exceeds %d", hdr[0], n, maxFramePayload)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], p, nil
}

func resizePayload(rows, cols uint16) []byte {
	var p [4]byte
	binary.BigEndian.PutUint16(p[0:], rows)
	binary.BigEndian.PutUint16(p[2:], cols)
	return p[:]
}

func parseResize(p []byte) (rows, cols uint16, ok bool) {
	if len(p) != 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(p[0:]), binary.BigEndian.Uint16(p[2:]), true
}
