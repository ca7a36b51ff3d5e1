// Package testsupport holds small helpers shared by tests of several
// packages: a manually advanced clock and a goroutine-safe buffer.
package testsupport

import (
	"sync"
	"time"
)

// Clock is a time source that only moves when a test advances it, so expiry
// and idle checks are deterministic. It is safe for concurrent use: the code
// under test reads it from its own goroutines.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock that reads start until advanced.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's current time; pass the method value as an
// injected func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
