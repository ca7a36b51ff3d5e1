package web_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/accesscookie"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// get sends one request to h as a browser would; cookies are added as given.
func (h *realHub) get(t *testing.T, path string, nav bool, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+path, nil)
	if nav {
		req.Header.Set("Accept", "text/html")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func hubCookie(s store.Session) *http.Cookie { return &http.Cookie{Name: hubCookieName, Value: s.ID} }

// TestServerPageGoesThroughTheHubForItsCookie: a page load of /user/alice/
// without an access cookie is sent to the hub, which (with the hub session)
// sets a cookie scoped to /user/alice/ and sends the browser back; that
// cookie alone then opens the server, and the hub cookie alone does not.
func TestServerPageGoesThroughTheHubForItsCookie(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	alice := h.session(t, "alice")
	const page = "/user/alice/tree/a%20b?x=1"

	resp := h.get(t, page, true, hubCookie(alice))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc != "/hub/user-cookie?next="+url.QueryEscape(page) {
		t.Fatalf("page load with only the hub cookie: %d %q, want a redirect to the hub", resp.StatusCode, loc)
	}
	if resp := h.get(t, "/user/alice/api/status", false, hubCookie(alice)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API call with only the hub cookie: %d, want 401", resp.StatusCode)
	}

	resp = h.get(t, loc, true, hubCookie(alice))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != page {
		t.Fatalf("hub: %d %q, want back to %s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	var ac *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == accessCookieName {
			ac = c
		}
	}
	if ac == nil || ac.Path != "/user/alice/" || !ac.HttpOnly || ac.SameSite != http.SameSiteLaxMode || ac.MaxAge <= 0 || ac.MaxAge > 3600 {
		t.Fatalf("access cookie: %+v, want HttpOnly, Lax, Path=/user/alice/, at most an hour", ac)
	}
	if strings.Contains(ac.Value, alice.ID) {
		t.Fatal("the access cookie carries the hub session id")
	}

	resp = h.get(t, page, true, ac)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("page load with the access cookie: %d", resp.StatusCode)
	}
	seen := decodeSeen(t, resp)
	if seen.Authorization != "token server-token-of-alice" || strings.Contains(seen.Cookie, ac.Value) {
		t.Fatalf("upstream saw %+v", seen)
	}

	// Without a hub session the hub sends the browser to log in, and back.
	resp = h.get(t, loc, true)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/hub/login?next="+url.QueryEscape(page) {
		t.Fatalf("hub without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// next must name a server; anything else is refused, never followed.
	for _, next := range []string{"", "/hub/admin", "//evil.example/user/alice/", "https://evil.example/user/alice/", "/user/alice%2f..%2fbob/"} {
		if resp := h.get(t, "/hub/user-cookie?next="+url.QueryEscape(next), true, hubCookie(alice)); resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
			t.Errorf("next=%q: %d, cookies %v; want 400 and none", next, resp.StatusCode, resp.Cookies())
		}
	}
}

// TestAccessCookieOpensOnlyItsServer: alice's cookie does not open bob's
// server, sent by hand to any path; the hub mints none for bob's server to
// alice; an admin's cookie for alice's server does not open bob's.
func TestAccessCookieOpensOnlyItsServer(t *testing.T) {
	h := newRealHub(t, hubConfig{adminAccess: true})
	alice, admin := h.session(t, "alice"), h.session(t, "admin")
	ac, _ := h.accessCookie(t, alice.ID, "alice")
	if ac == nil {
		t.Fatal("no access cookie for alice's own server")
	}
	for _, nav := range []bool{false, true} {
		if resp := h.get(t, "/user/bob/api/status", nav, ac); resp.StatusCode != http.StatusForbidden {
			t.Errorf("alice's cookie on bob's server (page load %v): %d, want 403", nav, resp.StatusCode)
		}
	}
	if ck, resp := h.accessCookie(t, alice.ID, "bob"); ck != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("the hub minted alice a cookie for bob's server: %d %+v", resp.StatusCode, ck)
	}

	adm, _ := h.accessCookie(t, admin.ID, "alice")
	if adm == nil {
		t.Fatal("admin with admin_access got no cookie for alice's server")
	}
	if resp := h.get(t, "/user/alice/api/status", false, adm); resp.StatusCode != http.StatusOK {
		t.Fatalf("admin on alice's server: %d", resp.StatusCode)
	}
	if resp := h.get(t, "/user/bob/api/status", false, adm); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("admin's cookie for alice on bob's server: %d, want 403", resp.StatusCode)
	}

	// Without admin_access the hub refuses the admin, with the proxy's rule.
	h2 := newRealHub(t, hubConfig{rdb: h.rdb})
	if ck, resp := h2.accessCookie(t, admin.ID, "alice"); ck != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("admin without admin_access: %d %+v", resp.StatusCode, ck)
	}
}

