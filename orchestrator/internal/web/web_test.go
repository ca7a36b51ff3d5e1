package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// fakeServers records start/stop calls; real spawning is covered by the
// spawner's and the end-to-end tests.
type fakeServers struct {
	mu      sync.Mutex
	st      *store.Store
	started []string
	// instructors are the started users that started as instructors.
	instructors []string
	stopped     []string
	busy        bool
}

func (f *fakeServers) Start(ctx context.Context, user string, so spawner.StartOptions) (store.Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.busy {
		return store.Server{}, &spawner.BusyError{RetryAfter: 4 * time.Second}
	}
	f.started = append(f.started, user)
	if so.Instructor {
		f.instructors = append(f.instructors, user)
	}
	srv := store.Server{User: user, State: "starting"}
	return srv, f.st.PutServer(ctx, srv)
}

func (f *fakeServers) Stop(ctx context.Context, user, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, user)
	return nil
}

type fakeProxy struct {
	mu             sync.Mutex
	closed         []string
	closedSessions []string
}

func (p *fakeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusTeapot)
}
func (p *fakeProxy) CloseUser(user string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = append(p.closed, user)
	return 1
}
func (p *fakeProxy) CloseSession(session string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closedSessions = append(p.closedSessions, session)
	return 1
}

type env struct {
	ts      *httptest.Server
	st      *store.Store
	servers *fakeServers
	proxy   *fakeProxy
	srv     *web.Server
}

const testPassword = "pw-for-tests"

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the Options and Deps adjusted by with.
func newEnvWith(t *testing.T, with func(*web.Options, *web.Deps)) *env {
	t.Helper()
	rdb := testenv.RedisClient(t)
	st := store.New(rdb, "t:")
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, u := range []store.User{{Name: "alice", Allowed: true}, {Name: "bob", Allowed: true}, {Name: "admin", Admin: true, Allowed: true}} {
		if err := st.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	fs := &fakeServers{st: st}
	fp := &fakeProxy{}
	o := web.Options{Version: "test", Logger: log}
	d := web.Deps{
		Store:     st,
		Auth:      auth.NewDummy(testPassword, namer, log),
		Policy:    auth.NewPolicy(false),
		Regulator: auth.NewRegulator(st, auth.RegulationOptions{MaxFailures: 3, Window: time.Minute, Ban: time.Minute}),
		Namer:     namer,
		Servers:   fs,
		Proxy:     fp,
	}
	if with != nil {
		with(&o, &d)
	}
	srv := web.New(o, d)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &env{ts: ts, st: st, servers: fs, proxy: fp, srv: srv}
}

type client struct {
	t    *testing.T
	base string
	c    *http.Client
	xsrf string
}

func (e *env) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: e.ts.URL, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var (
	formXSRF = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)
	pageXSRF = regexp.MustCompile(`<meta name="xsrf" content="([^"]+)"`)
)

func (c *client) do(method, path, body string, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) login(user, pw string) *http.Response {
	c.t.Helper()
	_, page := c.do("GET", "/hub/login", "", nil)
	m := formXSRF.FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("no _xsrf in login form: %s", page)
	}
	form := url.Values{"username": {user}, "password": {pw}, "_xsrf": {m[1]}, "next": {"/user-redirect/tree"}}
	resp, _ := c.do("POST", "/hub/login", form.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode == http.StatusFound {
		_, home := c.do("GET", "/hub/home", "", nil)
		if mm := pageXSRF.FindStringSubmatch(home); mm != nil {
			c.xsrf = mm[1]
		}
	}
	return resp
}

func TestLoginCanonicalisesAndRedirectsToNext(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	resp := c.login("  ALICE ", testPassword)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/user-redirect/tree" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sess *http.Cookie
	legacyCleared := false
	for _, ck := range resp.Cookies() {
		switch {
		case ck.Name == "swarmhub-session" && ck.MaxAge > 0:
			sess = ck
		case ck.Name == "swarmhub-session" && ck.Path == "/":
			legacyCleared = ck.MaxAge < 0
		}
	}
	if !legacyCleared {
		t.Error("login does not remove the Path=/ session cookie of earlier releases")
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/hub/" {
		t.Fatalf("session cookie flags wrong: %+v", sess)
	}
	r, body := c.do("GET", "/hub/api/user", "", nil)
	if r.StatusCode != 200 || !strings.Contains(body, `"name":"alice"`) {
		t.Fatalf("/hub/api/user: %d %s", r.StatusCode, body)
	}
	r, _ = c.do("GET", "/user-redirect/tree?x=1", "", nil)
	if r.Header.Get("Location") != "/hub/user-redirect/tree?x=1" {
		t.Fatalf("user-redirect went to %q, want the hub's /hub/user-redirect/ (the hub cookie's path)", r.Header.Get("Location"))
	}
	r, _ = c.do("GET", "/hub/user-redirect/tree?x=1", "", nil)
	if r.Header.Get("Location") != "/user/alice/tree?x=1" {
		t.Fatalf("user-redirect went to %q", r.Header.Get("Location"))
	}
}

func TestLoginRefusals(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, user, pw string
		want           int
	}{
		{"wrong password", "alice", "nope", http.StatusUnauthorized},
		{"not on the allow list", "mallory", testPassword, http.StatusForbidden},
		{"invalid name", "../etc", testPassword, http.StatusUnauthorized},
		{"empty password", "alice", "", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(t)
			if got := c.login(tc.user, tc.pw).StatusCode; got != tc.want {
				t.Fatalf("want %d, got %d", tc.want, got)
			}
		})
	}
}

func TestLoginWithoutFormTokenIsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	form := url.Values{"username": {"alice"}, "password": {testPassword}}
	resp, _ := c.do("POST", "/hub/login", form.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without _xsrf: want 403, got %d", resp.StatusCode)
	}
}

func TestFourthAttemptIsRefusedEvenWithRightPassword(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"alice", "ALICE", " Alice"} {
		e.client(t).login(u, "wrong")
	}
	if got := e.client(t).login("alice", testPassword).StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("banned login: want 401, got %d", got)
	}
}

func TestNextMustStayLocal(t *testing.T) {
	e := newEnv(t)
	for _, next := range []string{"//evil.example", "/\\evil.example", "https:evil.example", "https://evil.example/", "javascript:alert(1)", "/%0d%0aSet-Cookie:x"} {
		t.Run(next, func(t *testing.T) {
			c := e.client(t)
			_, page := c.do("GET", "/hub/login?next="+url.QueryEscape(next), "", nil)
			m := formXSRF.FindStringSubmatch(page)
			form := url.Values{"username": {"alice"}, "password": {testPassword}, "_xsrf": {m[1]}, "next": {next}}
			resp, _ := c.do("POST", "/hub/login", form.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusFound || (loc != "/hub/home" && !strings.HasPrefix(loc, "/%0d")) || strings.HasPrefix(loc, "//") {
				t.Fatalf("next=%q redirected to %q (%d)", next, loc, resp.StatusCode)
			}
		})
	}
}

func TestAdminRoutesRefuseStudents(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.login("alice", testPassword)
	plain, _, err := e.st.CreateToken(context.Background(), "alice", "test")
	if err != nil {
		t.Fatal(err)
	}
	routes := []struct{ method, path, body string }{
		{"GET", "/hub/api/users", ""},
		{"POST", "/hub/api/users", `{"usernames":["x"]}`},
		{"PATCH", "/hub/api/users/bob", `{"blocked":true}`},
		{"DELETE", "/hub/api/users/bob", ""},
		{"POST", "/hub/api/users/bob/server", ""},
		{"DELETE", "/hub/api/users/bob/server", ""},
		{"GET", "/hub/api/users/bob", ""},
		{"GET", "/hub/api/events", ""},
		{"POST", "/hub/api/users/bob/tokens", `{}`},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			resp, _ := c.do(r.method, r.path, r.body, map[string]string{"X-XSRFToken": c.xsrf, "Content-Type": "application/json"})
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("student session: want 403, got %d", resp.StatusCode)
			}
			anon := e.client(t)
			resp, _ = anon.do(r.method, r.path, r.body, map[string]string{"Authorization": "token " + plain, "Content-Type": "application/json"})
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("student token: want 403, got %d", resp.StatusCode)
			}
		})
	}
}

func TestCookieStateChangesNeedXSRF(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.login("alice", testPassword)
	cases := []map[string]string{
		{},
		{"Content-Type": "text/plain"},
		{"Sec-Fetch-Mode": "no-cors", "Content-Type": "text/plain"},
		{"X-XSRFToken": "wrong"},
	}
	for _, h := range cases {
		resp, _ := c.do("POST", "/hub/api/users/alice/server", "", h)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("POST without a valid _xsrf (%v): want 403, got %d", h, resp.StatusCode)
		}
	}
	if len(e.servers.started) != 0 {
		t.Fatalf("a forged request started a server: %v", e.servers.started)
	}
	resp, _ := c.do("POST", "/hub/api/users/alice/server", "", map[string]string{"X-XSRFToken": c.xsrf})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST with _xsrf: want 202, got %d", resp.StatusCode)
	}
}

func TestSpawnLimitAnswers429WithRetryAfter(t *testing.T) {
	e := newEnv(t)
	e.servers.busy = true
	c := e.client(t)
	c.login("alice", testPassword)
	resp, body := c.do("POST", "/hub/api/users/alice/server", "", map[string]string{"X-XSRFToken": c.xsrf})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "4" {
		t.Fatalf("busy: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

func TestBlockingEndsSessionsAndStopsServer(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	admin := e.client(t)
	admin.login("admin", testPassword)
	resp, body := admin.do("PATCH", "/hub/api/users/alice", `{"blocked":true}`, map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("block: %d %s", resp.StatusCode, body)
	}
	resp, _ = alice.do("GET", "/hub/api/user", "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("blocked user's session still works: %d", resp.StatusCode)
	}
	if len(e.servers.stopped) != 1 || e.servers.stopped[0] != "alice" {
		t.Fatalf("server not stopped: %v", e.servers.stopped)
	}
	if len(e.proxy.closed) == 0 {
		t.Fatal("websockets of the blocked user were not closed")
	}
	if got := e.client(t).login("alice", testPassword).StatusCode; got != http.StatusForbidden {
		t.Fatalf("blocked user logged in again: %d", got)
	}
}

func TestSecurityHeadersOnHubPages(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	for _, p := range []string{"/hub/login", "/hub/api/", "/hub/home"} {
		resp, _ := c.do("GET", p, "", nil)
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("%s: missing %s", p, h)
			}
		}
	}
}

func TestUserPathsGoToTheProxy(t *testing.T) {
	e := newEnv(t)
	resp, _ := e.client(t).do("GET", "/user/alice/api/status", "", nil)
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("/user/ not handed to the proxy: %d", resp.StatusCode)
	}
}
