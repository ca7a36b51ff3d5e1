// Package activity counts proxied traffic per user in memory and writes it
// to the store in batches, so the proxy's hot path never waits on Redis.
package activity

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Sink receives a batch of "last seen" times, one per user.
type Sink interface {
	RecordActivity(ctx context.Context, batch map[string]time.Time) error
}

// Buffer collects the latest activity per user between flushes.
type Buffer struct {
	sink Sink
	now  func() time.Time
	log  *slog.Logger

	mu      sync.Mutex
	pending map[string]time.Time
}

// New returns an empty buffer writing to sink.
func New(sink Sink, log *slog.Logger) *Buffer {
	return &Buffer{sink: sink, now: time.Now, log: log, pending: map[string]time.Time{}}
}

// Touch records activity of user now. It takes a mutex and a clock read,
// nothing else.
func (b *Buffer) Touch(user string) {
	t := b.now()
	b.mu.Lock()
	b.pending[user] = t
	b.mu.Unlock()
}

// Flush writes what has been collected since the last flush. On failure the
// batch is merged back so nothing is lost while Redis is away.
func (b *Buffer) Flush(ctx context.Context) error {
	b.mu.Lock()
	batch := b.pending
	b.pending = make(map[string]time.Time, len(batch))
	b.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := b.sink.RecordActivity(ctx, batch); err != nil {
		b.mu.Lock()
		for u, t := range batch {
			if cur, ok := b.pending[u]; !ok || t.After(cur) {
				b.pending[u] = t
			}
		}
		b.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then flushes once more.
func (b *Buffer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if err := b.Flush(fctx); err != nil {
				b.log.Warn("final activity flush failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := b.Flush(ctx); err != nil {
				b.log.Warn("activity flush failed; will retry", "err", err)
			}
		}
	}
}
