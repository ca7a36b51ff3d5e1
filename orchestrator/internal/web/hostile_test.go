package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The hostile-input table: every request a student (or anyone on the
// network) can craft is answered with a 4xx or a closed connection, never a
// panic, and never reaches a server it should not. The hub runs as in
// production: the real web.Server and proxy.Proxy behind an http.Server with
// serve.go's limits, on a real Redis.

func rawGet(path, extraHeaders string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: hub.example\r\n" + extraHeaders + "Connection: close\r\n\r\n"
}

func assertNoPanic(t *testing.T, h *realHub) {
	t.Helper()
	if l := h.logs.String(); strings.Contains(strings.ToLower(l), "panic") {
		t.Fatalf("the hub logged a panic:\n%s", l)
	}
}

func TestHostileRequests(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	t.Cleanup(func() { assertNoPanic(t, h) })
	ctx := context.Background()
	alice := h.session(t, "alice")
	ac, _ := h.accessCookie(t, alice.ID, "alice")
	// What a browser sends to /user/alice/: alice's access cookie (and, from
	// an older release, the hub cookie).
	cookie := "Cookie: " + hubCookieName + "=" + alice.ID + "; " + accessCookieName + "=" + ac.Value + "\r\n"
	adminToken, _, err := h.st.CreateToken(ctx, "admin", "hostile")
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("a", 80<<10) // past MaxHeaderBytes (32 KiB + Go's 4 KiB slack)

	type hostile struct {
		name string
		raw  string
		// want is the exact status; 0 means "any 4xx or a closed connection".
		want int
	}
	cases := []hostile{
		// Oversized headers.
		{name: "one 80 KiB header on a hub page", raw: rawGet("/hub/login", "X-Big: "+big+"\r\n"), want: http.StatusRequestHeaderFieldsTooLarge},
		{name: "one 80 KiB header on a proxied path", raw: rawGet("/user/alice/api/status", cookie+"X-Big: "+big+"\r\n"), want: http.StatusRequestHeaderFieldsTooLarge},
		{name: "2000 small headers", raw: rawGet("/hub/api/", strings.Repeat("X-Many: 0123456789012345678901234567890123456789\r\n", 2000)), want: http.StatusRequestHeaderFieldsTooLarge},
		{name: "80 KiB cookie", raw: rawGet("/user/alice/tree", "Cookie: "+hubCookieName+"="+big+"\r\n"), want: http.StatusRequestHeaderFieldsTooLarge},
		{name: "80 KiB request line", raw: rawGet("/hub/login?next=/"+big, ""), want: http.StatusRequestHeaderFieldsTooLarge},

		// Path traversal and encoded separators under /user/ (alice asks).
		{name: "encoded dot-dot into bob", raw: rawGet("/user/alice/%2e%2e/bob/api/status", cookie), want: http.StatusBadRequest},
		{name: "mixed-case encoded dot-dot", raw: rawGet("/user/alice/%2E%2e/bob/api/status", cookie), want: http.StatusBadRequest},
		{name: "dot-dot then encoded slash", raw: rawGet("/user/alice/..%2fbob/api/status", cookie), want: http.StatusBadRequest},
		{name: "fully encoded dot-dot-slash", raw: rawGet("/user/alice/%2e%2e%2fbob/api/status", cookie), want: http.StatusBadRequest},
		{name: "dot-dot between encoded backslashes", raw: rawGet("/user/alice/%5c..%5cbob/api/status", cookie), want: http.StatusBadRequest},
		{name: "dot-dot then encoded backslash", raw: rawGet("/user/alice/..%5Cbob/api/status", cookie), want: http.StatusBadRequest},
		{name: "literal dot-dot", raw: rawGet("/user/alice/../bob/api/status", cookie), want: http.StatusBadRequest},
		{name: "literal dot", raw: rawGet("/user/alice/./api/status", cookie), want: http.StatusBadRequest},
		{name: "encoded dot", raw: rawGet("/user/alice/%2e/api/status", cookie), want: http.StatusBadRequest},
		{name: "empty name (double slash)", raw: rawGet("/user//bob/api/status", cookie), want: http.StatusBadRequest},
		{name: "dot as name", raw: rawGet("/user/./bob/api/status", cookie), want: http.StatusBadRequest},
		{name: "encoded dot-dot as name", raw: rawGet("/user/%2e%2e/hub/api/users", cookie), want: http.StatusBadRequest},
		{name: "encoded slash inside the name", raw: rawGet("/user/alice%2f..%2fbob/api/status", cookie), want: http.StatusBadRequest},
		{name: "encoded backslash inside the name", raw: rawGet("/user/alice%5cbob/api/status", cookie), want: http.StatusBadRequest},
		{name: "NUL in the name", raw: rawGet("/user/alice%00/api/status", cookie), want: http.StatusBadRequest},
		{name: "traversal in a contents path", raw: rawGet("/user/alice/api/contents/%2e%2e%2f%2e%2e%2fbob", cookie), want: http.StatusBadRequest},
		{name: "encoded user prefix", raw: rawGet("/%75ser/bob/api/status", cookie), want: http.StatusBadRequest},
		{name: "encoded slash after the user prefix", raw: rawGet("/user%2fbob/api/status", cookie), want: http.StatusBadRequest},
		{name: "double leading slash", raw: rawGet("//user/bob/api/status", cookie)},
		{name: "hub dot-dot into user", raw: rawGet("/hub/../user/bob/api/status", cookie)},
		{name: "another student's server", raw: rawGet("/user/bob/api/status", cookie), want: http.StatusForbidden},
		{name: "prefix of another name", raw: rawGet("/user/alic/api/status", cookie), want: http.StatusForbidden},
		{name: "absolute-form URI to another host", raw: "GET http://evil.example/user/bob/api/status HTTP/1.1\r\nHost: evil.example\r\n" + cookie + "Connection: close\r\n\r\n", want: http.StatusForbidden},

		// CR, LF and other control bytes in headers: the HTTP parser refuses them.
		{name: "bare CR inside a header value", raw: rawGet("/hub/login", "X-Note: a\rSet-Cookie: x=1\r\n"), want: http.StatusBadRequest},
		{name: "NUL inside a header value", raw: rawGet("/hub/login", "X-Note: a\x00b\r\n"), want: http.StatusBadRequest},
		// A folded line joins the previous value; it never becomes a header
		// of its own, so the folded Cookie does not log anyone in.
		{name: "obsolete line folding", raw: rawGet("/user/alice/api/status", "X-Note: a\r\n Cookie: "+accessCookieName+"="+ac.Value+"\r\n"), want: http.StatusUnauthorized},
		{name: "space in a header name", raw: rawGet("/hub/login", "X Note: a\r\n"), want: http.StatusBadRequest},
		{name: "CR in the cookie", raw: rawGet("/user/alice/api/status", "Cookie: "+accessCookieName+"="+ac.Value+"\rX: y\r\n"), want: http.StatusBadRequest},
		{name: "two Host headers", raw: "GET /hub/login HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", want: http.StatusBadRequest},
		{name: "CRLF in the request target", raw: "GET /hub/login\r\nX: y HTTP/1.1\r\nHost: hub.example\r\n\r\n"},
		{name: "encoded CRLF reflected into the request id", raw: rawGet("/hub/api/", "X-Request-Id: a%0d%0aSet-Cookie:%20x=1\r\n"), want: http.StatusOK},

		// Oversized bodies on the API: MaxBytesReader stops reading at 1 MiB.
		{name: "2 MiB JSON body to POST /hub/api/users", raw: bodyRequest("POST", "/hub/api/users", "Authorization: token "+adminToken+"\r\nContent-Type: application/json\r\n",
			`{"usernames":["`+strings.Repeat("x", 2<<20)+`"]}`)},
		{name: "2 MiB JSON body to PATCH a user", raw: bodyRequest("PATCH", "/hub/api/users/bob", "Authorization: token "+adminToken+"\r\nContent-Type: application/json\r\n",
			`{"admin":false,"pad":"`+strings.Repeat("x", 2<<20)+`"}`)},
		{name: "2 MiB JSON body to create a token", raw: bodyRequest("POST", "/hub/api/users/admin/tokens", "Authorization: token "+adminToken+"\r\nContent-Type: application/json\r\n",
			`{"note":"`+strings.Repeat("x", 2<<20)+`"}`)},
		{name: "body longer than its Content-Length claims", raw: "POST /hub/api/users HTTP/1.1\r\nHost: hub.example\r\nAuthorization: token " + adminToken +
			"\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{\"usernames\":[\"x\"]}"},
		{name: "negative Content-Length", raw: "POST /hub/api/users HTTP/1.1\r\nHost: hub.example\r\nContent-Length: -1\r\nConnection: close\r\n\r\n", want: http.StatusBadRequest},
		{name: "Content-Length and chunked together", raw: "POST /hub/api/users HTTP/1.1\r\nHost: hub.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := h.rawExchange(t, tc.raw)
			if err != nil {
				if tc.want != 0 {
					t.Fatalf("connection closed without an answer (%v); want %d", err, tc.want)
				}
				return // a closed connection is an acceptable answer
			}
			if strings.Contains(resp.Header.Get("Set-Cookie"), "x=1") || resp.Header.Get("X") != "" {
				t.Fatalf("a header was injected into the response: %v", resp.Header)
			}
			if tc.want != 0 {
				if resp.StatusCode != tc.want {
					t.Fatalf("want %d, got %d %s", tc.want, resp.StatusCode, body)
				}
				if tc.want == http.StatusOK {
					if id := resp.Header.Get("X-Request-Id"); strings.ContainsAny(id, "\r\n") {
						t.Fatalf("request id %q carries a line break", id)
					}
				}
				return
			}
			if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Fatalf("want a 4xx or a closed connection, got %d %s", resp.StatusCode, body)
			}
		})
	}
}

