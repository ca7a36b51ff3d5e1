package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

const prefix = "test:"

// newStore returns a Store on a private redis-server, and the raw client
// for looking behind the Store's back.
func newStore(t *testing.T, opts ...store.Option) (*store.Store, *redis.Client) {
	t.Helper()
	rdb := testenv.RedisClient(t)
	return store.New(rdb, prefix, opts...), rdb
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	// A deadline so a broken wait fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClock() *testsupport.Clock {
	return testsupport.NewClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
}

// eventually polls cond until it holds or ctx ends. Used only for what Redis
// does on its own (expiry, reconnects), never to measure time.
func eventually(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
