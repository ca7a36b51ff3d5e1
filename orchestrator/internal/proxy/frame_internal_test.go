package proxy

import (
	"encoding/binary"
	"testing"
)

// frame builds a websocket frame header and payload of n bytes.
func frame(n int, masked bool) []byte {
	var h []byte
	mask := byte(0)
	if masked {
		mask = 0x80
	}
	switch {
	case n < 126:
		h = []byte{0x82, mask | byte(n)}
	case n <= 0xffff:
		h = []byte{0x82, mask | 126, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = make([]byte, 10)
		h[0], h[1] = 0x82, mask|127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	if masked {
		h = append(h, 1, 2, 3, 4)
	}
	return append(h, make([]byte, n)...)
}

// The tracker must report a boundary exactly at the end of each frame, no
// matter how the stream is cut into writes.
func TestFrameTrackerBoundaries(t *testing.T) {
	sizes := []struct {
		n      int
		masked bool
	}{{0, false}, {5, false}, {125, false}, {126, false}, {300, true}, {0xffff, false}, {0x10000, false}, {7, true}}
	var stream []byte
	ends := map[int]bool{}
	for _, s := range sizes {
		stream = append(stream, frame(s.n, s.masked)...)
		ends[len(stream)] = true
	}
	for _, chunk := range []int{1, 2, 3, 7, 10, 4096, len(stream)} {
		var f frameTracker
		for off := 0; off < len(stream); off += chunk {
			end := min(off+chunk, len(stream))
			f.feed(stream[off:end])
			if got := f.atBoundary(); got != ends[end] {
				t.Fatalf("chunk %d: atBoundary after %d bytes = %v, want %v", chunk, end, got, ends[end])
			}
		}
	}
}

func TestCloseFrame(t *testing.T) {
	b := closeFrame(1008, "access revoked")
	if b[0] != 0x88 || int(b[1]) != len(b)-2 || binary.BigEndian.Uint16(b[2:4]) != 1008 || string(b[4:]) != "access revoked" {
		t.Fatalf("closeFrame = %x", b)
	}
}
