package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

type aliceOnly struct{}

func (aliceOnly) Identify(*http.Request, string) (Identity, bool) {
	return Identity{User: "alice"}, true
}

type fixedTarget string

func (f fixedTarget) Target(context.Context, string) (string, string, error) {
	return string(f), "tok", nil
}
func (fixedTarget) Forget(string) {}

// The server side of a proxied websocket acknowledges at once (see
// quickack.go); plain HTTP connections are left as they are.
func TestQuickAckOnlyForUpgrades(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			_, _ = io.WriteString(w, "{}")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
		_ = brw.Flush()
		_, _ = io.Copy(io.Discard, c)
	}))
	defer up.Close()

	var mu sync.Mutex
	var dialed []*quickAckConn
	tr := NewTransport()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if q, ok := c.(*quickAckConn); ok {
			mu.Lock()
			dialed = append(dialed, q)
			mu.Unlock()
		}
		return c, err
	}
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := New(aliceOnly{}, fixedTarget(up.Listener.Addr().String()), nil, nil, Options{Transport: tr, Logger: slog.New(slog.DiscardHandler), Namer: namer})
	front := httptest.NewServer(p)
	defer front.Close()

	resp, err := http.Get(front.URL + "/user/alice/api/status")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	mu.Lock()
	if len(dialed) != 1 || dialed[0].on.Load() {
		t.Fatalf("after a plain GET: %d upstream connections, quick ACK on: %v", len(dialed), len(dialed) == 1 && dialed[0].on.Load())
	}
	mu.Unlock()

	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /user/alice/api/kernels/k/channels HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, "101") {
		t.Fatalf("upgrade through the proxy: %q %v", status, err)
	}
	mu.Lock()
	defer mu.Unlock()
	var on int
	for _, q := range dialed {
		if q.on.Load() {
			on++
		}
	}
	if on != 1 {
		t.Fatalf("want exactly the websocket's upstream connection in quick-ACK mode, got %d of %d", on, len(dialed))
	}
}
