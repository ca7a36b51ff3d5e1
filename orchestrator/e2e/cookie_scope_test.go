package e2e_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

// TestCookieScope is issue 13 item 2 on the real stack: the hub cookie is
// scoped to /hub/; a browser that follows redirects opens its server through
// the hub and comes back with an access cookie scoped to /user/NAME/; that
// cookie does not open another student's server; after logout it opens
// nothing.
func TestCookieScope(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deployTiny(t, "cookies", "")

	// The login answer's own Set-Cookie, read from a first browser.
	probe := newBrowser(t, h.base)
	_, page := probe.get("/hub/login")
	m := hiddenXSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login page has no _xsrf field:\n%s", page)
	}
	resp, err := probe.c.PostForm(h.base+"/hub/login", url.Values{"username": {"alice"}, "password": {password}, "_xsrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var hubCookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "swarmhub-session" && c.MaxAge > 0 {
			hubCookie = c
		}
	}
	if hubCookie == nil || hubCookie.Path != "/hub/" || !hubCookie.HttpOnly {
		t.Fatalf("hub cookie after login: %+v, want HttpOnly with Path=/hub/", hubCookie)
	}
	alice := newBrowser(t, h.base)
	if code := alice.login("alice", password); code != http.StatusFound {
		t.Fatalf("alice login: %d", code)
	}
	bob := newBrowser(t, h.base)
	if code := bob.login("bob", password); code != http.StatusFound {
		t.Fatalf("bob login: %d", code)
	}
	alice.startServer("alice")
	bob.startServer("bob")

	// A plain browser: a jar, redirects followed, nothing added by hand.
	jar, _ := cookiejar.New(nil)
	hub, _ := url.Parse(h.base + "/hub/")
	jar.SetCookies(hub, alice.c.Jar.Cookies(hub))
	var hops []string
	plain := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		hops = append(hops, r.URL.Path)
		return nil
	}}
	req, _ := http.NewRequest(http.MethodGet, h.base+"/user/alice/api/status", nil)
	req.Header.Set("Accept", "text/html")
	resp, err = plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(hops) != 2 || hops[0] != "/hub/user-cookie" {
		t.Fatalf("opening alice's server: %d %s after hops %v, want 200 through /hub/user-cookie", resp.StatusCode, body, hops)
	}
	server, _ := url.Parse(h.base + "/user/alice/")
	var access *http.Cookie
	for _, c := range jar.Cookies(server) {
		if c.Name == accessCookieName {
			access = c
		}
	}
	if access == nil {
		t.Fatal("no access cookie for /user/alice/ after the round trip")
	}
	for _, c := range jar.Cookies(hub) {
		if c.Name == accessCookieName {
			t.Fatal("the access cookie is sent to /hub/ too")
		}
	}

	// Alice's cookie, sent by hand to bob's server, is refused.
	req, _ = http.NewRequest(http.MethodGet, h.base+"/user/bob/api/status", nil)
	req.Header.Set("Cookie", accessCookieName+"="+access.Value)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("alice's access cookie on bob's server: %d, want 403", resp.StatusCode)
	}

	// Logout ends the session and with it the access cookie.
	if code, body := alice.api(http.MethodPost, "/hub/logout", nil); code >= 400 {
		t.Fatalf("logout: %d %s", code, body)
	}
	req, _ = http.NewRequest(http.MethodGet, h.base+"/user/alice/api/status", nil)
	req.Header.Set("Cookie", accessCookieName+"="+access.Value)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), "last_activity") {
		t.Fatalf("access cookie after logout: %d %s, want 401", resp.StatusCode, body)
	}
}
