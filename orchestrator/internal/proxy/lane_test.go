package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
)

// laneFront serves a proxy through its lane, as cmd/orchestrator does, and
// counts the requests that reached net/http (handed over) and those the
// lane reported.
type laneFront struct {
	URL      string
	host     string
	netHTTP  atomic.Int64
	mu       sync.Mutex
	observed []int
}

func newLaneFront(t *testing.T, p *proxy.Proxy) *laneFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &laneFront{host: ln.Addr().String()}
	f.URL = "http://" + f.host
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.netHTTP.Add(1)
			p.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	lane := p.Lane(ln, proxy.LaneOptions{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10,
		Observe: func(status int, _ time.Duration) {
			f.mu.Lock()
			f.observed = append(f.observed, status)
			f.mu.Unlock()
		}})
	go func() { _ = hs.Serve(lane) }()
	t.Cleanup(func() { _ = hs.Close() })
	return f
}

// aliceLane is a lane front for a proxy that finds alice's server at addr.
func aliceLane(t *testing.T, addr string) *laneFront {
	res := &fakeResolver{addr: map[string]string{"alice": addr}}
	return newLaneFront(t, proxy.New(identities, res, nil, nil,
		proxy.Options{CookieName: hubCookie, ServerCookieName: accessCookie, Logger: quiet, Namer: namer}))
}

func (f *laneFront) observedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.observed)
}

// answer is what a client sees of a response, with the front's own
// address (echoed by the upstream as Host) written as HOST.
type answer struct {
	Status  int
	Header  map[string][]string
	Body    string
	netHTTP bool
}

var remoteField = regexp.MustCompile(`"remote":"[^"]*"`)