func bodyRequest(method, path, headers, body string) string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: hub.example\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, path, headers, len(body), body)
}

// TestHostileLoginBodyIsBounded posts a 12 MiB login form: it is refused,
// and the figure shows how much the hub allocates reading it.
func TestHostileLoginBodyIsBounded(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	body := "username=alice&password=" + strings.Repeat("p", 12<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, _, err := h.rawExchange(t, bodyRequest("POST", "/hub/login", "Content-Type: application/x-www-form-urlencoded\r\n", body))
	runtime.ReadMemStats(&after)
	if err == nil && (resp.StatusCode < 400 || resp.StatusCode > 499) {
		t.Fatalf("12 MiB login form: want a 4xx, got %d", resp.StatusCode)
	}
	t.Logf("FIGURE login_12MiB_body_alloc_bytes=%d", after.TotalAlloc-before.TotalAlloc)
	assertNoPanic(t, h)
}

// TestHostileNextStaysLocal sends the classic open-redirect values through
// every place that honours next=; each redirect must stay on the hub.
func TestHostileNextStaysLocal(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	alice := h.session(t, "alice")
	hub, _ := url.Parse("http://hub.example/")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	nexts := []string{"//evil.example", "/\\evil.example", "https:evil.example", "https://evil.example/",
		"http:/evil.example", "/\t/evil.example", "/%2f/evil.example", "javascript:alert(1)", "\\\\evil.example",
		"/%0d%0aSet-Cookie:%20x=1", "//evil.example/user/alice/"}
	for _, next := range nexts {
		t.Run(next, func(t *testing.T) {
			for _, path := range []string{"/hub/login?next=", "/hub/spawn-pending/alice?next="} {
				req, _ := http.NewRequest(http.MethodGet, h.ts.URL+path+url.QueryEscape(next), nil)
				req.AddCookie(&http.Cookie{Name: hubCookieName, Value: alice.ID})
				req.Header.Set("Accept", "text/html")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				page, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				checkLocal(t, hub, path, resp, string(page))
			}
			// The login form itself: anonymous, next= travels in a hidden field.
			jarless := h.loginThroughForm(t, next)
			checkLocal(t, hub, "POST /hub/login", jarless, "")
		})
	}
}

func checkLocal(t *testing.T, hub *url.URL, where string, resp *http.Response, page string) {
	t.Helper()
	if strings.Contains(resp.Header.Get("Set-Cookie"), "x=1") {
		t.Fatalf("%s: header injected: %v", where, resp.Header)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			t.Fatalf("%s: redirect without Location", where)
		}
		if strings.Contains(page, `href="//`) || strings.Contains(page, `action="//`) {
			t.Fatalf("%s: page links off-site", where)
		}
		return
	}
	if strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") || strings.ContainsAny(loc, "\\\r\n\t") {
		t.Fatalf("%s: Location %q", where, loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("%s: Location %q does not parse: %v", where, loc, err)
	}
	if r := hub.ResolveReference(u); r.Host != hub.Host || r.Scheme != hub.Scheme {
		t.Fatalf("%s: Location %q leads to %s", where, loc, r)
	}
}

