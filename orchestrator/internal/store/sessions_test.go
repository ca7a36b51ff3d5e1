package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestSessionCreateAndGet(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)

	a, err := s.CreateSession(ctx, "alice", 30*time.Minute, 8*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateSession(ctx, "alice", 30*time.Minute, 8*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.ID) != 43 || len(a.XSRF) != 43 {
		t.Errorf("id %q and xsrf %q should be 32 bytes in base64url (43 characters)", a.ID, a.XSRF)
	}
	if a.ID == b.ID || a.XSRF == b.XSRF || a.ID == a.XSRF {
		t.Errorf("ids and xsrf tokens must all differ: %+v %+v", a, b)
	}

	got, err := s.GetSession(ctx, a.ID, 30*time.Minute, 8*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "alice" || got.XSRF != a.XSRF || got.ID != a.ID {
		t.Errorf("GetSession = %+v, want %+v", got, a)
	}
	if ttl := rdb.PTTL(ctx, prefix+"session:"+store.HashSessionID(a.ID)).Val(); ttl <= 0 || ttl > 30*time.Minute {
		t.Errorf("session TTL %s, want in (0, idle=30m]", ttl)
	}
	if ids := rdb.SMembers(ctx, prefix+"user-sessions:alice").Val(); len(ids) != 2 {
		t.Errorf("user index holds %v, want both sessions", ids)
	}

	for _, id := range []string{"", "nope", b.ID[:42] + "!", b.ID + "x"} {
		if _, err := s.GetSession(ctx, id, time.Hour, time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession(%q) error = %v, want ErrNotFound", id, err)
		}
	}
}

func TestSessionTTLIsAbsoluteWhenShorterThanIdle(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	sess, err := s.CreateSession(ctx, "alice", 2*time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, prefix+"session:"+store.HashSessionID(sess.ID)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("session TTL %s, want in (0, absolute=1h]", ttl)
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	const idle, absolute = 30 * time.Minute, time.Hour
	type step struct {
		advance time.Duration
		live    bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "fresh", steps: []step{{0, true}}},
		{name: "idle timeout", steps: []step{{idle, false}}},
		{name: "just inside idle", steps: []step{{idle - time.Second, true}}},
		{name: "use slides the idle timeout", steps: []step{{20 * time.Minute, true}, {20 * time.Minute, true}, {idle, false}}},
		{name: "absolute timeout despite use", steps: []step{{20 * time.Minute, true}, {20 * time.Minute, true}, {19 * time.Minute, true}, {time.Minute, false}}},
		{name: "expired stays expired", steps: []step{{idle, false}, {-idle, false}}},
	}
	ctx := testContext(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			s, _ := newStore(t, store.WithClock(clk.Now))
			sess, err := s.CreateSession(ctx, "alice", idle, absolute)
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tc.steps {
				clk.Advance(st.advance)
				_, err := s.GetSession(ctx, sess.ID, idle, absolute)
				switch {
				case st.live && err != nil:
					t.Fatalf("step %d: GetSession error %v, want a live session", i, err)
				case !st.live && !errors.Is(err, store.ErrNotFound):
					t.Fatalf("step %d: GetSession error %v, want ErrNotFound", i, err)
				}
			}
		})
	}
}