// TestForgedAndExpiredAccessCookiesAreRefused: a tampered cookie, one signed
// with another key, one for a session that does not exist and an expired one
// are all refused, as no cookie is.
func TestForgedAndExpiredAccessCookiesAreRefused(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	alice := h.session(t, "alice")
	ac, _ := h.accessCookie(t, alice.ID, "alice")
	if resp := h.get(t, "/user/alice/api/status", false, ac); resp.StatusCode != http.StatusOK {
		t.Fatalf("genuine cookie: %d", resp.StatusCode)
	}
	other := &accesscookie.Signer{}
	if err := other.SetKey([]byte(strings.Repeat("k", 32))); err != nil {
		t.Fatal(err)
	}
	sign := func(s *accesscookie.Signer, c accesscookie.Claims) string {
		v, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	live := accesscookie.Claims{User: "alice", Server: "alice", Session: alice.Hash, Expires: time.Now().Add(time.Hour)}
	flip := []byte(ac.Value)
	flip[len(flip)/2] ^= 1
	expired := live
	expired.Expires = time.Now().Add(-time.Second)
	unknown := live
	unknown.Session = store.HashSessionID("no-such-session-id-no-such-session-id-12345")
	claimsBob := live
	claimsBob.User = "bob" // alice's session, bob's name
	cases := map[string]string{
		"tampered":             string(flip),
		"truncated":            ac.Value[:len(ac.Value)-4],
		"another key":          sign(other, live),
		"expired":              sign(h.access.Signer, expired),
		"unknown session":      sign(h.access.Signer, unknown),
		"another user's claim": sign(h.access.Signer, claimsBob),
		"garbage":              "x",
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			ck := &http.Cookie{Name: accessCookieName, Value: v}
			if resp := h.get(t, "/user/alice/api/status", false, ck); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("API call: %d, want 401", resp.StatusCode)
			}
			resp := h.get(t, "/user/alice/tree", true, ck)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/hub/user-cookie?") {
				t.Errorf("page load: %d %q, want the hub", resp.StatusCode, loc)
			}
		})
	}
}

// TestRevokingTheSessionRevokesItsAccessCookies: logout on the hub that
// minted the cookie, and an admin's revocation on one replica, end the
// cookie on the other replica too, through the revocation broadcast, though
// that replica had it cached.
func TestRevokingTheSessionRevokesItsAccessCookies(t *testing.T) {
	a := newRealHub(t, hubConfig{})
	b := newRealHub(t, hubConfig{rdb: a.rdb})
	subscribe(t, b)

	alice := a.session(t, "alice")
	ac, _ := a.accessCookie(t, alice.ID, "alice")
	for _, h := range []*realHub{a, b} {
		if resp := h.get(t, "/user/alice/api/status", false, ac); resp.StatusCode != http.StatusOK {
			t.Fatalf("before revocation: %d", resp.StatusCode)
		}
	}
	ctx := context.Background()
	if err := a.srv.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if resp := a.get(t, "/user/alice/api/status", false, ac); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoking replica after revocation: %d, want 401", resp.StatusCode)
	}
	// The other replica had the session cached (its ttl is 30 s): only the
	// broadcast empties that entry.
	waitFor(t, 20*time.Second, func() bool { return b.sessions.Len() == 0 },
		func() string { return "the other replica never received the revocation" })
	if resp := b.get(t, "/user/alice/api/status", false, ac); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("other replica after revocation: %d, want 401", resp.StatusCode)
	}

	// Logout ends the cookie as well.
	alice = a.session(t, "alice")
	ac, _ = a.accessCookie(t, alice.ID, "alice")
	if resp := a.get(t, "/user/alice/api/status", false, ac); resp.StatusCode != http.StatusOK {
		t.Fatalf("new session: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, a.ts.URL+"/hub/logout", nil)
	req.AddCookie(hubCookie(alice))
	req.Header.Set("X-XSRFToken", alice.XSRF)
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp := a.get(t, "/user/alice/api/status", false, ac); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %d, want 401", resp.StatusCode)
	}
}

