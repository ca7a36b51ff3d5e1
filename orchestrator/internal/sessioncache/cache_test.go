package sessioncache

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// flakyStore is a fault a real Redis cannot produce on demand mid-test.
type flakyStore struct {
	down    bool
	reads   int
	blocked bool
}

var errDown = errors.New("dial tcp: connection refused")

func (f *flakyStore) GetSessionByHash(ctx context.Context, hash string, idle, abs time.Duration) (store.Session, error) {
	f.reads++
	if f.down {
		return store.Session{}, errDown
	}
	if hash != store.HashSessionID("good") {
		return store.Session{}, store.ErrNotFound
	}
	return store.Session{Hash: hash, User: "alice", XSRF: "x"}, nil
}

func (f *flakyStore) GetUser(ctx context.Context, name string) (store.User, error) {
	if f.down {
		return store.User{}, errDown
	}
	return store.User{Name: name, Blocked: f.blocked}, nil
}

func (f *flakyStore) LookupToken(ctx context.Context, plain string) (store.Token, error) {
	return store.Token{}, store.ErrNotFound
}

func reqWith(cookie string) *http.Request {
	r, _ := http.NewRequest("GET", "/user/alice/", nil)
	r.AddCookie(&http.Cookie{Name: "sid", Value: cookie})
	return r
}

func TestSessionCacheServesFromMemoryAndDropsOnRevoke(t *testing.T) {
	fs := &flakyStore{}
	c := New(fs, time.Hour, time.Hour, 30*time.Second, "sid")
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	for range 100 {
		if id, ok := c.Identify(reqWith("good")); !ok || id.User != "alice" {
			t.Fatal("identify failed")
		}
	}
	if fs.reads != 1 {
		t.Fatalf("want one store read for 100 requests, got %d", fs.reads)
	}
	c.DropUser("alice")
	fs.blocked = true
	if _, ok := c.Identify(reqWith("good")); ok {
		t.Fatal("revoked (blocked) user still identified")
	}
}

func TestSessionCacheStaleIfErrorWhileRedisIsDown(t *testing.T) {
	fs := &flakyStore{}
	c := New(fs, time.Hour, time.Hour, 30*time.Second, "sid")
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	if _, ok := c.Identify(reqWith("good")); !ok {
		t.Fatal("identify failed")
	}
	fs.down = true
	now = now.Add(2 * time.Minute)
	if _, ok := c.Identify(reqWith("good")); !ok {
		t.Fatal("known session refused while Redis is down within the stale window")
	}
	if _, ok := c.Identify(reqWith("unknown")); ok {
		t.Fatal("unknown session accepted while Redis is down")
	}
	now = now.Add(10 * time.Minute)
	if _, ok := c.Identify(reqWith("good")); ok {
		t.Fatal("session served past the stale window")
	}
}

func TestSessionCacheFailsClosedWhenConfigured(t *testing.T) {
	fs := &flakyStore{}
	c := New(fs, time.Hour, time.Hour, 30*time.Second, "sid")
	c.StaleIfError = 0
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	c.Identify(reqWith("good"))
	fs.down = true
	now = now.Add(time.Minute)
	if _, ok := c.Identify(reqWith("good")); ok {
		t.Fatal("fail-closed cache served a session while Redis is down")
	}
}

// A logout names the session by its hash; the cache drops that session,
// reads the store again for it, and keeps serving everything else.
func TestSessionCacheDropsOneSessionByItsHash(t *testing.T) {
	fs := &flakyStore{}
	c := New(fs, time.Hour, time.Hour, 30*time.Second, "sid")
	id, ok := c.Identify(reqWith("good"))
	if !ok || id.SessionHash != store.HashSessionID("good") {
		t.Fatalf("identity %+v: want the session's hash as SessionHash", id)
	}
	c.DropSession(store.HashSessionID("other"))
	c.Identify(reqWith("good"))
	if fs.reads != 1 {
		t.Fatalf("dropping another session cost a store read: %d", fs.reads)
	}
	c.DropSession(id.SessionHash)
	c.Identify(reqWith("good"))
	if fs.reads != 2 {
		t.Fatalf("after DropSession the session was not read again: %d reads", fs.reads)
	}
}
