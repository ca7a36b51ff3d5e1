package testsupport

import (
	"bytes"
	"sync"
	"testing"
)

// Buffer is a bytes.Buffer that may be written by the code under test (for
// example as a slog handler's output) while the test reads it. The zero
// value is ready to use.
type Buffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	echo testing.TB
}

// NewEchoBuffer returns a Buffer that also logs every write to t, so a
// failing test shows what the code logged.
func NewEchoBuffer(t testing.TB) *Buffer { return &Buffer{echo: t} }

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.echo != nil {
		b.echo.Logf("log: %s", bytes.TrimRight(p, "\n"))
	}
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