func fetchAnswer(t *testing.T, base, host string, rq req, count func() int64) answer {
	t.Helper()
	if rq.method == "" {
		rq.method = http.MethodGet
	}
	r, err := http.NewRequest(rq.method, base+rq.path, strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	if rq.body == "" {
		r.Body = http.NoBody
	}
	if rq.session != "" {
		r.AddCookie(&http.Cookie{Name: accessCookie, Value: rq.session})
	}
	for k, v := range rq.header {
		r.Header.Set(k, strings.ReplaceAll(v, "BASE", base))
	}
	client := &http.Client{Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	before := count()
	res, err := client.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	b := remoteField.ReplaceAllString(strings.ReplaceAll(string(body), host, "HOST"), `"remote":"REMOTE"`)
	a := answer{Status: res.StatusCode, Header: map[string][]string{}, Body: b, netHTTP: count() > before}
	for _, k := range []string{"Content-Type", "Content-Length", "Location", "Set-Cookie", "Cache-Control", "Retry-After", "X-Content-Type-Options"} {
		if v := res.Header.Values(k); len(v) > 0 {
			a.Header[k] = v
		}
	}
	return a
}

// TestLaneAnswersAsNetHTTPDoes sends the same requests to one proxy served
// plainly by net/http and through its lane: every answer is the same, and
// the lane itself answers exactly the admitted GETs and HEADs.
func TestLaneAnswersAsNetHTTPDoes(t *testing.T) {
	e := newEnv(t, false)
	dead := deadAddr(t)
	e.res.mu.Lock()
	e.res.addr["ab"] = dead
	e.res.notRunning["bob"] = true
	e.res.mu.Unlock()
	lf := newLaneFront(t, e.p)
	plainHost := e.srv.Listener.Addr().String()
	var plainCount atomic.Int64 // the plain front is all net/http; not compared
	cases := []struct {
		name string
		rq   req
		lane bool // the lane answers it itself
	}{
		{"get", req{path: "/user/alice/api/contents?x=1", session: "s-alice", header: map[string]string{
			"Cookie":        "_xsrf=2|deadbeef; " + accessCookie + "=s-alice; " + hubCookie + "=h",
			"Authorization": "Bearer something-else", "Connection": "keep-alive, X-Drop", "X-Drop": "1", "X-Forwarded-For": "6.6.6.6"}}, true},
		{"head", req{method: http.MethodHead, path: "/user/alice/api/contents", session: "s-alice"}, true},
		{"renewed access cookie", req{path: "/user/alice/api/status", session: "c-alice-for-alice"}, true},
		{"server sets hostile cookies", req{path: "/user/alice/setcookie", session: "s-alice"}, true},
		{"escaped path", req{path: "/user/alice/files/a%2Fb%20c.txt", session: "s-alice"}, true},
		{"no identity, API", req{path: "/user/alice/api/contents"}, false},
		{"no identity, page", req{path: "/user/alice/tree", header: map[string]string{"Accept": "text/html"}}, false},
		{"another user's server", req{path: "/user/ab/api/contents", session: "s-alice"}, false},
		{"non-canonical path", req{path: "/user/alice", session: "s-alice"}, false},
		{"stopped server, page", req{path: "/user/bob/tree", session: "s-bob", header: map[string]string{"Accept": "text/html"}}, false},
		{"stopped server, API", req{path: "/user/bob/api/status", session: "s-bob"}, false},
		{"server gone", req{path: "/user/ab/api/status", session: "s-ab"}, true},
		{"post", req{method: http.MethodPost, path: "/user/alice/api/contents", session: "s-alice", body: `{"type":"notebook"}`,
			header: map[string]string{"Origin": "BASE", "Content-Type": "application/json"}}, false},
		{"cross-site GET", req{path: "/user/alice/api/contents", session: "s-alice", header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, true},
		{"cross-site POST", req{method: http.MethodPost, path: "/user/alice/api/contents", session: "s-alice", body: "{}",
			header: map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := fetchAnswer(t, e.srv.URL, plainHost, c.rq, plainCount.Load)
			got := fetchAnswer(t, lf.URL, lf.host, c.rq, lf.netHTTP.Load)
			if got.netHTTP == c.lane {
				t.Errorf("answered by net/http: %v, want %v", got.netHTTP, !c.lane)
			}
			got.netHTTP, want.netHTTP = false, false
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("through the lane:\n%+v\nplain net/http:\n%+v", got, want)
			}
		})
	}
	// The lane reports an answer once it is written: the client may have
	// read it a moment before.
	for end := time.Now().Add(10 * time.Second); lf.observedCount() < 7 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := lf.observedCount(), 7; got != want {
		t.Errorf("the lane reported %d answers to the metrics, want %d", got, want)
	}
}

// rawConn is one client connection that writes raw requests and reads
// answers in order.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, host string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(raw string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, raw); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	res, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	res.Body.Close()
	return res, string(b)
}

func get(path, cookie string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: hub.example\r\nCookie: " + accessCookie + "=" + cookie + "\r\n\r\n"
}

// TestLaneKeepsOneConnectionEachWay: 21 requests on one client connection
// reach the server on one connection, and never net/http.
func TestLaneKeepsOneConnectionEachWay(t *testing.T) {
	e := newEnv(t, false)
	conns := map[string]bool{}
	lf := newLaneFront(t, e.p)
	rc := dialRaw(t, lf.host)
	for i := range 20 {
		rc.send(get(fmt.Sprintf("/user/alice/api/contents/%d", i), "s-alice"))
		res, body := rc.read(http.MethodGet)
		if res.StatusCode != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"path":"/user/alice/api/contents/%d"`, i)) {
			t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
		}
		var got seen
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		conns[got.Remote] = true
		if res.Header.Get("Date") == "" || res.Close {
			t.Fatalf("request %d: Date %q, close %v", i, res.Header.Get("Date"), res.Close)
		}
	}
	// A last request asking to close: answered, then the connection ends.
	rc.send(strings.Replace(get("/user/alice/api/status", "s-alice"), "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1))
	if res, _ := rc.read(http.MethodGet); res.StatusCode != http.StatusOK || !res.Close {
		t.Fatalf("Connection: close: status %d, close %v", res.StatusCode, res.Close)
	}
	if _, err := rc.br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: read %v, want EOF", err)
	}
	if n := len(conns); n != 1 {
		t.Errorf("the server saw %d connections, want 1", n)
	}
	if n := lf.netHTTP.Load(); n != 0 {
		t.Errorf("net/http served %d requests, want none", n)
	}
	if got := e.act.get("alice"); got != 21 {
		t.Errorf("activity touched %d times, want 21 (one per request)", got)
	}
}

// TestLaneHandsOverWithWhatItRead: pipelined requests are answered in
// order; the first the lane does not take (a POST, with its body already
// in the lane's buffer) goes to net/http with everything after it.
func TestLaneHandsOverWithWhatItRead(t *testing.T) {
	e := newEnv(t, false)
	lf := newLaneFront(t, e.p)
	rc := dialRaw(t, lf.host)
	body := `{"type":"file"}`
	rc.send(get("/user/alice/one", "s-alice") + get("/user/alice/two", "s-alice") +
		"POST /user/alice/three HTTP/1.1\r\nHost: hub.example\r\nCookie: " + accessCookie + "=s-alice\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body +
		get("/user/alice/four", "s-alice"))
	for _, want := range []string{"one", "two", "three", "four"} {
		res, b := rc.read(http.MethodGet)
		if res.StatusCode != http.StatusOK || !strings.Contains(b, `"path":"/user/alice/`+want+`"`) {
			t.Fatalf("%s: %d %s", want, res.StatusCode, b)
		}
		if want == "three" && !strings.Contains(b, `"body":"{\"type\":\"file\"}"`) {
			t.Errorf("the POST's body did not reach the server: %s", b)
		}
	}
	if n := lf.netHTTP.Load(); n != 2 {
		t.Errorf("net/http served %d requests, want the POST and the GET after it", n)
	}
}

// TestLaneLeavesOddRequestsToNetHTTP: requests net/http refuses or frames
// differently get net/http's answer, and a GET carrying a body (a
// smuggling attempt) is read as one request with its body.
func TestLaneLeavesOddRequestsToNetHTTP(t *testing.T) {
	e := newEnv(t, false)
	lf := newLaneFront(t, e.p)
	ck := "Cookie: " + accessCookie + "=s-alice\r\n"
	cases := []struct {
		name, raw string
		status    int
	}{
		{"no Host", "GET /user/alice/x HTTP/1.1\r\n" + ck + "\r\n", 400},
		{"two Hosts", "GET /user/alice/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + ck + "\r\n", 400},
		{"bad Host", "GET /user/alice/x HTTP/1.1\r\nHost: a b\r\n" + ck + "\r\n", 400},
		{"control byte in a value", "GET /user/alice/x HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n" + ck + "\r\n", 400},
		{"header too large", "GET /user/alice/x HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 20<<10) + "\r\n" + ck + "\r\n", 431},
		{"HTTP/1.0", "GET /user/alice/x HTTP/1.0\r\nHost: a\r\n" + ck + "\r\n", 200},
		{"absolute form", "GET http://a/user/alice/x HTTP/1.1\r\nHost: a\r\n" + ck + "\r\n", 200},
		{"GET with a body", "GET /user/alice/x HTTP/1.1\r\nHost: a\r\n" + ck + "Content-Length: 56\r\n\r\n" +
			"GET /user/bob/x HTTP/1.1\r\nHost: a\r\nCookie: x=s-alice\r\n\r\n", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := lf.netHTTP.Load()
			rc := dialRaw(t, lf.host)
			rc.send(c.raw)
			res, body := rc.read(http.MethodGet)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, body)
			}
			if c.status == 200 && lf.netHTTP.Load() == before {
				t.Errorf("the lane answered it itself")
			}
			if c.name == "GET with a body" && !strings.Contains(body, `"body":"GET /user/bob/x`) {
				t.Errorf("the body was not passed on as a body: %s", body)
			}
		})
	}
}