// loginThroughForm logs alice in through the real form with next set and
// returns the answer to the POST.
func (h *realHub) loginThroughForm(t *testing.T, next string) *http.Response {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(h.ts.URL + "/hub/login?next=" + url.QueryEscape(next))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := loginFormXSRF.FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("no _xsrf in the login form")
	}
	form := url.Values{"username": {"alice"}, "password": {realPassword}, "_xsrf": {m[1]}, "next": {next}}
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/hub/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range resp.Cookies() {
		req.AddCookie(ck)
	}
	out, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if out.StatusCode != http.StatusFound {
		t.Fatalf("login with next=%q: %d", next, out.StatusCode)
	}
	return out
}

// TestHostileSlowHeaders is a slowloris client: it opens connections and
// sends one header byte per second. The hub must close them once
// ReadHeaderTimeout passes; the test only checks that closure comes before a
// generous deadline, not when.
func TestHostileSlowHeaders(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	t.Cleanup(func() { assertNoPanic(t, h) })
	for _, path := range []string{"/hub/login", "/user/alice/api/status", "/hub/api/users"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", h.ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			closed := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, conn) // returns when the server closes
				closed <- err
			}()
			trickle := "GET " + path + " HTTP/1.1\r\nHost: hub.example\r\nX-Slow: " + strings.Repeat("z", 600)
			deadline := time.After(90 * time.Second) // ReadHeaderTimeout is 10 s; this is only a hang guard
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case err := <-closed:
					t.Logf("FIGURE slowloris_bytes_before_close=%d (%v)", i, err)
					return
				case <-deadline:
					t.Fatal("the hub kept a connection open that had sent only part of its headers after 90 s")
				case <-tick.C:
					if i < len(trickle) {
						if _, err := conn.Write([]byte{trickle[i]}); err != nil {
							t.Logf("FIGURE slowloris_bytes_before_close=%d (write: %v)", i, err)
							return // the hub closed it: a write to a closed peer fails
						}
					}
				}
			}
		})
	}
}

