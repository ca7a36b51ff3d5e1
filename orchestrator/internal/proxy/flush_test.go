package proxy_test

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
)

// writeCounter counts the writes to each accepted connection.
type writeCounter struct {
	net.Listener
	mu     sync.Mutex
	writes []int // per connection, in accept order
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, 0)
	return &countedConn{Conn: c, l: l, i: len(l.writes) - 1}, nil
}

func (l *writeCounter) count(i int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writes[i]
}

type countedConn struct {
	net.Conn
	l *writeCounter
	i int
}

func (c *countedConn) Write(b []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes[c.i]++
	c.l.mu.Unlock()
	return c.Conn.Write(b)
}

// frontFor serves a proxy to upstream, counting the writes to browsers.
func frontFor(t *testing.T, upstream http.Handler) (*httptest.Server, *writeCounter) {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	res := &fakeResolver{addr: map[string]string{"alice": up.Listener.Addr().String()}}
	p := proxy.New(identities, res, nil, nil, proxy.Options{CookieName: hubCookie, ServerCookieName: accessCookie, Logger: quiet, Namer: namer})
	front := httptest.NewUnstartedServer(p)
	wc := &writeCounter{Listener: front.Listener}
	front.Listener = wc
	front.Start()
	t.Cleanup(front.Close)
	return front, wc
}

func getAlice(t *testing.T, front *httptest.Server, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/user/alice/"+path, nil)
	req.Header.Set("Cookie", accessCookie+"=s-alice")
	res, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A small answer of known length reaches the browser in one write, header
// and body together: a header flushed on its own costs every request a
// second write and TCP segment.
func TestSmallAnswerInOneWrite(t *testing.T) {
	front, wc := frontFor(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"connections":1,"kernels":1}`))
	}))
	for i := range 20 {
		res := getAlice(t, front, "api/status")
		body := make([]byte, 64)
		n, _ := res.Body.Read(body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(body[:n]) != `{"connections":1,"kernels":1}` {
			t.Fatalf("request %d: status %d, body %q", i, res.StatusCode, body[:n])
		}
	}
	if got := wc.count(0); got != 20 {
		t.Errorf("20 answers on one connection took %d writes, want 20", got)
	}
}

// A streamed answer (no Content-Length, as Jupyter's streams have) passes
// each piece on as the server sends it: the server sends its second piece
// only after the browser has read the first through the proxy.
func TestStreamPassedOnAsItComes(t *testing.T) {
	release := make(chan struct{})
	front, _ := frontFor(t, twoPieces(release))
	res := getAlice(t, front, "api/stream")
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(rest, "second") {
		t.Fatalf("second line %q, %v", rest, err)
	}
}

// twoPieces streams "first", flushes, and sends "second" once release is
// closed.
func twoPieces(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write([]byte("first\n"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte("second\n"))
	}
}
