// Package sessioncache answers "who is this request from?" (session cookie
// or API token) from memory, reading Redis only on a miss.
package sessioncache

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Identity is who a request comes from.
type Identity struct {
	User  string
	Admin bool
	Via   string // "session" or "token"
	// SessionID is the hub cookie's value; empty when the session was
	// named by its hash (a server's access cookie).
	SessionID string
	// SessionHash is the session's hash (store.HashSessionID).
	SessionHash string
	XSRF        string
	// Scopes a token is limited to (nil: all of its owner's).
	Scopes []string
	// Service names the configured service a token belongs to; User is
	// then empty.
	Service string
}

// Actor names the caller in events and stop reasons.
func (id Identity) Actor() string {
	if id.Service != "" {
		return "service " + id.Service
	}
	return id.User
}

// identityStore is what the cache reads on a miss.
type identityStore interface {
	GetSessionByHash(ctx context.Context, hash string, idle, absolute time.Duration) (store.Session, error)
	GetUser(ctx context.Context, name string) (store.User, error)
	LookupToken(ctx context.Context, plain string) (store.Token, error)
}

// Cache answers "who is this?" for proxied requests from memory.
// An entry is trusted for ttl; revocations (block, delete, logout) are
// pushed to every replica through Redis pub/sub and drop entries at once, so
// the ttl only bounds the damage of a missed message (Redis restart).
//
// When Redis cannot be reached, an identity that was valid within the last
// StaleIfError is still served (students keep working through a Redis
// restart; nobody can be revoked meanwhile, because revoking needs Redis
// too). New logins fail closed: they need Redis to create a session.
type Cache struct {
	st         identityStore
	idle, max  time.Duration
	ttl        time.Duration
	cookieName string
	now        func() time.Time
	// StaleIfError is how long a cached identity outlives its ttl while
	// Redis is unreachable; 0 turns this off (fail closed).
	StaleIfError time.Duration

	mu      sync.RWMutex
	entries map[string]cacheEntry // key: "s:"+session hash or "t:"+sha256(token)
	byUser  map[string]map[string]struct{}
}

type cacheEntry struct {
	id      Identity
	fetched time.Time
	until   time.Time // the credential's own end (an expiring token); zero: none
}

// maxCacheEntries bounds memory under a flood of forged cookies: past it the
// cache starts over (a miss costs one Redis read).
const maxCacheEntries = 200_000

// New builds a cache over st.
func New(st identityStore, idle, max, ttl time.Duration, cookieName string) *Cache {
	return &Cache{st: st, idle: idle, max: max, ttl: ttl, cookieName: cookieName, now: time.Now,
		StaleIfError: 5 * time.Minute,
		entries:      map[string]cacheEntry{}, byUser: map[string]map[string]struct{}{}}
}

// Identify reads the session cookie or an API token from r.
func (c *Cache) Identify(r *http.Request) (Identity, bool) {
	if tok := TokenFromHeader(r); tok != "" {
		sum := sha256.Sum256([]byte(tok))
		key := "t:" + string(sum[:])
		if id, ok := c.cached(key); ok {
			return id, true
		}
		t, err := c.st.LookupToken(r.Context(), tok)
		if err != nil {
			return c.stale(key, err)
		}
		// LookupToken refuses an expired token; the entry ends with it.
		return c.fill(r.Context(), key, Identity{User: t.User, Via: "token", Scopes: t.Scopes}, t.Expires)
	}
	ck, err := r.Cookie(c.cookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return Identity{}, false
	}
	id, ok := c.Session(r.Context(), store.HashSessionID(ck.Value))
	if ok {
		id.SessionID = ck.Value
	}
	return id, ok
}

// Session answers for the session with this hash: its user, while it lives.
func (c *Cache) Session(ctx context.Context, hash string) (Identity, bool) {
	key := "s:" + hash
	if id, ok := c.cached(key); ok {
		return id, true
	}
	s, err := c.st.GetSessionByHash(ctx, hash, c.idle, c.max)
	if err != nil {
		return c.stale(key, err)
	}
	return c.fill(ctx, key, Identity{User: s.User, Via: "session", SessionHash: s.Hash, XSRF: s.XSRF}, time.Time{})
}

func (c *Cache) cached(key string) (Identity, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || c.now().Sub(e.fetched) > c.ttl || e.past(c.now()) {
		return Identity{}, false
	}
	return e.id, true
}

func (e cacheEntry) past(now time.Time) bool { return !e.until.IsZero() && !now.Before(e.until) }

// stale serves an expired entry when the store failed for a reason other
// than "no such session" and the entry is recent enough.
func (c *Cache) stale(key string, err error) (Identity, bool) {
	if errors.Is(err, store.ErrNotFound) || c.StaleIfError <= 0 {
		return Identity{}, false
	}
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || c.now().Sub(e.fetched) > c.ttl+c.StaleIfError || e.past(c.now()) {
		return Identity{}, false
	}
	return e.id, true
}

func (c *Cache) fill(ctx context.Context, key string, id Identity, until time.Time) (Identity, bool) {
	u, err := c.st.GetUser(ctx, id.User)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return c.stale(key, err)
	}
	if err != nil || u.Blocked {
		return Identity{}, false
	}
	id.Admin = u.Admin
	c.mu.Lock()
	if len(c.entries) >= maxCacheEntries {
		c.entries = map[string]cacheEntry{}
		c.byUser = map[string]map[string]struct{}{}
	}
	c.entries[key] = cacheEntry{id: id, fetched: c.now(), until: until}
	keys := c.byUser[id.User]
	if keys == nil {
		keys = map[string]struct{}{}
		c.byUser[id.User] = keys
	}
	keys[key] = struct{}{}
	c.mu.Unlock()
	return id, true
}

// DropUser forgets every cached identity of user.
func (c *Cache) DropUser(user string) {
	c.mu.Lock()
	for k := range c.byUser[user] {
		delete(c.entries, k)
	}
	delete(c.byUser, user)
	c.mu.Unlock()
}

// DropSession forgets one session (logout), named by its hash
// (store.HashSessionID), which is also what revocation messages carry.
func (c *Cache) DropSession(hash string) {
	c.mu.Lock()
	delete(c.entries, "s:"+hash)
	c.mu.Unlock()
}

// DropAll empties the cache (after a missed-revocation window).
func (c *Cache) DropAll() {
	c.mu.Lock()
	c.entries = map[string]cacheEntry{}
	c.byUser = map[string]map[string]struct{}{}
	c.mu.Unlock()
}

// Len reports the number of cached identities (metrics, tests).
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// TokenFromHeader accepts "Authorization: token X" and "Bearer X".
func TokenFromHeader(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, p := range []string{"token ", "Token ", "bearer ", "Bearer "} {
		if strings.HasPrefix(h, p) {
			return strings.TrimSpace(h[len(p):])
		}
	}
	return ""
}
