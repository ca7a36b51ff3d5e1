package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/accesscookie"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// access is who may use a route.
type access int

const (
	public      access = iota // everyone, logged in or not
	anyUser                   // any authenticated identity
	selfOrAdmin               // the user named in the path, or an admin
	adminOnly                 // admins
	proxyOwner                // /user/NAME/: NAME, or an admin when admin_access is on
)

func (a access) String() string {
	return [...]string{"public", "any user", "self or admin", "admin only", "owner (or admin with admin_access)"}[a]
}

// routeRule classifies one route. status, when set, is the answer every
// caller gets (a route whose outcome does not depend on who asks).
type routeRule struct {
	access access
	status int
}

// routeRules classifies every non-default route by "METHOD path" as echo
// reports it. Routes under /hub/api/ and /hub/admin that are not listed
// default to admin only; any other route that is not listed fails the
// matrix, so a new page cannot slip in unclassified.
var routeRules = map[string]routeRule{
	// The root redirects: anonymous callers to the login form, others home.
	"GET /":                        {access: anyUser},
	"GET /hub":                     {access: anyUser},
	"GET /hub/":                    {access: anyUser},
	"GET /hub/health":              {access: public},
	"GET /hub/metrics":             {access: public},
	"GET /hub/static/*":            {access: public},
	"GET /hub/login":               {access: public},
	"POST /hub/login":              {access: public, status: http.StatusForbidden}, // no login-form _xsrf: refused for everyone
	"GET /hub/logout":              {access: public},
	"POST /hub/logout":             {access: public},
	"GET /hub/home":                {access: anyUser},
	"GET /hub/token":               {access: anyUser},
	"GET /user-redirect/*":         {access: public, status: http.StatusFound},      // hands over to /hub/user-redirect/, where the hub cookie is sent
	"GET /hub/user-cookie":         {access: public, status: http.StatusBadRequest}, // no next=/user/NAME/: refused for everyone
	"GET /hub/user-redirect/*":     {access: anyUser},
	"GET /hub/spawn-pending/:name": {access: selfOrAdmin},
	"GET /hub/spawn/:name":         {access: selfOrAdmin},
	"GET /hub/admin":               {access: adminOnly},

	"GET /hub/api":      {access: public},
	"GET /hub/api/":     {access: public},
	"GET /hub/api/info": {access: public},
	"GET /hub/api/user": {access: anyUser},
	// Every logged-in page shows the announcement; the API says the same.
	"GET /hub/api/announcement": {access: anyUser},

	"GET /hub/api/users/:name":                  {access: selfOrAdmin},
	"POST /hub/api/users/:name/server":          {access: selfOrAdmin},
	"DELETE /hub/api/users/:name/server":        {access: selfOrAdmin},
	"GET /hub/api/users/:name/server/progress":  {access: selfOrAdmin},
	"POST /hub/api/users/:name/activity":        {access: selfOrAdmin},
	"GET /hub/api/users/:name/tokens":           {access: selfOrAdmin},
	"POST /hub/api/users/:name/tokens":          {access: selfOrAdmin},
	"GET /hub/api/users/:name/tokens/:id":       {access: selfOrAdmin},
	"DELETE /hub/api/users/:name/tokens/:id":    {access: selfOrAdmin},
	"GET /hub/api/users/:name/workspace.tar.gz": {access: selfOrAdmin},
}

// proxyRoutes are /user/NAME/ requests; the proxy serves them outside echo.
var proxyRoutes = []struct {
	method, path string
	nav, upgrade bool
}{
	{method: "GET", path: "/user/:name/api/status"},
	{method: "POST", path: "/user/:name/api/contents"},
	{method: "GET", path: "/user/:name/tree", nav: true},
	{method: "GET", path: "/user/:name/api/kernels/k1/channels", upgrade: true},
}

// role is one kind of caller in the matrix.
type role struct {
	name          string
	authenticated bool
	owner         bool // acts as the user named in the path
	admin         bool
	adminAccess   bool // the hub it talks to has admin_access on
}

