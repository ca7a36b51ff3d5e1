package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

const (
	hubCookie    = "swarmhub-session"
	accessCookie = "swarmhub-session-server"
)

var errNotRunning = errors.New("server not running")

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// namer is the default identity.Namer, as serve.go wires it.
var namer = func() *identity.Namer {
	n, err := identity.New(identity.Options{})
	if err != nil {
		panic(err)
	}
	return n
}()

// identities maps access cookie values to identities.
var identities = fakeIdentifier{
	"s-alice":   {User: "alice", Via: "session", Session: "sk-alice"},
	"s-alice-2": {User: "alice", Via: "session", Session: "sk-alice-2"},
	"s-bob":     {User: "bob", Via: "session"},
	"s-ab":      {User: "ab", Via: "session"},
	"s-admin":   {User: "prof", Admin: true, Via: "session"},
	// Access cookies as the hub mints them: each opens one server.
	"c-admin-for-bob": {User: "prof", Admin: true, Via: "session", Server: "bob"},
	"c-alice-for-alice": {User: "alice", Via: "session", Server: "alice",
		Renew: &http.Cookie{Name: accessCookie, Value: "renewed", Path: "/user/alice/"}},
}

type fakeIdentifier map[string]proxy.Identity

// Identify works like the hub's: an Authorization token is looked up first
// (these fakes know no token, so any token is unknown), then the access
// cookie (these fakes ignore which server a cookie is for).
func (f fakeIdentifier) Identify(r *http.Request, _ string) (proxy.Identity, bool) {
	if r.Header.Get("Authorization") != "" {
		return proxy.Identity{}, false
	}
	c, err := r.Cookie(accessCookie)
	if err != nil {
		return proxy.Identity{}, false
	}
	id, ok := f[c.Value]
	return id, ok
}

// fakeResolver serves every user from fixed addresses; after Forget a user
// moves to next[user] when set, as a restarted server would.
type fakeResolver struct {
	mu         sync.Mutex
	addr       map[string]string
	next       map[string]string
	notRunning map[string]bool
	noToken    map[string]bool // servers that authenticate through the hub
	forgotten  []string
	targets    int
	// stopOnForget makes the server count as stopped once forgotten.
	stopOnForget bool
}

func (f *fakeResolver) Target(_ context.Context, user string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets++
	if f.notRunning[user] {
		return "", "", fmt.Errorf("resolve %s: %w", user, errNotRunning)
	}
	a, ok := f.addr[user]
	if !ok {
		return "", "", fmt.Errorf("resolve %s: docker is down", user)
	}
	if f.noToken[user] {
		return a, "", nil
	}
	return a, "tok-" + user, nil
}

func (f *fakeResolver) Forget(user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgotten = append(f.forgotten, user)
	if n, ok := f.next[user]; ok {
		f.addr[user] = n
	}
	if f.stopOnForget {
		f.notRunning[user] = true
	}
}

type fakeAccess struct {
	mu     sync.Mutex
	events []string
}

func (f *fakeAccess) AdminAccess(admin, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, admin+"->"+user)
}

func (f *fakeAccess) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}

type fakeActivity struct {
	mu    sync.Mutex
	count map[string]int
}

func (f *fakeActivity) Touch(user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count == nil {
		f.count = map[string]int{}
	}
	f.count[user]++
}

func (f *fakeActivity) get(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[user]
}

// seen is what the upstream received, echoed back as JSON.
type seen struct {
	Path          string `json:"path"`
	Host          string `json:"host"`
	Cookie        string `json:"cookie"`
	Authorization string `json:"authorization"`
	XFF           string `json:"xff"`
	Body          string `json:"body"`
	Remote        string `json:"remote"` // the connection it came on
}

type env struct {
	t      *testing.T
	p      *proxy.Proxy
	srv    *httptest.Server
	up     *httptest.Server
	res    *fakeResolver
	acc    *fakeAccess
	act    *fakeActivity
	clock  *testsupport.Clock
	hits   atomic.Int64
	client *http.Client
}

