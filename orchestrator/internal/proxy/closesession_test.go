package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Logging one session out closes the websockets opened with it, and only
// those: the same user's other session keeps its connection.
func TestCloseSessionEndsOnlyThatSessionsWebsockets(t *testing.T) {
	e := newEnv(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(path, session string) *websocket.Conn { return e.openWS(t, ctx, path, session) }
	gone := open("/user/alice/api/kernels/1/ws", "s-alice")
	stays := open("/user/alice/api/kernels/2/ws", "s-alice-2")

	if n := e.p.CloseSession("sk-alice"); n != 1 {
		t.Fatalf("CloseSession = %d, want 1", n)
	}
	if _, _, err := gone.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Errorf("the logged-out session's websocket: %v, want close 1008", err)
	}
	if err := stays.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := stays.Read(ctx); err != nil || string(msg) != "still here" {
		t.Fatalf("the other session's websocket: %q, %v", msg, err)
	}
	if n := e.p.CloseSession("sk-alice"); n != 0 {
		t.Errorf("second CloseSession = %d, want 0", n)
	}
	if n := e.p.CloseSession(""); n != 0 {
		t.Errorf("CloseSession of no session = %d, want 0", n)
	}
	// CloseUser still finds the connection that is left.
	if n := e.p.CloseUser("alice"); n != 1 {
		t.Errorf("CloseUser after CloseSession = %d, want 1", n)
	}
}