var roles = []role{
	{name: "owner", authenticated: true, owner: true, adminAccess: true},
	{name: "anonymous", adminAccess: true},
	{name: "other student", authenticated: true, adminAccess: true},
	{name: "admin without admin_access", authenticated: true, admin: true},
	{name: "admin with admin_access", authenticated: true, admin: true, adminAccess: true},
	{name: "another user's token", authenticated: true, adminAccess: true},
	{name: "expired session", adminAccess: true},
	{name: "revoked session", adminAccess: true},
}

func (r role) allowed(a access) bool {
	switch a {
	case public:
		return true
	case anyUser:
		return r.authenticated
	case selfOrAdmin:
		return r.authenticated && (r.owner || r.admin)
	case adminOnly:
		return r.authenticated && r.admin
	case proxyOwner:
		return r.authenticated && (r.owner || r.admin && r.adminAccess)
	}
	return false
}

// matrixRoute is one row: a concrete request template and its rule.
type matrixRoute struct {
	method, path string // echo's path, with :params and *
	rule         routeRule
	nav, upgrade bool
}

// hubRoutes lists every route echo serves, classified; unclassified ones
// are reported as test errors.
func hubRoutes(t *testing.T, h *realHub) []matrixRoute {
	t.Helper()
	seen := map[string]bool{}
	var out []matrixRoute
	for _, r := range h.srv.Echo().Routes() {
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			continue // echo's internal route-not-found entries
		}
		key := r.Method + " " + r.Path
		if seen[key] {
			continue
		}
		seen[key] = true
		rule, ok := routeRules[key]
		if !ok {
			if !strings.HasPrefix(r.Path, "/hub/api/") && !strings.HasPrefix(r.Path, "/hub/admin") {
				t.Errorf("route %s is not classified in routeRules: add it with its access class", key)
				continue
			}
			rule = routeRule{access: adminOnly}
		}
		out = append(out, matrixRoute{method: r.Method, path: r.Path, rule: rule})
	}
	for _, p := range proxyRoutes {
		out = append(out, matrixRoute{method: p.method, path: p.path, rule: routeRule{access: proxyOwner}, nav: p.nav, upgrade: p.upgrade})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

var cellSeq atomic.Int64

var loginFormXSRF = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)

// cell holds the identities one matrix cell uses, all fresh, so that a
// destructive call (delete, block, logout) cannot leak into another cell.
type cell struct {
	target              string
	owner, other, admin store.Session
	expired, revoked    store.Session
	otherToken          string
}

func newCell(t *testing.T, h *realHub) *cell {
	t.Helper()
	ctx := context.Background()
	n := cellSeq.Add(1)
	c := &cell{target: fmt.Sprintf("t%d", n)}
	other, admin := fmt.Sprintf("o%d", n), fmt.Sprintf("a%d", n)
	for _, u := range []store.User{{Name: c.target, Allowed: true}, {Name: other, Allowed: true}, {Name: admin, Allowed: true, Admin: true}} {
		if err := h.st.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	c.owner, c.other, c.admin = h.session(t, c.target), h.session(t, other), h.session(t, admin)
	var err error
	if c.otherToken, _, err = h.st.CreateToken(ctx, other, "matrix"); err != nil {
		t.Fatal(err)
	}
	if c.expired, err = h.st.CreateSession(ctx, c.target, 10*time.Millisecond, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c.revoked = h.session(t, c.target)
	return c
}

// revoke logs the revoked session out through the real route, after one
// request has put it into the session cache.
func (c *cell) revoke(t *testing.T, h *realHub) {
	t.Helper()
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		path := "/hub/api/user"
		if m == http.MethodPost {
			path = "/hub/logout"
		}
		req, _ := http.NewRequest(m, h.ts.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: hubCookieName, Value: c.revoked.ID})
		req.Header.Set("X-XSRFToken", c.revoked.XSRF)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if m == http.MethodGet && resp.StatusCode != http.StatusOK {
			t.Fatalf("the session to revoke does not work before revocation: %d", resp.StatusCode)
		}
	}
}