func newEnv(t *testing.T, adminAccess bool, opts ...func(*proxy.Options)) *env {
	t.Helper()
	e := &env{t: t, acc: &fakeAccess{}, act: &fakeActivity{}, clock: testsupport.NewClock(time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC))}
	e.up = httptest.NewServer(http.HandlerFunc(e.upstream))
	t.Cleanup(e.up.Close)
	addr := e.up.Listener.Addr().String()
	e.res = &fakeResolver{
		addr:       map[string]string{"alice": addr, "bob": addr, "ab": addr, "abc": addr},
		next:       map[string]string{},
		notRunning: map[string]bool{},
	}
	o := proxy.Options{
		AdminAccess:      adminAccess,
		CookieName:       hubCookie,
		ServerCookieName: accessCookie,
		ErrNotRunning:    errNotRunning,
		Clock:            e.clock.Now,
		Logger:           quiet,
		Namer:            namer,
	}
	for _, f := range opts {
		f(&o)
	}
	e.p = proxy.New(identities, e.res, e.act, e.acc, o)
	e.srv = httptest.NewServer(e.p)
	t.Cleanup(e.srv.Close)
	e.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

func (e *env) upstream(w http.ResponseWriter, r *http.Request) {
	e.hits.Add(1)
	if strings.HasSuffix(r.URL.Path, "/ws") {
		// As Jupyter does for a token-authenticated request, the server
		// leaves the Origin check to the proxy.
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}
	if strings.HasSuffix(r.URL.Path, "/setcookie") {
		w.Header().Add("Set-Cookie", hubCookie+"=forged; Path=/")
		w.Header().Add("Set-Cookie", accessCookie+"=forged; Path=/user/alice/")
		w.Header().Add("Set-Cookie", "_xsrf=2|abc; Path=/user/alice/")
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(seen{
		Body:          string(body),
		Path:          r.URL.EscapedPath(),
		Host:          r.Host,
		Cookie:        r.Header.Get("Cookie"),
		Authorization: r.Header.Get("Authorization"),
		XFF:           r.Header.Get("X-Forwarded-For"),
		Remote:        r.RemoteAddr,
	})
}

type req struct {
	method  string
	path    string
	session string
	header  map[string]string
	body    string
}

func (e *env) do(rq req) *http.Response {
	e.t.Helper()
	if rq.method == "" {
		rq.method = http.MethodGet
	}
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r, err := http.NewRequest(rq.method, e.srv.URL+rq.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if rq.session != "" {
		r.AddCookie(&http.Cookie{Name: accessCookie, Value: rq.session})
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	res, err := e.client.Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { res.Body.Close() })
	return res
}

func decode[T any](t *testing.T, res *http.Response) T {
	t.Helper()
	var v T
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatalf("decode body of %d response: %v", res.StatusCode, err)
	}
	return v
}

type apiError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

func TestAuthorisation(t *testing.T) {
	cases := []struct {
		name        string
		adminAccess bool
		req         req
		want        int
		wantLoc     string
		forwarded   bool
	}{
		{name: "owner passes", req: req{path: "/user/alice/api/status", session: "s-alice"}, want: 200, forwarded: true},
		{name: "other student is refused", req: req{path: "/user/alice/api/status", session: "s-bob"}, want: 403},
		{name: "prefix of another name is another user", req: req{path: "/user/abc/api/status", session: "s-ab"}, want: 403},
		{name: "user ab reaches ab", req: req{path: "/user/ab/tree", session: "s-ab"}, want: 200, forwarded: true},
		{name: "admin without admin_access is refused", req: req{path: "/user/alice/tree", session: "s-admin"}, want: 403},
		{name: "admin with admin_access passes", adminAccess: true, req: req{path: "/user/alice/tree", session: "s-admin"}, want: 200, forwarded: true},
		{name: "student with admin_access on is still refused", adminAccess: true, req: req{path: "/user/alice/tree", session: "s-bob"}, want: 403},
		{name: "an admin's cookie for bob does not open alice", adminAccess: true, req: req{path: "/user/alice/tree", session: "c-admin-for-bob"}, want: 403},
		{name: "an admin's cookie for bob opens bob", adminAccess: true, req: req{path: "/user/bob/tree", session: "c-admin-for-bob"}, want: 200, forwarded: true},
		{name: "unknown session is anonymous", req: req{path: "/user/alice/api/status", session: "forged"}, want: 401},
		{name: "anonymous api call gets 401", req: req{path: "/user/alice/api/status"}, want: 401},
		{
			name:    "anonymous page load goes to the hub for an access cookie, with next",
			req:     req{path: "/user/alice/tree/a%20b?x=1&y=2", header: map[string]string{"Accept": "text/html,application/xhtml+xml"}},
			want:    302,
			wantLoc: "/hub/user-cookie?next=" + url.QueryEscape("/user/alice/tree/a%20b?x=1&y=2"),
		},
		{name: "anonymous POST with html accept gets 401", req: req{method: "POST", path: "/user/alice/tree", header: map[string]string{"Accept": "text/html"}}, want: 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.adminAccess)
			res := e.do(tc.req)
			if res.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.want)
			}
			if loc := res.Header.Get("Location"); loc != tc.wantLoc {
				t.Errorf("Location = %q, want %q", loc, tc.wantLoc)
			}
			if got := e.hits.Load() > 0; got != tc.forwarded {
				t.Errorf("forwarded upstream = %v, want %v", got, tc.forwarded)
			}
			if tc.want == 401 || tc.want == 403 {
				body := decode[apiError](t, res)
				if body.Status != tc.want || body.Message == "" {
					t.Errorf("error body = %+v, want status %d and a message", body, tc.want)
				}
				if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type = %q, want JSON", ct)
				}
			}
		})
	}
}

