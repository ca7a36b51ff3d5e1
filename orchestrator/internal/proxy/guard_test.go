package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
)

// upgradeHeader makes e.do send a websocket handshake, for refusals that
// must be answered before any upgrade.
var upgradeHeader = map[string]string{
	"Connection":            "Upgrade",
	"Upgrade":               "websocket",
	"Sec-WebSocket-Version": "13",
	"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
}

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// dialWSWith opens a websocket as alice with extra handshake headers and
// checks one echo through it.
func (e *env) dialWSWith(ctx context.Context, path string, h map[string]string) (*websocket.Conn, *http.Response, error) {
	hh := http.Header{}
	hh.Set("Cookie", accessCookie+"=s-alice")
	for k, v := range h {
		hh.Set(k, v)
	}
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+path, &websocket.DialOptions{HTTPHeader: hh})
	if err != nil {
		return nil, res, err
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		c.CloseNow()
		return nil, res, err
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "ping" {
		c.CloseNow()
		return nil, res, err
	}
	return c, res, nil
}

// checkRefusal checks a refusal that never reached the user server and
// says why in plain text.
func checkRefusal(t *testing.T, e *env, res *http.Response, want int, reason string) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("status = %d, want %d", res.StatusCode, want)
	}
	if e.hits.Load() != 0 {
		t.Error("the refused request reached the user server")
	}
	body, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(string(body), reason) {
		t.Errorf("body = %q (%s), want plain text saying %q", body, ct, reason)
	}
}

// A foreign page must not open a student's kernel or terminal websocket,
// nor POST to their server, with the student's cookie: the proxy injects
// the server token, which turns Jupyter's own Origin and XSRF checks off.
func TestCrossOriginRefused(t *testing.T) {
	const self = "$self" // replaced by the proxy's own origin
	allowLab := func(o *proxy.Options) { o.AllowedOrigins = []string{"https://lab.example.edu"} }
	publicURL := func(o *proxy.Options) { o.PublicURL = "https://hub.example.edu/" }
	cases := []struct {
		name   string
		method string // empty: websocket
		header map[string]string
		opts   func(*proxy.Options)
		refuse string // expected reason; empty: passes
	}{
		{name: "websocket from a foreign origin", header: map[string]string{"Origin": "https://evil.example"}, refuse: "Origin"},
		{name: "websocket from a sibling host of the public URL", opts: publicURL, header: map[string]string{"Origin": "https://evil.example.edu"}, refuse: "Origin"},
		{name: "websocket from the same host on another port", header: map[string]string{"Origin": "http://127.0.0.1:1"}, refuse: "Origin"},
		{name: "websocket from https while the hub is reached over http", header: map[string]string{"Origin": "https://" + self}, refuse: "Origin"},
		{name: "websocket with Origin null", header: map[string]string{"Origin": "null"}, refuse: "Origin"},
		{name: "websocket from an origin extending an allowed one", opts: allowLab, header: map[string]string{"Origin": "https://lab.example.edu.evil.example"}, refuse: "Origin"},
		{name: "websocket marked same-site", header: map[string]string{"Sec-Fetch-Site": "same-site"}, refuse: "Sec-Fetch-Site"},
		{name: "websocket marked cross-site", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, refuse: "Sec-Fetch-Site"},
		{name: "websocket from the hub's origin", header: map[string]string{"Origin": "http://" + self}},
		{name: "websocket from the hub's origin in upper case", header: map[string]string{"Origin": "HTTP://" + self}},
		{name: "websocket through a TLS proxy", header: map[string]string{"Origin": "https://" + self, "X-Forwarded-Proto": "https"}},
		{name: "websocket from the configured public URL", opts: publicURL, header: map[string]string{"Origin": "https://hub.example.edu:443"}},
		{name: "websocket from an allowed extra origin", opts: allowLab, header: map[string]string{"Origin": "https://LAB.example.edu"}},
		{name: "websocket marked same-origin", header: map[string]string{"Sec-Fetch-Site": "same-origin"}},
		{name: "websocket marked none (typed by the user)", header: map[string]string{"Sec-Fetch-Site": "none"}},
		{name: "websocket from a script (no Origin, no fetch metadata)"},
		{name: "POST from a foreign origin", method: "POST", header: map[string]string{"Origin": "https://evil.example"}, refuse: "Origin"},
		{name: "PUT from a foreign origin", method: "PUT", header: map[string]string{"Origin": "https://evil.example"}, refuse: "Origin"},
		{name: "PATCH from a foreign origin", method: "PATCH", header: map[string]string{"Origin": "https://evil.example"}, refuse: "Origin"},
		{name: "DELETE from a foreign origin", method: "DELETE", header: map[string]string{"Origin": "https://evil.example"}, refuse: "Origin"},
		{name: "POST marked same-site", method: "POST", header: map[string]string{"Sec-Fetch-Site": "same-site"}, refuse: "Sec-Fetch-Site"},
		{name: "POST from the hub's origin", method: "POST", header: map[string]string{"Origin": "http://" + self}},
		{name: "POST from an allowed extra origin", method: "POST", opts: allowLab, header: map[string]string{"Origin": "https://lab.example.edu"}},
		{name: "GET from a foreign origin (cannot read the answer)", method: "GET", header: map[string]string{"Origin": "https://evil.example"}},
		{name: "OPTIONS preflight from a foreign origin", method: "OPTIONS", header: map[string]string{"Origin": "https://evil.example"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []func(*proxy.Options)
			if tc.opts != nil {
				opts = append(opts, tc.opts)
			}
			e := newEnv(t, false, opts...)
			h := map[string]string{}
			for k, v := range tc.header {
				h[k] = strings.ReplaceAll(v, self, e.srv.Listener.Addr().String())
			}
			path := "/user/alice/api/kernels/k1/channels/ws"
			switch {
			case tc.method == "" && tc.refuse != "":
				checkRefusal(t, e, e.do(req{path: path, session: "s-alice", header: with(upgradeHeader, flat(h)...)}), http.StatusForbidden, tc.refuse)
			case tc.method == "":
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, res, err := e.dialWSWith(ctx, path, h)
				if err != nil {
					st := 0
					if res != nil {
						st = res.StatusCode
					}
					t.Fatalf("websocket refused (status %d): %v", st, err)
				}
				c.Close(websocket.StatusNormalClosure, "")
			case tc.refuse != "":
				checkRefusal(t, e, e.do(req{method: tc.method, path: "/user/alice/api/contents/a.ipynb", session: "s-alice", header: h, body: "{}"}), http.StatusForbidden, tc.refuse)
			default:
				res := e.do(req{method: tc.method, path: "/user/alice/api/contents/a.ipynb", session: "s-alice", header: h, body: "{}"})
				if res.StatusCode != http.StatusOK || e.hits.Load() != 1 {
					t.Fatalf("status = %d, upstream hits %d; want 200 and 1", res.StatusCode, e.hits.Load())
				}
			}
		})
	}
}