// accessCookieFor is the access cookie sess's browser sends to target's
// server: the one the hub mints; where the hub refuses, the caller's cookie
// for its own server, replayed (the strongest credential it holds); for a
// session that no longer lives, one minted while it did.
func (h *realHub) accessCookieFor(t *testing.T, sess store.Session, target string) *http.Cookie {
	t.Helper()
	for _, server := range []string{target, sess.User} {
		if ck, _ := h.accessCookie(t, sess.ID, server); ck != nil {
			return ck
		}
	}
	v, err := h.access.Signer.Sign(accesscookie.Claims{User: sess.User, Server: target, Session: sess.Hash, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: accessCookieName, Value: v}
}

func waitExpired(t *testing.T, h *realHub, s store.Session) {
	t.Helper()
	for i := 0; i < 500; i++ {
		_, err := h.st.GetSession(context.Background(), s.ID, 10*time.Millisecond, 10*time.Millisecond)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("a 10 ms session did not expire")
}

func fillPath(p, target string) string {
	r := strings.NewReplacer(":name", target, ":user", target, ":id", "no-such-token",
		":run", "2024-01-02T030405Z", ":file", target+".tar.gz")
	p = r.Replace(p)
	if strings.HasSuffix(p, "*") {
		fill := "x"
		switch {
		case strings.HasPrefix(p, "/hub/static/"):
			fill = "style.css"
		case strings.Contains(p, "user-redirect"):
			fill = "tree"
		}
		p = strings.TrimSuffix(p, "*") + fill
	}
	return p
}

// TestCrossUserMatrix runs every route against every kind of caller and
// checks who passes: denied callers get 403 (hub API, anonymous, as JupyterHub) or 401 (a
// server's API through the proxy), a redirect to
// the login form (pages, anonymous) or 403 (authenticated but not
// entitled); entitled callers never get those, nor a 5xx other than the 503
// of a backend the test does not configure (scheduled jobs).
func TestCrossUserMatrix(t *testing.T) {
	up := newUpstream(t)
	withAccess := newRealHub(t, hubConfig{adminAccess: true, upstream: up})
	withoutAccess := newRealHub(t, hubConfig{adminAccess: false, upstream: up, rdb: withAccess.rdb})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, rt := range hubRoutes(t, withAccess) {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			for _, rl := range roles {
				t.Run(rl.name, func(t *testing.T) {
					h := withAccess
					if !rl.adminAccess {
						h = withoutAccess
					}
					c := newCell(t, h)
					var sess *store.Session
					token := ""
					switch rl.name {
					case "owner":
						sess = &c.owner
					case "other student":
						sess = &c.other
					case "admin without admin_access", "admin with admin_access":
						sess = &c.admin
					case "another user's token":
						token = c.otherToken
					case "expired session":
						waitExpired(t, h, c.expired)
						sess = &c.expired
					case "revoked session":
						c.revoke(t, h)
						sess = &c.revoked
					}
					path := fillPath(rt.path, c.target)
					var body io.Reader
					if rt.method == http.MethodPost || rt.method == http.MethodPatch || rt.method == http.MethodPut {
						body = strings.NewReader("{}")
					}
					req, _ := http.NewRequest(rt.method, h.ts.URL+path, body)
					if body != nil {
						req.Header.Set("Content-Type", "application/json")
					}
					if rt.nav {
						req.Header.Set("Accept", "text/html")
					}
					if rt.upgrade {
						req.Header.Set("Connection", "Upgrade")
						req.Header.Set("Upgrade", "websocket")
						req.Header.Set("Sec-WebSocket-Version", "13")
						req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
					}
					if sess != nil {
						req.AddCookie(&http.Cookie{Name: hubCookieName, Value: sess.ID})
						req.Header.Set("X-XSRFToken", sess.XSRF)
						if strings.HasPrefix(path, "/user/") {
							req.AddCookie(h.accessCookieFor(t, *sess, c.target))
						}
					}
					if token != "" {
						req.Header.Set("Authorization", "token "+token)
					}
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "/hub/user-cookie?") {
						// A page load without a valid access cookie goes
						// through the hub, which decides with its own cookie.
						resp.Body.Close()
						req, _ := http.NewRequest(http.MethodGet, h.ts.URL+loc, nil)
						req.Header.Set("Accept", "text/html")
						if sess != nil {
							req.AddCookie(&http.Cookie{Name: hubCookieName, Value: sess.ID})
						}
						if resp, err = client.Do(req); err != nil {
							t.Fatal(err)
						}
					}
					defer resp.Body.Close()
					var raw []byte
					if resp.StatusCode != http.StatusSwitchingProtocols { // a 101 body is the open connection
						raw, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
					}
					checkCell(t, rt, rl, resp, raw, c)
				})
			}
		})
	}
}