func TestAdminAccessRecordedOncePerMinute(t *testing.T) {
	e := newEnv(t, true)
	for range 3 {
		if res := e.do(req{path: "/user/alice/api/status", session: "s-admin"}); res.StatusCode != 200 {
			t.Fatalf("status = %d, want 200", res.StatusCode)
		}
	}
	if res := e.do(req{path: "/user/bob/api/status", session: "s-admin"}); res.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	e.clock.Advance(59 * time.Second)
	e.do(req{path: "/user/alice/api/status", session: "s-admin"})
	if got, want := e.acc.list(), []string{"prof->alice", "prof->bob"}; !equal(got, want) {
		t.Fatalf("events within the minute = %q, want %q", got, want)
	}
	e.clock.Advance(time.Second)
	e.do(req{path: "/user/alice/api/status", session: "s-admin"})
	if got, want := e.acc.list(), []string{"prof->alice", "prof->bob", "prof->alice"}; !equal(got, want) {
		t.Fatalf("events after the minute = %q, want %q", got, want)
	}
	// The owner's own traffic is no admin access.
	e.do(req{path: "/user/alice/api/status", session: "s-alice"})
	if got := len(e.acc.list()); got != 3 {
		t.Fatalf("owner access recorded an admin event: %d events", got)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestUpstreamRequestHeaders(t *testing.T) {
	e := newEnv(t, false)
	r, _ := http.NewRequest("GET", e.srv.URL+"/user/alice/api/contents", nil)
	r.Header.Set("Cookie", "_xsrf=2|deadbeef; "+accessCookie+"=s-alice; "+hubCookie+"=h; username-localhost=xyz; "+strings.ToUpper(hubCookie)+"=x")
	r.Header.Set("Authorization", "Bearer something-else")
	res, err := e.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	got := decode[seen](t, res)
	if want := "_xsrf=2|deadbeef; username-localhost=xyz"; got.Cookie != want {
		t.Errorf("upstream Cookie = %q, want %q", got.Cookie, want)
	}
	if want := "token tok-alice"; got.Authorization != want {
		t.Errorf("upstream Authorization = %q, want %q", got.Authorization, want)
	}
	if want := "/user/alice/api/contents"; got.Path != want {
		t.Errorf("upstream path = %q, want %q", got.Path, want)
	}
	if want := e.srv.Listener.Addr().String(); got.Host != want {
		t.Errorf("upstream Host = %q, want the browser's %q (Jupyter checks Origin against it)", got.Host, want)
	}
	if got.XFF != "127.0.0.1" {
		t.Errorf("upstream X-Forwarded-For = %q, want the client address only", got.XFF)
	}

	// Only the hub's cookies: no Cookie header at all upstream.
	r, _ = http.NewRequest("GET", e.srv.URL+"/user/alice/api/status", nil)
	r.Header.Set("Cookie", accessCookie+"=s-alice; "+hubCookie+"=h")
	res2, err := e.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	if got := decode[seen](t, res2); got.Cookie != "" {
		t.Errorf("upstream Cookie = %q, want none", got.Cookie)
	}
}

// JupyterLab sends the server token from its page as Authorization next to
// the session cookie: the cookie identifies the student, the owner check
// still applies, and the server gets its own token.
// TestServerWithoutTokenGetsNoAuthorization: a jupyterhub-singleuser
// server authenticates students itself (through the hub), so the proxy
// injects nothing and still strips the client's Authorization and the hub
// cookie; the owner check stays.
func TestServerWithoutTokenGetsNoAuthorization(t *testing.T) {
	e := newEnv(t, false)
	e.res.mu.Lock()
	e.res.noToken = map[string]bool{"alice": true}
	e.res.mu.Unlock()
	r, _ := http.NewRequest("GET", e.srv.URL+"/user/alice/api/contents", nil)
	r.Header.Set("Cookie", "_xsrf=2|deadbeef; "+accessCookie+"=s-alice; jupyterhub-user-alice=oauth")
	r.Header.Set("Authorization", "token some-hub-token")
	res, err := e.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	got := decode[seen](t, res)
	if got.Authorization != "" {
		t.Errorf("upstream Authorization = %q, want none", got.Authorization)
	}
	if want := "_xsrf=2|deadbeef; jupyterhub-user-alice=oauth"; got.Cookie != want {
		t.Errorf("upstream Cookie = %q, want %q", got.Cookie, want)
	}
	hits := e.hits.Load()
	res2 := e.do(req{path: "/user/alice/api/contents", session: "s-bob"})
	res2.Body.Close()
	if res2.StatusCode != http.StatusForbidden || e.hits.Load() != hits {
		t.Errorf("bob on alice's server: status %d, upstream hit %v; want 403 and no hit", res2.StatusCode, e.hits.Load() != hits)
	}
}

func TestServerTokenFromThePageIsAccepted(t *testing.T) {
	e := newEnv(t, false)
	for _, tc := range []struct {
		cookie, path string
		want         int
	}{
		{"s-alice", "/user/alice/api/contents", 200},
		{"s-bob", "/user/alice/api/contents", 403},
		{"", "/user/alice/api/contents", 401},
	} {
		r, _ := http.NewRequest("GET", e.srv.URL+tc.path, nil)
		r.Header.Set("Authorization", "token tok-alice")
		if tc.cookie != "" {
			r.Header.Set("Cookie", accessCookie+"="+tc.cookie)
		}
		res, err := e.client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.want {
			t.Errorf("%s with cookie %q: status = %d, want %d", tc.path, tc.cookie, res.StatusCode, tc.want)
		}
		if res.StatusCode == 200 {
			if got := decode[seen](t, res); got.Authorization != "token tok-alice" {
				t.Errorf("upstream Authorization = %q", got.Authorization)
			}
		}
		res.Body.Close()
	}
}

func TestUpstreamCannotSetHubCookie(t *testing.T) {
	e := newEnv(t, false)
	res := e.do(req{path: "/user/alice/setcookie", session: "s-alice"})
	if res.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	sc := res.Header.Values("Set-Cookie")
	if len(sc) != 1 || !strings.HasPrefix(sc[0], "_xsrf=") {
		t.Fatalf("Set-Cookie = %q, want only the _xsrf cookie", sc)
	}
}

// TestAccessCookieRenewed: an identity that carries a fresher cookie gets it
// set on the answer; a websocket upgrade does not (its answer is the
// upstream's 101).
func TestAccessCookieRenewed(t *testing.T) {
	e := newEnv(t, false)
	res := e.do(req{path: "/user/alice/api/status", session: "c-alice-for-alice"})
	if res.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	var got *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == accessCookie {
			got = c
		}
	}
	if got == nil || got.Value != "renewed" || got.Path != "/user/alice/" {
		t.Fatalf("renewed cookie = %+v, want the identity's Renew cookie", got)
	}
	res = e.do(req{path: "/user/alice/api/status", session: "s-alice"})
	if sc := res.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("Set-Cookie without a renewal: %q", sc)
	}
}