// subscribe feeds h's revocation messages to it, as cmd's watcher does, and
// returns once the subscription is live.
func subscribe(t *testing.T, h *realHub) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, stop := h.st.SubscribeRevoke(ctx)
	t.Cleanup(func() { cancel(); stop() })
	if first := <-ch; first != store.RevokeAll {
		t.Fatalf("first revocation message %q, want %q", first, store.RevokeAll)
	}
	go func() {
		for u := range ch {
			h.srv.DropLocal(u)
		}
	}()
}

// TestAccessCookieIsRenewedPastHalfLife: a cookie in its second half comes
// back fresh on the next answer, so a student working all day never goes
// back through the hub.
func TestAccessCookieIsRenewedPastHalfLife(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	alice := h.session(t, "alice")
	old := time.Now().Add(20 * time.Minute).Truncate(time.Second)
	v, err := h.access.Signer.Sign(accesscookie.Claims{User: "alice", Server: "alice", Session: alice.Hash, Expires: old})
	if err != nil {
		t.Fatal(err)
	}
	resp := h.get(t, "/user/alice/api/status", false, &http.Cookie{Name: accessCookieName, Value: v})
	var fresh *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == accessCookieName {
			fresh = c
		}
	}
	if resp.StatusCode != http.StatusOK || fresh == nil || fresh.Path != "/user/alice/" {
		t.Fatalf("%d, renewed cookie %+v", resp.StatusCode, fresh)
	}
	cl, err := h.access.Signer.Verify(fresh.Value, time.Now())
	if err != nil || !cl.Expires.After(old) || cl.Session != alice.Hash || cl.Server != "alice" {
		t.Fatalf("renewed claims %+v, %v", cl, err)
	}
	// A fresh cookie is not renewed again.
	if resp := h.get(t, "/user/alice/api/status", false, fresh); len(resp.Cookies()) != 0 {
		t.Fatalf("a fresh cookie was renewed: %v", resp.Cookies())
	}
}

// TestAccessCookieSteadyStateCallsNoRedis: once the session is cached,
// requests with an access cookie cost no Redis command.
func TestAccessCookieSteadyStateCallsNoRedis(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	alice := h.session(t, "alice")
	ac, _ := h.accessCookie(t, alice.ID, "alice")
	if resp := h.get(t, "/user/alice/api/status", false, ac); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d", resp.StatusCode)
	}
	var cmds atomic.Int64
	h.rdb.AddHook(countHook{&cmds})
	for range 50 {
		if resp := h.get(t, "/user/alice/api/status", false, ac); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d", resp.StatusCode)
		}
	}
	if n := cmds.Load(); n != 0 {
		t.Fatalf("50 proxied requests sent %d Redis commands, want 0", n)
	}
}

type countHook struct{ n *atomic.Int64 }

func (countHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

func decodeSeen(t *testing.T, resp *http.Response) upstreamSeen {
	t.Helper()
	var s upstreamSeen
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("upstream answer: %v", err)
	}
	return s
}
