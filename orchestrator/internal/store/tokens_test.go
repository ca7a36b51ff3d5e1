package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clk := newClock()
	s, _ := newStore(t, store.WithClock(clk.Now))

	plain, tok, err := s.CreateToken(ctx, "alice", "grading script")
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 64 {
		t.Errorf("token %d characters, want 64 hex digits", len(plain))
	}
	if tok.User != "alice" || tok.Note != "grading script" || tok.ID == "" || !tok.LastUsed.IsZero() {
		t.Errorf("token metadata %+v", tok)
	}
	clk.Advance(time.Second)
	plain2, tok2, err := s.CreateToken(ctx, "alice", "second")
	if err != nil {
		t.Fatal(err)
	}
	_, bobTok, err := s.CreateToken(ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Second)
	got, err := s.LookupToken(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || got.User != "alice" || !got.LastUsed.Equal(clk.Now()) {
		t.Errorf("LookupToken = %+v, want %+v used now", got, tok)
	}
	// Within a minute a lookup is one read and no write.
	before := s.Stats().Commands
	if _, err := s.LookupToken(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().Commands - before; n != 1 {
		t.Errorf("a repeated lookup sent %d commands, want 1", n)
	}

	for _, bad := range []string{"", "x", strings.Repeat("g", 64), plain[:63] + "0" + "0", strings.ToUpper(plain)} {
		if bad == plain {
			continue
		}
		if _, err := s.LookupToken(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LookupToken(%q) = %v, want ErrNotFound", bad, err)
		}
	}

	list, err := s.ListTokens(ctx, "alice")
	if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[1].ID != tok2.ID {
		t.Errorf("ListTokens(alice) = %+v, %v", list, err)
	}

	// Alice cannot revoke bob's token by its id.
	if err := s.DeleteToken(ctx, "alice", bobTok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteToken of another user's token: %v, want ErrNotFound", err)
	}
	if err := s.DeleteToken(ctx, "alice", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupToken(ctx, plain); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked token still accepted: %v", err)
	}
	if _, err := s.LookupToken(ctx, plain2); err != nil {
		t.Errorf("the other token of alice stopped working: %v", err)
	}
	if n, err := s.DeleteUserTokens(ctx, "alice"); err != nil || n != 1 {
		t.Errorf("DeleteUserTokens = %d, %v; want 1", n, err)
	}
	if _, err := s.LookupToken(ctx, plain2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token survived DeleteUserTokens: %v", err)
	}
	if list, err := s.ListTokens(ctx, "bob"); err != nil || len(list) != 1 {
		t.Errorf("bob's tokens = %+v, %v", list, err)
	}
}

func TestPlainTokenNeverStored(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	plain, _, err := s.CreateToken(ctx, "alice", "note")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupToken(ctx, plain); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(plain))
	hashed := hex.EncodeToString(sum[:])

	dump := dumpRedis(ctx, t, rdb)
	if strings.Contains(dump, plain) {
		t.Fatal("the plain token is stored in Redis")
	}
	// The scan itself must see token data, or this test proves nothing.
	if !strings.Contains(dump, hashed) {
		t.Fatal("the token's hash was not found by the scan: the scan misses data")
	}
}

// dumpRedis renders every key and value in the database as text.
func dumpRedis(ctx context.Context, t *testing.T, rdb *redis.Client) string {
	t.Helper()
	var b strings.Builder
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if !strings.HasPrefix(k, prefix) {
			t.Errorf("key %q lacks the prefix %q", k, prefix)
		}
		b.WriteString(k + "\n")
		var v any
		var err error
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "set":
			v, err = rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rdb.XRange(ctx, k, "-", "+").Result()
		default:
			t.Fatalf("key %q has unexpected type %q", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(fmt.Sprint(v) + "\n")
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCounters(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)

	if n, err := s.Counter(ctx, "fail:user:alice"); err != nil || n != 0 {
		t.Errorf("Counter of a new key = %d, %v", n, err)
	}
	for want := int64(1); want <= 3; want++ {
		ttl := 10 * time.Second
		if want > 1 {
			ttl = time.Hour // later increments must not extend the window
		}
		n, err := s.Incr(ctx, "fail:user:alice", ttl)
		if err != nil || n != want {
			t.Fatalf("Incr = %d, %v; want %d", n, err, want)
		}
	}
	if ttl := rdb.PTTL(ctx, prefix+"counter:fail:user:alice").Val(); ttl <= 0 || ttl > 10*time.Second {
		t.Errorf("counter TTL %s, want the first increment's (0, 10s]", ttl)
	}
	if n, err := s.Counter(ctx, "fail:user:alice"); err != nil || n != 3 {
		t.Errorf("Counter = %d, %v; want 3", n, err)
	}
	if err := s.ClearCounter(ctx, "fail:user:alice"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Counter(ctx, "fail:user:alice"); n != 0 {
		t.Errorf("Counter after clear = %d", n)
	}

	// The window closes on its own.
	if _, err := s.Incr(ctx, "fail:ip:10.0.0.1", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "the counter to expire", func() bool {
		n, err := s.Counter(ctx, "fail:ip:10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	})

	if on, d, err := s.Flag(ctx, "ban:alice"); err != nil || on || d != 0 {
		t.Errorf("Flag of a new key = %v, %s, %v", on, d, err)
	}
	if err := s.SetFlag(ctx, "ban:alice", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if on, d, err := s.Flag(ctx, "ban:alice"); err != nil || !on || d <= 0 || d > 5*time.Minute {
		t.Errorf("Flag = %v, %s, %v; want raised for up to 5m", on, d, err)
	}
	if err := s.ClearFlag(ctx, "ban:alice"); err != nil {
		t.Fatal(err)
	}
	if on, _, err := s.Flag(ctx, "ban:alice"); err != nil || on {
		t.Errorf("Flag after clear = %v, %v", on, err)
	}
}

// A token made with an expiry works until then and is neither found nor
// listed afterwards; Redis is told to drop its record.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clk := newClock()
	s, rdb := newStore(t, store.WithClock(clk.Now))
	plain, tok, err := s.CreateTokenExpiring(ctx, "alice", "one hour", clk.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	forever, _, err := s.CreateToken(ctx, "alice", "forever")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.LookupToken(ctx, plain); err != nil || !got.Expires.Equal(tok.Expires) {
		t.Fatalf("before expiry: %+v %v", got, err)
	}
	keys, err := rdb.Keys(ctx, "*token:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	withTTL := 0
	for _, k := range keys {
		if d := rdb.PTTL(ctx, k).Val(); d > 0 {
			withTTL++
			if d < time.Hour || d > time.Hour+2*time.Minute {
				t.Errorf("%s expires in %v, want about an hour", k, d)
			}
		}
	}
	if withTTL != 1 {
		t.Errorf("%d token records carry a Redis expiry, want exactly the expiring one", withTTL)
	}
	clk.Advance(time.Hour)
	if _, err := s.LookupToken(ctx, plain); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired token: %v, want ErrNotFound", err)
	}
	if _, err := s.LookupToken(ctx, forever); err != nil {
		t.Errorf("token without expiry after an hour: %v", err)
	}
	toks, err := s.ListTokens(ctx, "alice")
	if err != nil || len(toks) != 1 || toks[0].Note != "forever" {
		t.Errorf("listed after expiry: %+v %v, want only the token without expiry", toks, err)
	}
}
