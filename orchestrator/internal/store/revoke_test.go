package store_test

import (
	"context"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestRevokeBroadcast(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	// Another replica: its own client on the same Redis.
	other := store.New(rdb, prefix)

	ch, stop := s.SubscribeRevoke(ctx)
	defer stop()
	next := func(what string) string {
		t.Helper()
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed while waiting for %s", what)
			}
			return v
		case <-ctx.Done():
			t.Fatalf("no message while waiting for %s", what)
		}
		return ""
	}
	if v := next("the subscription"); v != store.RevokeAll {
		t.Fatalf("first message %q, want %q once subscribed", v, store.RevokeAll)
	}
	for _, user := range []string{"alice", "bob"} {
		if err := other.PublishRevoke(ctx, user); err != nil {
			t.Fatal(err)
		}
		if v := next(user); v != user {
			t.Errorf("got %q, want %q", v, user)
		}
	}

	// The subscription's connection is cut: whatever was published meanwhile
	// is lost, so the subscriber is told to drop everything.
	if err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if v := next("the resubscription"); v != store.RevokeAll {
		t.Fatalf("after a reconnect got %q, want %q", v, store.RevokeAll)
	}
	if err := other.PublishRevoke(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if v := next("carol"); v != "carol" {
		t.Errorf("got %q, want carol", v)
	}

	stop()
	for v := range ch {
		t.Errorf("message %q after stop", v)
	}
}

func TestRevokeSubscriptionEndsWithContext(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(testContext(t))
	ch, stop := s.SubscribeRevoke(ctx)
	defer stop()
	cancel()
	for range ch {
		// Drain; the channel must close.
	}
}