func TestActivityTouchedPerRequest(t *testing.T) {
	e := newEnv(t, true)
	e.do(req{path: "/user/alice/api/status", session: "s-alice"})
	e.do(req{path: "/user/alice/api/status", session: "s-admin"})
	e.do(req{path: "/user/alice/api/status", session: "s-bob"}) // refused: no activity
	if got := e.act.get("alice"); got != 2 {
		t.Fatalf("alice touched %d times, want 2", got)
	}
}

func TestHostilePaths(t *testing.T) {
	cases := []struct {
		name    string
		path    string
		want    int
		wantLoc string
	}{
		{name: "encoded slash in name upper", path: "/user/alice%2Fbob/", want: 400},
		{name: "encoded slash in name lower", path: "/user/alice%2fbob/", want: 400},
		{name: "encoded backslash in name", path: "/user/alice%5Cbob/", want: 400},
		{name: "encoded backslash lower", path: "/user/alice%5cbob/", want: 400},
		{name: "dot-dot after name", path: "/user/alice/../bob/", want: 400},
		{name: "encoded dot-dot after name", path: "/user/alice/%2e%2e/bob/", want: 400},
		{name: "mixed-case encoded dot-dot", path: "/user/alice/%2E%2e/bob/api/status", want: 400},
		{name: "dot-dot as name", path: "/user/../user/bob/", want: 400},
		{name: "encoded dot-dot as name", path: "/user/%2e%2e/bob/", want: 400},
		{name: "dot as name", path: "/user/./alice/", want: 400},
		{name: "dot segment deeper", path: "/user/alice/api/./status", want: 400},
		{name: "trailing dot-dot", path: "/user/alice/tree/..", want: 400},
		{name: "dot-dot between encoded slashes", path: "/user/alice/api/contents/a%2F..%2F..%2Fb", want: 400},
		{name: "empty name", path: "/user//alice/", want: 400},
		{name: "empty name only", path: "/user/", want: 400},
		{name: "NUL in name", path: "/user/alice%00/", want: 400},
		{name: "NUL later", path: "/user/alice/a%00b", want: 400},
		{name: "double slash after name stays with alice", path: "/user/alice//api/status", want: 200},
		{name: "encoded slash deeper goes to alice", path: "/user/alice/api/contents/dir%2Ffile", want: 200},
		{name: "no trailing slash", path: "/user/alice", want: 302, wantLoc: "/user/alice/"},
		{name: "no trailing slash keeps query", path: "/user/alice?a=1", want: 302, wantLoc: "/user/alice/?a=1"},
		{name: "upper case name", path: "/user/ALICE/tree?x=y", want: 302, wantLoc: "/user/alice/tree?x=y"},
		{name: "needlessly escaped name", path: "/user/al%69ce/api/status", want: 302, wantLoc: "/user/alice/api/status"},
		{name: "other user after normalisation", path: "/user/bob/", want: 403},
		{name: "name no user can have", path: "/user/-alice/", want: 404},
		{name: "escaped space in name", path: "/user/al%20ice/", want: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false)
			res := e.do(req{path: tc.path, session: "s-alice"})
			if res.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.want)
			}
			if loc := res.Header.Get("Location"); loc != tc.wantLoc {
				t.Errorf("Location = %q, want %q", loc, tc.wantLoc)
			}
			if tc.want != 200 && e.hits.Load() != 0 {
				t.Errorf("request reached the upstream")
			}
			if tc.want == 200 {
				if got := decode[seen](t, res); got.Path != tc.path {
					t.Errorf("upstream path = %q, want %q unchanged", got.Path, tc.path)
				}
			}
		})
	}
}