func checkCell(t *testing.T, rt matrixRoute, rl role, resp *http.Response, raw []byte, c *cell) {
	t.Helper()
	got := resp.StatusCode
	loc := resp.Header.Get("Location")
	toLogin := (got == http.StatusFound || got == http.StatusTemporaryRedirect) && strings.HasPrefix(loc, "/hub/login")
	isAPI := strings.HasPrefix(rt.path, "/hub/api") || (strings.HasPrefix(rt.path, "/user/") && !rt.nav)
	if !strings.HasPrefix(rt.path, "/user/") {
		checkHubHeaders(t, resp, false)
	}
	if rt.rule.status != 0 {
		if got != rt.rule.status {
			t.Fatalf("want %d for everyone, got %d %s", rt.rule.status, got, raw)
		}
		return
	}
	if rl.allowed(rt.rule.access) {
		if got == http.StatusUnauthorized || got == http.StatusForbidden || toLogin || (got >= 500 && got != http.StatusServiceUnavailable) {
			t.Fatalf("%s is %s and %s should pass: got %d (Location %q) %s", rt.path, rt.rule.access, rl.name, got, loc, raw)
		}
		if rt.rule.access == proxyOwner {
			checkUpstream(t, rt, resp, raw, c)
		}
		return
	}
	switch {
	case rl.authenticated && got != http.StatusForbidden:
		t.Fatalf("%s is %s: %s must get 403, got %d (Location %q) %s", rt.path, rt.rule.access, rl.name, got, loc, raw)
	case !rl.authenticated && isAPI && got != anonymousAPIStatus(rt.path):
		t.Fatalf("%s is %s: %s must get %d, got %d (Location %q) %s", rt.path, rt.rule.access, rl.name, anonymousAPIStatus(rt.path), got, loc, raw)
	case !rl.authenticated && !isAPI && !toLogin:
		t.Fatalf("%s is %s: %s must be sent to the login form, got %d (Location %q) %s", rt.path, rt.rule.access, rl.name, got, loc, raw)
	}
}

// checkUpstream: a request that passed the proxy reached the right server
// with that server's token and without the hub's cookie.
func checkUpstream(t *testing.T, rt matrixRoute, resp *http.Response, raw []byte, c *cell) {
	t.Helper()
	if rt.upgrade {
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("websocket upgrade: want 101, got %d %s", resp.StatusCode, raw)
		}
		return
	}
	var seen upstreamSeen
	if err := json.Unmarshal(raw, &seen); err != nil {
		t.Fatalf("upstream answer %d %q: %v", resp.StatusCode, raw, err)
	}
	if !strings.HasPrefix(seen.Path, "/user/"+c.target+"/") {
		t.Fatalf("upstream got path %q", seen.Path)
	}
	if seen.Authorization != "token server-token-of-"+c.target {
		t.Fatalf("upstream got Authorization %q, want the server token of %s", seen.Authorization, c.target)
	}
	if strings.Contains(seen.Cookie, hubCookieName) {
		t.Fatalf("the hub cookie reached the user server: %q", seen.Cookie)
	}
}