func TestSessionRefreshKeepsRedisTTLWithinAbsolute(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clk := newClock()
	s, rdb := newStore(t, store.WithClock(clk.Now))
	sess, err := s.CreateSession(ctx, "alice", 55*time.Minute, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(50 * time.Minute)
	got, err := s.GetSession(ctx, sess.ID, 55*time.Minute, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeen.Equal(clk.Now().Truncate(time.Millisecond)) {
		t.Errorf("LastSeen = %s, want %s", got.LastSeen, clk.Now())
	}
	// 10 minutes of absolute lifetime remain: the TTL must not exceed them.
	if ttl := rdb.PTTL(ctx, prefix+"session:"+store.HashSessionID(sess.ID)).Val(); ttl <= 0 || ttl > 10*time.Minute {
		t.Errorf("session TTL after refresh %s, want in (0, 10m]", ttl)
	}
}

func TestGetSessionWritesOnlyWhenLastSeenIsOld(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clk := newClock()
	s, _ := newStore(t, store.WithClock(clk.Now))
	sess, err := s.CreateSession(ctx, "alice", time.Hour, 8*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Stats().Commands
	for range 5 {
		clk.Advance(10 * time.Second)
		if _, err := s.GetSession(ctx, sess.ID, time.Hour, 8*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Stats().Commands - before; n != 5 {
		t.Errorf("5 reads within a minute sent %d commands, want 5 (one read each, no writes)", n)
	}
	// The first refresh may also load the script into Redis; measure the second.
	for range 2 {
		clk.Advance(time.Minute)
		before = s.Stats().Commands
		if _, err := s.GetSession(ctx, sess.ID, time.Hour, 8*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Stats().Commands - before; n != 2 {
		t.Errorf("a read after a minute sent %d commands, want 2 (read and refresh)", n)
	}
}

func TestSessionExpiresInRedis(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	old, err := s.CreateSession(ctx, "alice", 50*time.Millisecond, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "Redis to expire the session", func() bool {
		return rdb.Exists(ctx, prefix+"session:"+store.HashSessionID(old.ID)).Val() == 0
	})
	if _, err := s.GetSession(ctx, old.ID, time.Hour, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSession of an expired session: %v, want ErrNotFound", err)
	}
	// A new login prunes the expired id from the user's index.
	live, err := s.CreateSession(ctx, "alice", time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ids := rdb.SMembers(ctx, prefix+"user-sessions:alice").Val()
	if len(ids) != 1 || ids[0] != live.Hash {
		t.Errorf("user index = %v, want only the live session %s", ids, live.Hash)
	}
}

func TestDeleteSessions(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	var alice []store.Session
	for range 3 {
		sess, err := s.CreateSession(ctx, "alice", time.Hour, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		alice = append(alice, sess)
	}
	bob, err := s.CreateSession(ctx, "bob", time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// Logout of one session.
	if err := s.DeleteSession(ctx, alice[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, alice[0].ID, time.Hour, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted session still found: %v", err)
	}
	if rdb.SIsMember(ctx, prefix+"user-sessions:alice", alice[0].ID).Val() {
		t.Error("deleted session still in the user index")
	}
	if err := s.DeleteSession(ctx, alice[0].ID); err != nil {
		t.Errorf("deleting twice: %v", err)
	}

	// Block: every remaining session of alice ends, bob's stays.
	n, err := s.DeleteUserSessions(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("DeleteUserSessions = %d, want 2", n)
	}
	for _, sess := range alice {
		if _, err := s.GetSession(ctx, sess.ID, time.Hour, time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session %s of alice survived: %v", sess.ID, err)
		}
	}
	if _, err := s.GetSession(ctx, bob.ID, time.Hour, time.Hour); err != nil {
		t.Errorf("bob's session ended with alice's: %v", err)
	}
	if n, err := s.DeleteUserSessions(ctx, "nobody"); err != nil || n != 0 {
		t.Errorf("DeleteUserSessions(nobody) = %d, %v", n, err)
	}
}

// TestRedisHoldsNoSessionID: whoever reads Redis (or a dump of it) finds no
// cookie value to log in with, only hashes; the hash still finds the session.
func TestRedisHoldsNoSessionID(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	sess, err := s.CreateSession(ctx, "alice", time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Hash != store.HashSessionID(sess.ID) || sess.Hash == sess.ID {
		t.Fatalf("session hash %q for id %q", sess.Hash, sess.ID)
	}
	if _, err := s.GetSession(ctx, sess.ID, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	keys := rdb.Keys(ctx, "*").Val()
	if len(keys) == 0 {
		t.Fatal("no keys in Redis")
	}
	for _, k := range keys {
		var vals []string
		switch rdb.Type(ctx, k).Val() {
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "set":
			vals = rdb.SMembers(ctx, k).Val()
		case "string":
			vals = []string{rdb.Get(ctx, k).Val()}
		default:
			t.Fatalf("unexpected key type of %s", k)
		}
		for _, v := range append(vals, k) {
			if strings.Contains(v, sess.ID) {
				t.Errorf("Redis key %s holds the raw session id", k)
			}
		}
	}
	got, err := s.GetSessionByHash(ctx, sess.Hash, time.Hour, time.Hour)
	if err != nil || got.User != "alice" || got.ID != "" {
		t.Fatalf("GetSessionByHash = %+v, %v", got, err)
	}
	if err := s.DeleteSession(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSessionByHash(ctx, sess.Hash, time.Hour, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after logout: %v, want ErrNotFound", err)
	}
	for _, h := range []string{"", sess.ID, strings.ToUpper(sess.Hash), sess.Hash[:63] + "g"} {
		if _, err := s.GetSessionByHash(ctx, h, time.Hour, time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSessionByHash(%q) = %v, want ErrNotFound", h, err)
		}
	}
}

func TestAccessCookieKeyIsCreatedOnceAndShared(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	a, err := s.AccessCookieKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.New(rdb, prefix).AccessCookieKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || string(a) != string(b) {
		t.Fatalf("keys %x and %x: want one shared 32-byte key", a, b)
	}
}