func TestStoppedServer(t *testing.T) {
	cases := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		want    int
		wantLoc string
	}{
		{name: "page goes to spawn-pending", path: "/user/alice/tree?x=1", want: 302,
			wantLoc: "/hub/spawn-pending/alice?next=" + url.QueryEscape("/user/alice/tree?x=1")},
		{name: "api gets 503", path: "/user/alice/api/kernels", want: 503},
		{name: "api POST gets 503", method: "POST", path: "/user/alice/api/kernels", want: 503},
		{name: "websocket upgrade gets 503", path: "/user/alice/terminals/websocket/1",
			header: map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, want: 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false)
			e.res.notRunning["alice"] = true
			res := e.do(req{method: tc.method, path: tc.path, session: "s-alice", header: tc.header})
			if res.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.want)
			}
			if loc := res.Header.Get("Location"); loc != tc.wantLoc {
				t.Errorf("Location = %q, want %q", loc, tc.wantLoc)
			}
			if tc.want == 503 {
				body := decode[apiError](t, res)
				if want := "alice's server is not running; start it from /hub/home"; body.Message != want || body.Status != 503 {
					t.Errorf("body = %+v, want status 503 and message %q", body, want)
				}
			}
		})
	}
}

func TestResolverFailureIs502(t *testing.T) {
	e := newEnv(t, false)
	delete(e.res.addr, "alice")
	res := e.do(req{path: "/user/alice/api/status", session: "s-alice"})
	if res.StatusCode != 502 {
		t.Fatalf("status = %d, want 502", res.StatusCode)
	}
	if body := decode[apiError](t, res); body.Status != 502 {
		t.Errorf("body = %+v", body)
	}
}

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDialFailureForgetsAndRetries(t *testing.T) {
	for _, tc := range []struct{ method, body string }{{"GET", ""}, {"PUT", `{"type":"notebook","content":{}}`}} {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false)
			e.res.next["alice"] = e.res.addr["alice"]
			e.res.addr["alice"] = deadAddr(t)
			res := e.do(req{method: tc.method, path: "/user/alice/api/contents/a.ipynb", session: "s-alice", body: tc.body})
			if res.StatusCode != 200 {
				t.Fatalf("status = %d, want 200 after retry", res.StatusCode)
			}
			if got := decode[seen](t, res); got.Body != tc.body {
				t.Errorf("upstream body = %q, want %q", got.Body, tc.body)
			}
			if got := e.res.forgotten; len(got) != 1 || got[0] != "alice" {
				t.Fatalf("forgotten = %q, want [alice]", got)
			}
		})
	}
	t.Run("still down after retry", func(t *testing.T) {
		e := newEnv(t, false)
		e.res.addr["alice"] = deadAddr(t)
		res := e.do(req{path: "/user/alice/api/status", session: "s-alice"})
		if res.StatusCode != 502 {
			t.Fatalf("status = %d, want 502", res.StatusCode)
		}
		if e.res.targets != 2 {
			t.Errorf("Target called %d times, want 2 (one retry only)", e.res.targets)
		}
	})
	t.Run("stopped meanwhile", func(t *testing.T) {
		e := newEnv(t, false)
		e.res.addr["alice"] = deadAddr(t)
		e.res.stopOnForget = true
		res := e.do(req{path: "/user/alice/api/status", session: "s-alice"})
		if res.StatusCode != 503 {
			t.Fatalf("status = %d, want 503", res.StatusCode)
		}
	})
}