func flat(m map[string]string) []string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k, v)
	}
	return kv
}

// tokenIdentities knows one API token (a service's, or a student's from
// /hub/api) and otherwise identifies as the hub does.
type tokenIdentities struct{ fakeIdentifier }

func (f tokenIdentities) Identify(r *http.Request, server string) (proxy.Identity, bool) {
	if r.Header.Get("Authorization") == "token api-alice" {
		return proxy.Identity{User: "alice", Via: "token"}, true
	}
	return f.fakeIdentifier.Identify(r, server)
}

// A request authenticated by its Authorization token carries nothing a
// foreign page could ride on, so the Origin check does not apply to it; a
// request that the cookie authenticates is checked even when it also
// carries a token (JupyterLab sends the server token next to the cookie).
func TestTokenRequestsAreExemptFromTheOriginCheck(t *testing.T) {
	e := newEnv(t, false)
	p := proxy.New(tokenIdentities{identities}, e.res, nil, nil, proxy.Options{CookieName: hubCookie, ServerCookieName: accessCookie, Logger: quiet, Namer: namer})
	for _, tc := range []struct {
		name, cookie string
		want         int
	}{
		{"token only", "", http.StatusOK},
		{"token next to the access cookie", accessCookie + "=s-alice", http.StatusForbidden},
	} {
		rq := httptest.NewRequest("POST", "/user/alice/api/kernels", strings.NewReader("{}"))
		rq.Header.Set("Authorization", "token api-alice")
		rq.Header.Set("Origin", "https://evil.example")
		if tc.cookie != "" {
			rq.Header.Set("Cookie", tc.cookie)
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, rq)
		if rec.Code != tc.want {
			t.Errorf("%s: status = %d, want %d (%s)", tc.name, rec.Code, tc.want, rec.Body.Bytes())
		}
	}
}

