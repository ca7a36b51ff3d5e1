package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// loginFrom submits the login form with X-Forwarded-For set to from (none
// when empty) and returns the status.
func (c *client) loginFrom(user, pw, from string) int {
	c.t.Helper()
	_, page := c.do("GET", "/hub/login", "", nil)
	m := formXSRF.FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("no _xsrf in login form: %s", page)
	}
	form := url.Values{"username": {user}, "password": {pw}, "_xsrf": {m[1]}}
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if from != "" {
		hdr["X-Forwarded-For"] = from
	}
	resp, _ := c.do("POST", "/hub/login", form.Encode(), hdr)
	return resp.StatusCode
}

// behindProxy is a hub whose clients (all on 127.0.0.1 here) are a trusted
// reverse proxy.
func behindProxy(t *testing.T) *env {
	return newEnvWith(t, func(o *web.Options, d *web.Deps) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
}

// An attacker failing again and again from one address does not lock the
// student out: she logs in from her own address. A guess spread over many
// addresses still meets the per-account ceiling (10), for everyone.
func TestLockoutIsPerAccountAndAddressWithAnAccountCeiling(t *testing.T) {
	e := behindProxy(t)
	for range 20 {
		e.client(t).loginFrom("alice", "guess", "198.51.100.66")
	}
	if got := e.client(t).loginFrom("alice", testPassword, "198.51.100.66"); got != http.StatusUnauthorized {
		t.Fatalf("the attacking address with the right password: want 401 (banned), got %d", got)
	}
	if got := e.client(t).loginFrom("alice", testPassword, "192.0.2.10"); got != http.StatusFound {
		t.Fatalf("alice from her own address after an attack from another: want 302, got %d", got)
	}

	// bob: 3 failures from each of 3 addresses, then 1 from a fourth.
	for i := range 3 {
		for range 3 {
			e.client(t).loginFrom("bob", "guess", fmt.Sprintf("203.0.113.%d", i+1))
		}
	}
	if got := e.client(t).loginFrom("bob", "guess", "203.0.113.4"); got != http.StatusUnauthorized {
		t.Fatalf("10th failure: %d", got)
	}
	if got := e.client(t).loginFrom("bob", testPassword, "192.0.2.20"); got != http.StatusUnauthorized {
		t.Fatalf("bob after 10 failures over 4 addresses: want 401 (account ceiling), got %d", got)
	}
}

// X-Forwarded-For counts only when the direct peer is a trusted proxy;
// from anyone else it is ignored, so rotating it does not dodge a ban.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	t.Run("untrusted peer", func(t *testing.T) {
		e := newEnv(t)
		for i := range 3 {
			e.client(t).loginFrom("alice", "guess", fmt.Sprintf("203.0.113.%d", i+1))
		}
		if got := e.client(t).loginFrom("alice", testPassword, "192.0.2.99"); got != http.StatusUnauthorized {
			t.Fatalf("a forged X-Forwarded-For from an untrusted peer dodged the ban: %d", got)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		e := behindProxy(t)
		for range 3 {
			// The client's own header part is to the left of what the
			// proxy appended; only the rightmost untrusted hop counts.
			e.client(t).loginFrom("alice", "guess", "192.0.2.99, 203.0.113.1")
		}
		if got := e.client(t).loginFrom("alice", testPassword, "203.0.113.1"); got != http.StatusUnauthorized {
			t.Fatalf("the failing client's address: want 401, got %d", got)
		}
		if got := e.client(t).loginFrom("alice", testPassword, "192.0.2.99"); got != http.StatusFound {
			t.Fatalf("another client behind the proxy: want 302, got %d", got)
		}
	})
}