// TestHostileIdleWebsockets opens 2,000 websockets through the proxy and
// leaves them idle: every one is tracked, the heap grows by a bounded amount
// per connection (reported as FIGUREs), and Shutdown closes each with 1001.
func TestHostileIdleWebsockets(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections; skipped with -short")
	}
	const n = 2000
	raiseFDLimit(t, 4*n+1024)
	h := newRealHub(t, hubConfig{})
	t.Cleanup(func() { assertNoPanic(t, h) })
	sess := h.session(t, "alice")
	ac, _ := h.accessCookie(t, sess.ID, "alice")
	upgrade := "GET /user/alice/api/kernels/k/channels HTTP/1.1\r\nHost: hub.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://hub.example\r\n" +
		"Cookie: " + accessCookieName + "=" + ac.Value + "\r\n\r\n"
	// Warm the session cache and the transport first so they do not count.
	warm := dialUpgrade(t, h.ts.Listener.Addr().String(), upgrade)
	warm.conn.Close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	conns := make([]*wsClient, 0, n)
	for i := 0; i < n; i++ {
		conns = append(conns, dialUpgrade(t, h.ts.Listener.Addr().String(), upgrade))
	}
	waitFor(t, 60*time.Second, func() bool { return h.px.OpenWebsockets() >= n }, func() string {
		return fmt.Sprintf("the proxy tracks %d of %d websockets", h.px.OpenWebsockets(), n)
	})
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	stack := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	gor := (runtime.NumGoroutine() - g0) / n
	t.Logf("FIGURE ws_idle_heap_bytes_per_conn=%d", heap)
	t.Logf("FIGURE ws_idle_stack_bytes_per_conn=%d", stack)
	t.Logf("FIGURE ws_idle_goroutines_per_conn=%d", gor)
	t.Logf("(per connection, all in this process: the raw client, the hub's server side and proxy copy, and the stand-in upstream)")
	// A memory bound, not a timing one: 2,000 idle sockets must not cost
	// more than 256 KiB each in heap and stacks together.
	if heap+stack > 256<<10 {
		t.Fatalf("each idle websocket costs %d bytes of heap and %d of stack", heap, stack)
	}
	if got := h.px.OpenWebsockets(); got != n {
		t.Fatalf("the proxy tracks %d websockets, want %d", got, n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.px.Shutdown(ctx); err != nil {
		t.Fatalf("proxy shutdown: %v (still open: %d)", err, h.px.OpenWebsockets())
	}
	if got := h.px.OpenWebsockets(); got != 0 {
		t.Fatalf("%d websockets still tracked after Shutdown", got)
	}
	goingAway := 0
	for _, c := range conns {
		select {
		case first := <-c.done:
			if len(first) >= 4 && first[0] == 0x88 && first[2] == 0x03 && first[3] == 0xe9 {
				goingAway++
			}
		case <-ctx.Done():
			t.Fatal("a client connection stayed open after Shutdown")
		}
	}
	if goingAway != n {
		t.Fatalf("%d of %d clients got a 1001 close frame before the connection closed", goingAway, n)
	}
	// After Shutdown no new websocket is accepted.
	resp, _, err := h.rawExchange(t, upgrade)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatal("a websocket was accepted after Shutdown")
	}
}