// A sibling host can plant a second session cookie for the parent domain
// or a longer path ("cookie tossing"); which one the hub reads is then the
// attacker's choice.
func TestTwoSessionCookiesRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lines  []string
		header map[string]string
		cookie string // the doubled name; default the hub cookie
	}{
		{name: "in one header", lines: []string{hubCookie + "=s-bob; _xsrf=1; " + hubCookie + "=s-alice"}},
		{name: "with spaces and the same value twice", lines: []string{" " + hubCookie + " =s-alice;" + hubCookie + "=s-alice"}},
		{name: "in two headers", lines: []string{hubCookie + "=s-alice", "_xsrf=1; " + hubCookie + "=s-bob"}},
		{name: "on a websocket upgrade", lines: []string{hubCookie + "=s-bob; " + hubCookie + "=s-alice"}, header: upgradeHeader},
		{name: "two access cookies", lines: []string{accessCookie + "=s-bob; " + accessCookie + "=s-alice"}, cookie: accessCookie},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			r, _ := http.NewRequest("GET", e.srv.URL+"/user/alice/api/kernels/k1/channels/ws", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			r.Header["Cookie"] = tc.lines
			res, err := e.client.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			name := tc.cookie
			if name == "" {
				name = hubCookie
			}
			checkRefusal(t, e, res, http.StatusBadRequest, "two "+name+" cookies")
		})
	}
	// One session cookie beside a name that only differs in case passes.
	e := newEnv(t, false)
	if res := e.do(req{path: "/user/alice/api/status", header: map[string]string{"Cookie": accessCookie + "=s-alice; " + strings.ToUpper(accessCookie) + "=x"}}); res.StatusCode != http.StatusOK {
		t.Fatalf("one session cookie: status %d, want 200", res.StatusCode)
	}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A user server shares the hub's origin: its headers must not install a
