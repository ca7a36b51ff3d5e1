// Package store keeps swarmhub's shared state in Redis: sessions, users,
// server records, locks, spawn slots, progress and event streams, activity,
// API tokens, login-regulation counters and the revocation broadcast.
//
// Every multi-step update is atomic (MULTI or a Lua script); no method uses
// KEYS. All keys start with the prefix given to New. Several scripts touch
// more than one key, so the store expects a single Redis server (optionally
// behind Sentinel), not Redis Cluster.
//
// Hot path: the store is built so that callers can serve a proxied request
// with no Redis call at all. Sessions and tokens only write when their
// last-seen time is older than touchInterval, and PublishRevoke /
// SubscribeRevoke tell every replica when to drop a user's cached sessions.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrNotFound: the session, user, server or token does not exist (or expired).
	ErrNotFound = errors.New("not found")
	// ErrLocked: someone else holds the lock.
	ErrLocked = errors.New("locked by another holder")
	// ErrLockLost: the lock expired and may now be held by someone else.
	ErrLockLost = errors.New("lock no longer held")
	// ErrInvalidCursor: an event paging cursor is not a stream id.
	ErrInvalidCursor = errors.New("invalid paging cursor")
)

// touchInterval bounds how often reads write a last-seen time back, so
// that a busy session or token costs no write per request.
const touchInterval = time.Minute

// Store is safe for concurrent use.
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	now      func() time.Time
	commands atomic.Uint64
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces time.Now, for tests of expiry arithmetic.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New returns a Store using keys that start with prefix (e.g. "swarmhub:").
// It installs a hook on rdb that counts commands for Stats.
func New(rdb redis.UniversalClient, prefix string, opts ...Option) *Store {
	s := &Store{rdb: rdb, prefix: prefix, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	rdb.AddHook(countHook{&s.commands})
	return s
}

// Client returns the underlying client, for health checks.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Stats are counters since New.
type Stats struct {
	// Commands sent through the client (each command of a pipeline counts;
	// pub/sub traffic does not). It counts commands of every user of the
	// client, not only this Store's.
	Commands uint64
}

// Stats returns the counters, e.g. to show that the hot path makes no
// Redis calls.
func (s *Store) Stats() Stats { return Stats{Commands: s.commands.Load()} }

type countHook struct{ n *atomic.Uint64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(uint64(len(cmds)))
		return next(ctx, cmds)
	}
}

func (s *Store) key(parts ...string) string {
	k := s.prefix
	for _, p := range parts {
		k += p
	}
	return k
}

// randomString returns n random bytes, base64url without padding.
func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Times are stored as Unix milliseconds; the zero time as "0".
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func parseTime(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func fmtBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func parseBool(s string) bool { return s == "1" }

// ms converts a duration to whole milliseconds, at least 1 so that a tiny
// positive TTL never turns into "no expiry".
func ms(d time.Duration) int64 {
	if m := d.Milliseconds(); m > 0 {
		return m
	}
	return 1
}