// IPv6 clients are counted by /64: fresh addresses from the same /64 stay
// banned, the next /64 is another client.
func TestLockoutGroupsIPv6By64(t *testing.T) {
	e := behindProxy(t)
	for i := range 3 {
		e.client(t).loginFrom("alice", "guess", fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	if got := e.client(t).loginFrom("alice", testPassword, "2001:db8:1:2:ffff::1"); got != http.StatusUnauthorized {
		t.Fatalf("another address in the failing /64: want 401, got %d", got)
	}
	if got := e.client(t).loginFrom("alice", testPassword, "2001:db8:1:3::1"); got != http.StatusFound {
		t.Fatalf("an address in another /64: want 302, got %d", got)
	}
}

// A GET cannot log anyone out (an <img> on any page could), a POST needs the
// session's _xsrf, and the confirm page's form does it.
func TestLogoutIsAPostWithXSRF(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.login("alice", testPassword)
	loggedIn := func() bool {
		resp, _ := c.do("GET", "/hub/api/user", "", nil)
		return resp.StatusCode == http.StatusOK
	}
	resp, page := c.do("GET", "/hub/logout", "", nil)
	if resp.StatusCode != http.StatusOK || !loggedIn() {
		t.Fatalf("GET /hub/logout: %d, still logged in: %v", resp.StatusCode, loggedIn())
	}
	m := formXSRF.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `action="/hub/logout"`) {
		t.Fatalf("the confirm page has no logout form: %s", page)
	}
	for _, h := range []map[string]string{
		{"Content-Type": "application/x-www-form-urlencoded"},
		{"Content-Type": "application/x-www-form-urlencoded", "X-XSRFToken": "wrong"},
	} {
		resp, _ = c.do("POST", "/hub/logout", "", h)
		if resp.StatusCode != http.StatusForbidden || !loggedIn() {
			t.Fatalf("POST /hub/logout without the _xsrf (%v): %d, still logged in: %v", h, resp.StatusCode, loggedIn())
		}
	}
	resp, _ = c.do("POST", "/hub/logout", url.Values{"_xsrf": {m[1]}}.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != http.StatusOK || loggedIn() {
		t.Fatalf("POST /hub/logout with the form: %d, still logged in: %v", resp.StatusCode, loggedIn())
	}
	if len(e.proxy.closedSessions) != 1 {
		t.Fatalf("logout closed the websockets of %d sessions, want 1", len(e.proxy.closedSessions))
	}
}

// Taking a user off the allow list ends their sessions and websockets, as
// blocking does.
func TestDisallowingEndsSessions(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	admin := e.client(t)
	admin.login("admin", testPassword)
	resp, body := admin.do("PATCH", "/hub/api/users/alice", `{"allowed":false}`, map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed=false: %d %s", resp.StatusCode, body)
	}
	if resp, _ := alice.do("GET", "/hub/api/user", "", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a disallowed user's session still works: %d", resp.StatusCode)
	}
	if len(e.proxy.closed) != 1 || e.proxy.closed[0] != "alice" {
		t.Fatalf("websockets closed for %v, want alice's", e.proxy.closed)
	}
	if got := e.client(t).login("alice", testPassword).StatusCode; got != http.StatusForbidden {
		t.Fatalf("a disallowed user logged in again: %d", got)
	}
}

// countingCheck is a dependency check that counts its runs (an LDAP bind,
// a Redis ping in production).
type countingCheck struct {
	n   atomic.Int64
	err error
}

func (c *countingCheck) Check(context.Context) error {
	c.n.Add(1)
	return c.err
}

// Anonymous /hub/health answers from a cached check, without running the
// checks per request, and says only ok or degraded; which dependency is
// down and why is for admins.
func TestAnonymousHealthIsCachedAndTerse(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	ldap := &countingCheck{err: errors.New("ldap://ldap.internal:389 refused the service bind")}
	e := newEnvWith(t, func(o *web.Options, d *web.Deps) {
		o.Clock = func() time.Time { return now }
		o.Checks = map[string]web.Checker{"auth": ldap}
	})
	anon := e.client(t)
	for range 20 {
		resp, body := anon.do("GET", "/hub/health", "", nil)
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"status":"degraded"}` {
			t.Fatalf("anonymous health: %d %s", resp.StatusCode, body)
		}
	}
	if resp, body := anon.do("GET", "/hub/health?strict=1", "", nil); resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "ldap") {
		t.Fatalf("anonymous strict health: %d %s", resp.StatusCode, body)
	}
	if n := ldap.n.Load(); n != 1 {
		t.Fatalf("21 anonymous health requests ran the LDAP check %d times, want 1 (cached)", n)
	}
	student := e.client(t)
	student.login("alice", testPassword)
	if _, body := student.do("GET", "/hub/health", "", nil); strings.Contains(body, "ldap") {
		t.Fatalf("a student sees the health details: %s", body)
	}
	admin := e.client(t)
	admin.login("admin", testPassword)
	_, body := admin.do("GET", "/hub/health", "", nil)
	var h struct {
		Status string
		Checks map[string]string
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.Status != "degraded" || !strings.Contains(h.Checks["auth"], "refused the service bind") {
		t.Fatalf("admin health: %s (%v)", body, err)
	}
}

// A flood of failed logins writes a bounded number of events: per user and
// address the first few, then a summary at 10, 100, ...; over everything at
// most Max, then one notice.
func TestFailedLoginFloodIsCountedNotStored(t *testing.T) {
	e := newEnvWith(t, func(o *web.Options, d *web.Deps) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		d.FailedLogins = auth.NewFailureLog(d.Store.(*store.Store), auth.FailureLogOptions{Each: 3, Max: 20, Window: time.Minute})
	})
	ctx := context.Background()
	failedEvents := func() []store.Event {
		evs, err := e.st.Events(ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Event
		for _, ev := range evs {
			if ev.Kind == "login-failed" {
				out = append(out, ev)
			}
		}
		return out
	}
	// One account from one address: 3 failures ban it; of the 9 refusals
	// of the ban, counted apart so the admin sees it, the first 3 are
	// stored; the 10th would bring a summary.
	for range 12 {
		e.client(t).loginFrom("alice", "guess", "198.51.100.1")
	}
	evs := failedEvents()
	refusals := 0
	for _, ev := range evs {
		if strings.Contains(ev.Message, "too many failures") {
			refusals++
		}
	}
	if len(evs) != 6 || refusals != 3 {
		t.Fatalf("12 failures of one account from one address stored %d events (%d ban refusals), want 6 (3): %+v", len(evs), refusals, evs)
	}
	for range 7 {
		e.client(t).loginFrom("alice", "guess", "198.51.100.1")
	}
	if evs = failedEvents(); len(evs) != 7 || !strings.Contains(evs[0].Message, "10 failed logins from 198.51.100.1") {
		t.Fatalf("after 10 refusals: %d events, newest %+v; want a summary", len(evs), evs[0])
	}
	// Many accounts from many addresses: capped at Max (20) and one notice.
	for i := range 60 {
		e.client(t).loginFrom(fmt.Sprintf("flood%d", i), "guess", fmt.Sprintf("203.0.113.%d", i+1))
	}
	evs = failedEvents()
	if len(evs) != 21 || !strings.Contains(evs[0].Message, "further ones are only counted") {
		t.Fatalf("a flood of 72 failures stored %d events, want 21: newest %+v", len(evs), evs[0])
	}
}

// watchRevocations does for a test hub what cmd/orchestrator's subscriber
// does; it returns once the subscription is active.
func (h *realHub) watchRevocations(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, stop := h.st.SubscribeRevoke(ctx)
	t.Cleanup(func() { cancel(); stop() })
	if first := <-ch; first != store.RevokeAll {
		t.Fatalf("first revocation message %q, want the resubscribe marker", first)
	}
	go func() {
		for m := range ch {
			h.srv.DropLocal(m)
		}
	}()
}

// Logging out on replica A closes the session's websocket held on replica
// B (both sharing one Redis), and leaves the same user's other session and
// its websocket alone.
func TestLogoutOnOneReplicaClosesWebsocketsOnAnother(t *testing.T) {
	up := newUpstream(t)
	a := newRealHub(t, hubConfig{upstream: up})
	b := newRealHub(t, hubConfig{upstream: up, rdb: a.rdb})
	a.watchRevocations(t)
	b.watchRevocations(t)

	loggingOut, staying := a.session(t, "alice"), a.session(t, "alice")
	upgrade := func(s store.Session) string {
		// The browser's access cookie for alice's server, minted on replica
		// B for this session (the proxy takes no hub cookie).
		ck, resp := b.accessCookie(t, s.ID, "alice")
		if ck == nil {
			t.Fatalf("no access cookie for alice's session: %d", resp.StatusCode)
		}
		return "GET /user/alice/api/kernels/k/channels HTTP/1.1\r\nHost: hub.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://hub.example\r\n" +
			"Cookie: " + ck.Name + "=" + ck.Value + "\r\n\r\n"
	}
	closing := dialUpgrade(t, b.ts.Listener.Addr().String(), upgrade(loggingOut))
	other := dialUpgrade(t, b.ts.Listener.Addr().String(), upgrade(staying))
	waitFor(t, 10*time.Second, func() bool { return b.px.OpenWebsockets() == 2 }, func() string {
		return fmt.Sprintf("replica B tracks %d websockets, want 2", b.px.OpenWebsockets())
	})

	req, _ := http.NewRequest(http.MethodPost, a.ts.URL+"/hub/logout", strings.NewReader(url.Values{"_xsrf": {loggingOut.XSRF}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: hubCookieName, Value: loggingOut.ID})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout on replica A: %d", resp.StatusCode)
	}

	select {
	case first := <-closing.done:
		if len(first) < 4 || first[0] != 0x88 || first[2] != 0x03 || first[3] != 0xf0 {
			t.Fatalf("the logged-out session's websocket on replica B ended with %x, want a 1008 close frame", first)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the logged-out session's websocket on replica B is still open")
	}
	waitFor(t, 10*time.Second, func() bool { return b.px.OpenWebsockets() == 1 }, func() string {
		return fmt.Sprintf("replica B tracks %d websockets, want 1 (the other session's)", b.px.OpenWebsockets())
	})
	select {
	case <-other.done:
		t.Fatal("the other session's websocket was closed too")
	default:
	}
	// Replica B no longer lets the logged-out session through.
	req, _ = http.NewRequest(http.MethodGet, b.ts.URL+"/hub/api/user", nil)
	req.AddCookie(&http.Cookie{Name: hubCookieName, Value: loggingOut.ID})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the logged-out session on replica B: %d, want 403", resp.StatusCode)
	}
}