// checkHubHeaders asserts the security headers every hub answer carries and
// the flags of every cookie it sets. secure: the hub runs under TLS.
func checkHubHeaders(t *testing.T, resp *http.Response, secure bool) {
	t.Helper()
	h := resp.Header
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "same-origin",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s: %s is %q, want %q", resp.Request.URL.Path, k, h.Get(k), v)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "frame-ancestors 'none'", "script-src 'self'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", resp.Request.URL.Path, csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: Content-Security-Policy allows inline or eval'd script: %q", resp.Request.URL.Path, csp)
	}
	if hsts := h.Get("Strict-Transport-Security"); secure != (hsts != "") {
		t.Errorf("%s: Strict-Transport-Security %q under TLS=%v", resp.Request.URL.Path, hsts, secure)
	}
	for _, ck := range resp.Cookies() {
		if !ck.HttpOnly {
			t.Errorf("%s: cookie %s lacks HttpOnly", resp.Request.URL.Path, ck.Name)
		}
		if ck.SameSite != http.SameSiteLaxMode && ck.SameSite != http.SameSiteStrictMode {
			t.Errorf("%s: cookie %s has SameSite %v, want Lax or Strict", resp.Request.URL.Path, ck.Name, ck.SameSite)
		}
		if ck.Path == "" {
			t.Errorf("%s: cookie %s has no Path", resp.Request.URL.Path, ck.Name)
		}
		if ck.Secure != secure {
			t.Errorf("%s: cookie %s Secure=%v under TLS=%v", resp.Request.URL.Path, ck.Name, ck.Secure, secure)
		}
	}
}

// TestHubPagesUnderTLSSendHSTSAndSecureCookies logs in through the real form
// on a hub configured for TLS and checks every page's headers and cookies,
// anonymous and logged in.
func TestHubPagesUnderTLSSendHSTSAndSecureCookies(t *testing.T) {
	h := newRealHub(t, hubConfig{secure: true})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.ts.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// The jar keeps Secure cookies away from http://, so copy them by hand.
	var session *http.Cookie
	pages := []string{}
	for _, r := range h.srv.Echo().Routes() {
		if r.Method == http.MethodGet && !strings.HasPrefix(r.Path, "/hub/api") {
			pages = append(pages, fillPath(r.Path, "alice"))
		}
	}
	sort.Strings(pages)
	for _, p := range pages {
		checkHubHeaders(t, get(p), true)
	}
	login := get("/hub/login")
	checkHubHeaders(t, login, true)
	var formCookie *http.Cookie
	for _, ck := range login.Cookies() {
		formCookie = ck
	}
	if formCookie == nil {
		t.Fatal("the login page set no form cookie")
	}
	// Read the form's _xsrf value from the page body.
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+"/hub/login", nil)
	req.AddCookie(formCookie)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := loginFormXSRF.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatal("no _xsrf in the login form")
	}
	for _, ck := range resp.Cookies() {
		formCookie = ck
	}
	form := url.Values{"username": {"alice"}, "password": {realPassword}, "_xsrf": {m[1]}}
	req, _ = http.NewRequest(http.MethodPost, h.ts.URL+"/hub/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(formCookie)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	checkHubHeaders(t, resp, true)
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Secure-"+hubCookieName && ck.MaxAge > 0 {
			session = ck
		}
	}
	// Path=/hub/ keeps it off user servers' requests; __Host- would demand
	// Path=/, so the prefix is __Secure-.
	if session == nil || session.SameSite != http.SameSiteLaxMode || session.Path != "/hub/" {
		t.Fatalf("session cookie after login: %+v", session)
	}
	for _, p := range pages {
		req, _ := http.NewRequest(http.MethodGet, h.ts.URL+p, nil)
		req.Header.Set("Accept", "text/html")
		req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		checkHubHeaders(t, resp, true)
	}
	// The server's access cookie: __Secure-, Secure, scoped to the server.
	// (A fresh session: the pages above include the logout.)
	req, _ = http.NewRequest(http.MethodGet, h.ts.URL+"/hub/user-cookie?next="+url.QueryEscape("/user/alice/tree"), nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: h.session(t, "alice").ID})
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	checkHubHeaders(t, resp, true)
	var access *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Secure-"+accessCookieName {
			access = ck
		}
	}
	if resp.StatusCode != http.StatusFound || access == nil || access.Path != "/user/alice/" || !access.Secure {
		t.Fatalf("access cookie under TLS: %d %q %+v", resp.StatusCode, resp.Header.Get("Location"), access)
	}
}

// anonymousAPIStatus is what an anonymous API call gets: JupyterHub's 403 on
// /hub/api, the proxy's 401 on a user's server.
func anonymousAPIStatus(path string) int {
	if strings.HasPrefix(path, "/hub/api") {
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}