// TestLaneStreamsAsItComes: an answer without a length (a stream) reaches
// the client piece by piece: the server sends its second piece only after
// the client has read the first.
func TestLaneStreamsAsItComes(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(twoPieces(release))
	t.Cleanup(up.Close)
	lf := aliceLane(t, up.Listener.Addr().String())
	rc := dialRaw(t, lf.host)
	rc.send(get("/user/alice/api/stream", "s-alice"))
	ans, err := http.ReadResponse(rc.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(ans.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	// The connection goes on after the stream.
	rc.send(get("/user/alice/api/stream2", "s-alice"))
	if res, _ := rc.read(http.MethodGet); res.StatusCode != http.StatusOK {
		t.Fatalf("next request: %d", res.StatusCode)
	}
	if n := lf.netHTTP.Load(); n != 0 {
		t.Errorf("net/http served %d requests, want none", n)
	}
}

// TestLaneReplacesAClosedServerConnection: when the server closes the kept
// connection between two requests, the lane sends the next request on a
// new one.
func TestLaneReplacesAClosedServerConnection(t *testing.T) {
	e := newEnv(t, false)
	lf := newLaneFront(t, e.p)
	rc := dialRaw(t, lf.host)
	for i := range 3 {
		rc.send(get("/user/alice/api/status", "s-alice"))
		if res, body := rc.read(http.MethodGet); res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
		}
		e.up.CloseClientConnections()
	}
	if n := lf.netHTTP.Load(); n != 0 {
		t.Errorf("net/http served %d requests, want none", n)
	}
}

// TestLaneDropUpstream: a request the lane sent to a server that is then
// reported lost ends at once and reaches the server's new address.
func TestLaneDropUpstream(t *testing.T) {
	e := newEnv(t, false)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	lost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	t.Cleanup(lost.Close)
	t.Cleanup(func() { close(release) })
	addr := lost.Listener.Addr().String()
	e.res.mu.Lock()
	good := e.res.addr["alice"]
	e.res.addr["alice"] = addr
	e.res.mu.Unlock()
	lf := newLaneFront(t, e.p)
	rc := dialRaw(t, lf.host)
	rc.send(get("/user/alice/api/contents", "s-alice"))
	<-arrived
	// The spawner moves the route, then reports the old address gone.
	e.res.mu.Lock()
	e.res.addr["alice"] = good
	e.res.mu.Unlock()
	e.p.DropUpstream(addr)
	res, body := rc.read(http.MethodGet)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"path":"/user/alice/api/contents"`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
}

// TestLaneCloseEndsIdleConnections: closing the listener (shutdown) closes
// client connections waiting for their next request.
func TestLaneCloseEndsIdleConnections(t *testing.T) {
	e := newEnv(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lane := e.p.Lane(ln, proxy.LaneOptions{})
	hs := &http.Server{Handler: e.p, ReadHeaderTimeout: time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(lane) }()
	rc := dialRaw(t, ln.Addr().String())
	rc.send(get("/user/alice/api/status", "s-alice"))
	if res, _ := rc.read(http.MethodGet); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	_ = hs.Close()
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve returned %v", err)
	}
	if _, err := rc.br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection after Close: read %v, want EOF", err)
	}
	if lane.Addr().String() != ln.Addr().String() {
		t.Errorf("Addr %v, want the listener's %v", lane.Addr(), ln.Addr())
	}
}

// TestLaneBoundsAServersHeader: a user server sending an endless header
// does not make the lane read it all; net/http's path answers 502.
func TestLaneBoundsAServersHeader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var sent atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
				line := []byte("X-Junk: " + strings.Repeat("j", 1000) + "\r\n")
				for sent.Load() < 64<<20 {
					n, err := c.Write(line)
					sent.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	lf := aliceLane(t, ln.Addr().String())
	rc := dialRaw(t, lf.host)
	rc.send(get("/user/alice/api/status", "s-alice"))
	if ans, body := rc.read(http.MethodGet); ans.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502: %s", ans.StatusCode, body)
	}
	if n := lf.netHTTP.Load(); n != 1 {
		t.Errorf("net/http served %d requests, want the one the lane gave up", n)
	}
	if n := sent.Load(); n >= 64<<20 {
		t.Errorf("the server got %d bytes of header through, want it cut off", n)
	}
}

// TestLaneClosesTheServerConnectionWithTheClients: a client leaving does
// not leave its kept server connection open.
func TestLaneClosesTheServerConnectionWithTheClients(t *testing.T) {
	closed := make(chan struct{}, 1)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	lf := aliceLane(t, up.Listener.Addr().String())
	rc := dialRaw(t, lf.host)
	rc.send(get("/user/alice/api/status", "s-alice"))
	if ans, _ := rc.read(http.MethodGet); ans.StatusCode != http.StatusOK {
		t.Fatalf("status %d", ans.StatusCode)
	}
	rc.c.Close()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the server connection stays open after the client left")
	}
}

// TestLaneRetriesAMovedServer: a server that no longer accepts at its
// cached address is resolved afresh and reached at its new one, by the
// lane itself, as net/http's path does.
func TestLaneRetriesAMovedServer(t *testing.T) {
	e := newEnv(t, false)
	e.res.mu.Lock()
	e.res.next["alice"] = e.res.addr["alice"]
	e.res.addr["alice"] = deadAddr(t)
	e.res.mu.Unlock()
	lf := newLaneFront(t, e.p)
	rc := dialRaw(t, lf.host)
	rc.send(get("/user/alice/api/status", "s-alice"))
	if res, body := rc.read(http.MethodGet); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	e.res.mu.Lock()
	forgotten := slices.Clone(e.res.forgotten)
	e.res.mu.Unlock()
	if !slices.Equal(forgotten, []string{"alice"}) || lf.netHTTP.Load() != 0 {
		t.Errorf("forgotten %v, net/http served %d; want alice forgotten once, and the lane to answer", forgotten, lf.netHTTP.Load())
	}
}

// TestLaneThenWebsocketOnOneConnection: a connection the lane served
// carries a websocket upgrade next; net/http takes it over and the
// websocket works.
func TestLaneThenWebsocketOnOneConnection(t *testing.T) {
	e := newEnv(t, false)
	lf := newLaneFront(t, e.p)
	rc := dialRaw(t, lf.host)
	rc.send(get("/user/alice/api/status", "s-alice"))
	if res, _ := rc.read(http.MethodGet); res.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", res.StatusCode)
	}
	rc.send("GET /user/alice/api/kernels/k/ws HTTP/1.1\r\nHost: " + lf.host + "\r\nOrigin: http://" + lf.host +
		"\r\nCookie: " + accessCookie + "=s-alice\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	res, err := http.ReadResponse(rc.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("upgrade: %d %s", res.StatusCode, b)
	}
	// One masked text frame "hi"; the server echoes it unmasked.
	mask := []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | 2, mask[0], mask[1], mask[2], mask[3], 'h' ^ mask[0], 'i' ^ mask[1]}
	if _, err := rc.c.Write(frame); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 4)
	if _, err := io.ReadFull(rc.br, echo); err != nil {
		t.Fatal(err)
	}
	if string(echo) != "\x81\x02hi" {
		t.Errorf("echo %q, want a text frame \"hi\"", echo)
	}
	if n := lf.netHTTP.Load(); n != 1 {
		t.Errorf("net/http served %d requests, want the upgrade", n)
	}
}

type panickingIdentifier struct{}

func (panickingIdentifier) Identify(*http.Request, string) (proxy.Identity, bool) {
	panic("identity bug")
}

// TestLaneSurvivesAPanic: a panic while serving a request ends that
// connection, as net/http's server does for a handler, not the process.
func TestLaneSurvivesAPanic(t *testing.T) {
	res := &fakeResolver{addr: map[string]string{"alice": deadAddr(t)}}
	lf := newLaneFront(t, proxy.New(panickingIdentifier{}, res, nil, nil,
		proxy.Options{CookieName: hubCookie, ServerCookieName: accessCookie, Logger: quiet, Namer: namer}))
	for range 2 {
		rc := dialRaw(t, lf.host)
		rc.send(get("/user/alice/api/status", "s-alice"))
		if _, err := http.ReadResponse(rc.br, nil); err == nil {
			t.Fatal("an answer came from a request whose identity check panicked")
		}
	}
}