type wsClient struct {
	conn net.Conn
	done chan []byte // the bytes read before the server closed the connection
}

func dialUpgrade(t *testing.T, addr, upgrade string) *wsClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, upgrade); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade: want 101, got %d %s", resp.StatusCode, b)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c := &wsClient{conn: conn, done: make(chan []byte, 1)}
	go func() {
		b, _ := io.ReadAll(io.LimitReader(br, 1<<10))
		c.done <- b
	}()
	return c
}

func raiseFDLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		t.Skipf("this test needs %d file descriptors; the hard limit is %d (raise it with ulimit -Hn)", need, lim.Max)
	}
	old := lim.Cur
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raising the open-file limit to %d: %v", need, err)
	}
	t.Cleanup(func() { lim.Cur = old; _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHostileProxiedRequestsNeverCarryHubSecrets: whatever a client sends,
// the upstream never sees the hub's cookies or the client's Authorization.
func TestHostileProxiedRequestsNeverCarryHubSecrets(t *testing.T) {
	h := newRealHub(t, hubConfig{})
	alice := h.session(t, "alice")
	ac, _ := h.accessCookie(t, alice.ID, "alice")
	acc := accessCookieName + "=" + ac.Value
	tok, _, err := h.st.CreateToken(context.Background(), "alice", "t")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"cookie among others":       "Cookie: _xsrf=abc; " + hubCookieName + "=" + alice.ID + "; " + acc + "; other=1\r\n",
		"cookie name in other case": "Cookie: " + strings.ToUpper(hubCookieName) + "=x; " + strings.ToUpper(accessCookieName) + "=x; " + hubCookieName + "=" + alice.ID + "; " + acc + "\r\n",
		"two cookie headers":        "Cookie: a=1\r\nCookie: " + hubCookieName + "=" + alice.ID + "; " + acc + "\r\n",
		"API token":                 "Authorization: token " + tok + "\r\n",
		"bearer token":              "Authorization: Bearer " + tok + "\r\n",
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body, err := h.rawExchange(t, rawGet("/user/alice/api/status?token="+tok, hdr))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("want 200, got %d %s", resp.StatusCode, body)
			}
			var seen upstreamSeen
			if err := json.Unmarshal([]byte(body), &seen); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(seen.Cookie, alice.ID) || strings.Contains(seen.Cookie, ac.Value) || strings.Contains(strings.ToLower(seen.Cookie), hubCookieName) {
				t.Fatalf("upstream saw the hub cookie: %q", seen.Cookie)
			}
			if seen.Authorization != "token server-token-of-alice" {
				t.Fatalf("upstream saw Authorization %q", seen.Authorization)
			}
		})
	}
	// The log never holds the session id, the access cookie or the token.
	for _, secret := range []string{alice.ID, ac.Value, tok} {
		if strings.Contains(h.logs.String(), secret) {
			t.Fatalf("a secret reached the log")
		}
	}
}