func (e *env) dialWS(ctx context.Context, path, session string) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + path
	h := http.Header{}
	if session != "" {
		h.Set("Cookie", accessCookie+"="+session)
	}
	return websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
}

func TestWebsocketEcho(t *testing.T) {
	e := newEnv(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := e.dialWS(ctx, "/user/alice/api/kernels/k1/ws", "s-alice")
	if err != nil {
		t.Fatalf("dial through proxy: %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for _, msg := range []string{"hello", strings.Repeat("x", 70000), ""} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("echo of %d bytes came back as %d bytes", len(msg), len(got))
		}
	}
	if n := e.p.OpenWebsockets(); n != 1 {
		t.Errorf("OpenWebsockets = %d, want 1", n)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestWebsocketRefusedBeforeUpgrade(t *testing.T) {
	cases := []struct {
		name    string
		session string
		want    int
	}{
		{"other student", "s-bob", 403},
		{"admin without admin_access", "s-admin", 403},
		{"anonymous", "", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, res, err := e.dialWS(ctx, "/user/alice/api/kernels/k1/ws", tc.session)
			if err == nil {
				c.CloseNow()
				t.Fatal("websocket opened, want refusal")
			}
			if res == nil || res.StatusCode != tc.want {
				t.Fatalf("response = %v, want status %d (err %v)", res, tc.want, err)
			}
			if e.hits.Load() != 0 {
				t.Error("upgrade reached the upstream")
			}
		})
	}
}

func TestCloseUserEndsWebsockets(t *testing.T) {
	e := newEnv(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(path, session string) *websocket.Conn { return e.openWS(t, ctx, path, session) }
	a1 := open("/user/alice/api/kernels/1/ws", "s-alice")
	a2 := open("/user/alice/api/kernels/2/ws", "s-alice")
	b := open("/user/bob/api/kernels/1/ws", "s-bob")
	adm := open("/user/bob/api/kernels/3/ws", "s-admin")
	if n := e.p.OpenWebsockets(); n != 4 {
		t.Fatalf("OpenWebsockets = %d, want 4", n)
	}

	if n := e.p.CloseUser("alice"); n != 2 {
		t.Fatalf("CloseUser(alice) = %d, want 2", n)
	}
	for _, c := range []*websocket.Conn{a1, a2} {
		_, _, err := c.Read(ctx)
		if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
			t.Errorf("alice's websocket read: %v (close status %d), want close 1008", err, got)
		}
	}
	if n := e.p.OpenWebsockets(); n != 2 {
		t.Errorf("OpenWebsockets after CloseUser = %d, want 2", n)
	}
	// Bob's connection is untouched.
	if err := b.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := b.Read(ctx); err != nil || string(msg) != "still here" {
		t.Fatalf("bob's websocket after alice's revocation: %q, %v", msg, err)
	}
	// A revoked admin loses the connections they hold to others' servers.
	if n := e.p.CloseUser("prof"); n != 1 {
		t.Fatalf("CloseUser(prof) = %d, want 1", n)
	}
	if _, _, err := adm.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Errorf("admin's websocket read: %v, want close 1008", err)
	}
	if n := e.p.CloseUser("alice"); n != 0 {
		t.Errorf("second CloseUser(alice) = %d, want 0", n)
	}
}

func TestShutdownClosesWebsocketsGoingAway(t *testing.T) {
	e := newEnv(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := e.dialWS(ctx, "/user/alice/api/kernels/1/ws", "s-alice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := e.p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("read after Shutdown: %v, want close 1001", err)
	}
	if n := e.p.OpenWebsockets(); n != 0 {
		t.Errorf("OpenWebsockets = %d, want 0", n)
	}
	// New websockets are refused once shutting down.
	if c2, _, err := e.dialWS(ctx, "/user/alice/api/kernels/2/ws", "s-alice"); err == nil {
		_, _, err = c2.Read(ctx)
		if err == nil {
			t.Error("websocket usable after Shutdown")
		}
		c2.CloseNow()
	}
}

func TestWebsocketTrafficTouchesActivity(t *testing.T) {
	e := newEnv(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := e.dialWS(ctx, "/user/alice/api/kernels/1/ws", "s-alice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	echo := func() {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	base := e.act.get("alice") // the upgrade request itself
	echo()
	echo()
	if got := e.act.get("alice") - base; got != 0 {
		t.Fatalf("touches within the interval = %d, want 0", got)
	}
	e.clock.Advance(10 * time.Second)
	echo()
	if got := e.act.get("alice") - base; got != 1 {
		t.Fatalf("touches after the interval = %d, want 1", got)
	}
}

func TestClientGoneIsNotAnError(t *testing.T) {
	// A long poll the client abandons: the handler must return without
	// writing an error body to nobody, and the upstream sees the cancel.
	arrived, released := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
		close(released)
	}))
	defer up.Close()
	res := &fakeResolver{addr: map[string]string{"alice": up.Listener.Addr().String()}}
	p := proxy.New(identities, res, nil, nil, proxy.Options{CookieName: hubCookie, ServerCookieName: accessCookie, Logger: quiet, Namer: namer})
	ctx, cancel := context.WithCancel(context.Background())
	rq := httptest.NewRequestWithContext(ctx, "GET", "/user/alice/api/events", nil)
	rq.AddCookie(&http.Cookie{Name: accessCookie, Value: "s-alice"})
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { p.ServeHTTP(rec, rq); close(done) }()
	<-arrived
	cancel()
	<-done
	<-released
	if rec.Code != 499 {
		t.Errorf("status = %d, want 499", rec.Code)
	}
	if b, _ := io.ReadAll(rec.Body); len(b) != 0 {
		t.Errorf("body = %q, want none", b)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) { return nil, f.err }

// Faults a real server cannot be made to produce on demand, mapped to
// statuses the way a browser or script can act on.
func TestUpstreamErrorStatus(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, 504},
		{"deadline", fmt.Errorf("round trip: %w", context.DeadlineExceeded), 504},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, 502},
		{"garbage from upstream", errors.New("malformed HTTP response"), 502},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := &fakeResolver{addr: map[string]string{"alice": "192.0.2.1:8888"}}
			p := proxy.New(identities, res, nil, nil, proxy.Options{CookieName: hubCookie, ServerCookieName: accessCookie, Logger: quiet, Namer: namer, Transport: failingTransport{tc.err}})
			rq := httptest.NewRequest("GET", "/user/alice/api/status", nil)
			rq.AddCookie(&http.Cookie{Name: accessCookie, Value: "s-alice"})
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, rq)
			if rec.Code != tc.want {
				t.Fatalf("status = %d, want %d", rec.Code, tc.want)
			}
			var body apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Status != tc.want {
				t.Errorf("body = %s (%v), want JSON with status %d", rec.Body.Bytes(), err, tc.want)
			}
			if len(res.forgotten) != 0 {
				t.Errorf("Forget called for a non-dial error")
			}
		})
	}
}

// openWS opens a websocket through the proxy as session and makes one round
// trip, so the connection is surely through the proxy (and registered).
func (e *env) openWS(t *testing.T, ctx context.Context, path, session string) *websocket.Conn {
	t.Helper()
	c, _, err := e.dialWS(ctx, path, session)
	if err != nil {
		t.Fatalf("dial %s as %s: %v", path, session, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}