// service worker over /hub/, clear the hub's cookies, or set cookies the
// hub or other servers read.
func TestHostileResponseHeadersStripped(t *testing.T) {
	hostile := []string{
		hubCookie + "=forged; Path=/user/alice/",
		strings.ToUpper(hubCookie) + "=forged; Path=/user/alice/",
		"  " + hubCookie + " =forged",
		"=" + hubCookie + "=forged; Path=/user/alice/",
		"= " + hubCookie + "=forged",
		"==" + hubCookie + "=forged",
		hubCookie + "; Path=/user/alice/",
		"__Host-" + hubCookie + "=forged; Path=/; Secure",
		"__Secure-" + hubCookie + "=forged; Path=/user/alice/; Secure",
		accessCookie + "=forged; Path=/user/alice/",
	}
	// Cookies scoped beyond the server's own path are confined to it.
	confined := map[string]string{
		"x=1; Path=/":                                "x=1; Path=/user/alice/",
		"x=1; path=/hub/":                            "x=1; Path=/user/alice/",
		"x=1; Path=/hub":                             "x=1; Path=/user/alice/",
		"x=1; PATH = /hub/api/users":                 "x=1; Path=/user/alice/",
		"x=1; Path=/user/":                           "x=1; Path=/user/alice/",
		"x=1; Path=/user/bob/":                       "x=1; Path=/user/alice/",
		"x=1; Path=/user/alicex/":                    "x=1; Path=/user/alice/",
		"x=1; Path=/user/alice/; Path=/":             "x=1; Path=/user/alice/; Path=/user/alice/",
		"_xsrf=2|n6; Path=/":                         "_xsrf=2|n6; Path=/user/alice/",
		"d=1; Domain=example.edu; Path=/user/alice/": "d=1; Path=/user/alice/",
	}
	kept := []string{
		"_xsrf=2|abc; Path=/user/alice/",
		"username-127-0-0-1=y; Path=/user/alice; HttpOnly",
		"jupyterhub-user-alice-oauth-state=z; Path=/user/alice/oauth_callback; HttpOnly",
		"plain=1",
		"empty-path=1; Path=",
	}
	confinedIn := slices.Sorted(maps.Keys(confined))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Service-Worker-Allowed", "/")
		h.Set("Clear-Site-Data", `"cookies", "storage"`)
		h.Set("X-Other", "kept")
		for _, c := range append(append([]string(nil), hostile...), kept...) {
			h.Add("Set-Cookie", c)
		}
		for _, c := range confinedIn {
			h.Add("Set-Cookie", c)
		}
		if strings.HasSuffix(r.URL.Path, "/ws") {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_, msg, err := c.Read(r.Context())
			if err == nil {
				_ = c.Write(r.Context(), websocket.MessageText, msg)
			}
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(up.Close)
	logs := &syncBuffer{}
	e := newEnv(t, false, func(o *proxy.Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	e.res.mu.Lock()
	e.res.addr["alice"] = up.Listener.Addr().String()
	e.res.mu.Unlock()

	check := func(t *testing.T, h http.Header) {
		t.Helper()
		for _, k := range []string{"Service-Worker-Allowed", "Clear-Site-Data"} {
			if v, ok := h[k]; ok {
				t.Errorf("%s: %q reached the browser", k, v)
			}
		}
		if got := h.Get("X-Other"); got != "kept" {
			t.Errorf("X-Other = %q, want kept", got)
		}
		want := append([]string(nil), kept...)
		for _, c := range confinedIn {
			want = append(want, confined[c])
		}
		if got := h.Values("Set-Cookie"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("Set-Cookie reaching the browser:\n%s\nwant only:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	for range 2 {
		res := e.do(req{path: "/user/alice/api/contents", session: "s-alice"})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", res.StatusCode)
		}
		check(t, res.Header)
	}
	t.Run("on the websocket handshake", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, res, err := e.dialWSWith(ctx, "/user/alice/api/kernels/k1/channels/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		check(t, res.Header)
	})
	for _, k := range []string{"Set-Cookie", "Service-Worker-Allowed", "Clear-Site-Data"} {
		if n := strings.Count(logs.String(), "header="+k); n != 1 {
			t.Errorf("%d warnings about %s from alice's server, want 1:\n%s", n, k, logs.String())
		}
	}
}

// One student's tab storm or script must not hold every connection of the
// replica: beyond the caps they get 429 with Retry-After, others are
// unaffected, and the slots come back when the requests and websockets end.
func TestPerUserCaps(t *testing.T) {
	arrived := make(chan struct{}, 8)
	releaseSlow := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(releaseSlow) }) }
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/ws"):
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, msg); err != nil {
					return
				}
			}
		case strings.HasSuffix(r.URL.Path, "/slow"):
			arrived <- struct{}{}
			select {
			case <-releaseSlow:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(up.Close)
	e := newEnv(t, false, func(o *proxy.Options) { o.MaxRequests, o.MaxWebsockets = 2, 2 })
	t.Cleanup(release) // first: closing the servers waits for the slow requests
	e.res.mu.Lock()
	e.res.addr["alice"] = up.Listener.Addr().String()
	e.res.addr["bob"] = up.Listener.Addr().String()
	e.res.mu.Unlock()

	check429 := func(t *testing.T, res *http.Response, what string) {
		t.Helper()
		if res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status = %d, want 429", res.StatusCode)
		}
		if res.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		if body := decode[apiError](t, res); !strings.Contains(body.Message, what) {
			t.Errorf("message %q does not mention %q", body.Message, what)
		}
	}

	t.Run("requests in flight", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				r, _ := http.NewRequest("GET", e.srv.URL+"/user/alice/api/slow", nil)
				r.AddCookie(&http.Cookie{Name: accessCookie, Value: "s-alice"})
				if res, err := e.client.Do(r); err == nil {
					res.Body.Close()
				}
			})
		}
		// Both slow requests are at the server, holding alice's two slots.
		<-arrived
		<-arrived
		check429(t, e.do(req{path: "/user/alice/api/status", session: "s-alice"}), "requests in flight")
		if res := e.do(req{path: "/user/bob/api/status", session: "s-bob"}); res.StatusCode != http.StatusOK {
			t.Errorf("bob while alice is at her cap: status %d, want 200", res.StatusCode)
		}
		release()
		wg.Wait()
		if res := e.do(req{path: "/user/alice/api/status", session: "s-alice"}); res.StatusCode != http.StatusOK {
			t.Errorf("alice after her requests ended: status %d, want 200", res.StatusCode)
		}
	})

	t.Run("websockets", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var conns []*websocket.Conn
		for i := range 2 {
			c, _, err := e.dialWSWith(ctx, fmt.Sprintf("/user/alice/api/kernels/k%d/ws", i), nil)
			if err != nil {
				t.Fatalf("websocket %d: %v", i, err)
			}
			defer c.CloseNow()
			conns = append(conns, c)
		}
		check429(t, e.do(req{path: "/user/alice/api/kernels/k2/ws", session: "s-alice", header: upgradeHeader}), "websockets")
		// Plain requests have their own cap.
		if res := e.do(req{path: "/user/alice/api/status", session: "s-alice"}); res.StatusCode != http.StatusOK {
			t.Errorf("request beside two websockets: status %d, want 200", res.StatusCode)
		}
		// The slot comes back once the proxy has let go of a closed
		// connection; wait for that by retrying (the context bounds it).
		conns[0].Close(websocket.StatusNormalClosure, "")
		reopen := func() {
			t.Helper()
			for {
				c, res, err := e.dialWSWith(ctx, "/user/alice/api/kernels/k3/ws", nil)
				if err == nil {
					t.Cleanup(func() { c.CloseNow() })
					return
				}
				if res == nil || res.StatusCode != http.StatusTooManyRequests || ctx.Err() != nil {
					t.Fatalf("websocket after closing one: %v", err)
				}
			}
		}
		reopen()
		// Connections the hub cuts (revocation) give their slots back too.
		if n := e.p.CloseUser("alice"); n != 2 {
			t.Fatalf("CloseUser = %d, want 2", n)
		}
		reopen()
	})
}
