package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// RevokeAll is delivered by SubscribeRevoke when the subscription (re)starts:
// messages published while this replica was not subscribed (Redis away,
// connection lost) are gone, so the receiver must drop every cached session
// and token, not just one user's. It cannot be a username ('*' fails every
// canonical-name pattern swarmhub accepts by default).
const RevokeAll = "*"

// revokeQueueMax bounds what a slow receiver can make us hold; beyond it
// the queue collapses into one RevokeAll, which is always safe.
const revokeQueueMax = 1024

// PublishRevoke tells every replica to drop cached sessions and tokens of
// user (after DeleteUserSessions, a block or a delete).
func (s *Store) PublishRevoke(ctx context.Context, user string) error {
	if err := s.rdb.Publish(ctx, s.key("revoke"), user).Err(); err != nil {
		return fmt.Errorf("publish revocation of %q: %w", user, err)
	}
	return nil
}

// SubscribeRevoke delivers revoked usernames until stop is called or ctx
// ends; then the channel is closed. It delivers RevokeAll first, once the
// subscription is active, and again after every reconnect.
//
// This is what lets a replica serve proxied requests from an in-memory
// session cache with no Redis call, while a revocation still takes effect
// within seconds: the cache drops a user on their name, everything on
// RevokeAll. go-redis pings the subscription every few seconds and
// reconnects on failure. A receiver should still bound the age of cached
// entries, since a connection can fail in ways noticed only by that ping.
// Receivers never block the subscription: if they fall far behind, pending
// names are replaced by a single RevokeAll.
func (s *Store) SubscribeRevoke(ctx context.Context) (<-chan string, func()) {
	ctx, cancel := context.WithCancel(ctx)
	ps := s.rdb.Subscribe(ctx, s.key("revoke"))
	in := ps.ChannelWithSubscriptions(redis.WithChannelSize(256))
	out := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		var queue []string
		push := func(v string) {
			if len(queue) >= revokeQueueMax {
				queue = append(queue[:0], RevokeAll)
			}
			queue = append(queue, v)
		}
		for {
			var send chan string
			var head string
			if len(queue) > 0 {
				send, head = out, queue[0]
			}
			select {
			case <-ctx.Done():
				return
			case send <- head:
				queue = queue[1:]
			case m, ok := <-in:
				if !ok {
					return
				}
				switch m := m.(type) {
				case *redis.Subscription:
					if m.Kind == "subscribe" {
						push(RevokeAll)
					}
				case *redis.Message:
					push(m.Payload)
				}
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			_ = ps.Close()
			<-done
		})
	}
	go func() {
		<-ctx.Done()
		stop()
	}()
	return out, stop
}
