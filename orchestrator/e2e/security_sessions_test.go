package e2e_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
)

// logoutClosesWebsocketsOnEveryReplica (a step of TestCluster, which has
// two replicas): a student holds a kernel websocket through replica B and
// logs out through replica A (a load balancer may send them anywhere). The
// websocket on B is closed with 1008, B no longer lets the session in, and
// the student's other session (another browser) keeps its websocket.
func logoutClosesWebsocketsOnEveryReplica(t *testing.T, c *cluster) {
	user := "lo" + randHex(3)
	s := c.student(t, user, 0)
	other := c.student(t, user, 0)
	admin := c.student(t, "admin", 0)
	t.Cleanup(func() {
		_, _, _ = admin.call(ctxT(t, time.Minute), http.MethodDelete, "/hub/api/users/"+user+"/server", nil)
	})
	ctx := ctxT(t, 5*time.Minute)
	if err := s.ensureRunning(ctx); err != nil {
		t.Fatal(err)
	}

	replicaB := "http://" + c.replicas[1]
	// dialB opens a kernel websocket through replica B with b's cookies
	// (issued by replica A), as a browser moved by the load balancer would.
	dialB := func(b *student) *websocket.Conn {
		t.Helper()
		srv := kernelclient.Server{URL: b.base + "/user/" + user, Client: b.c, Header: http.Header{"X-XSRFToken": {b.xsrfFor("/user/" + user + "/api/kernels")}}}
		id, err := srv.StartKernel(ctx)
		if err != nil {
			t.Fatalf("start a kernel: %v", err)
		}
		t.Cleanup(func() { _ = srv.DeleteKernel(context.Background(), id) })
		path := "/user/" + user + "/api/kernels/" + id + "/channels"
		hdr := b.wsHeaderFor(path)
		hdr.Set("Origin", replicaB)
		conn, err := kernelclient.Dial(ctx, "ws://"+c.replicas[1]+path, hdr)
		if err != nil {
			t.Fatalf("kernel websocket through replica B: %v", err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		out, err := kernelclient.Execute(ctx, conn, kernelclient.Request{Code: "print(6*7)", Username: user})
		if err != nil || !strings.Contains(out, "42") {
			t.Fatalf("code over replica B's websocket: %q, %v", out, err)
		}
		return conn
	}
	closing := dialB(s)
	staying := dialB(other)

	// Log out through replica A with the confirm page's form.
	_, page := s.get("/hub/logout")
	m := hiddenXSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the logout page has no form:\n%s", page)
	}
	resp, err := s.c.PostForm(s.base+"/hub/logout", url.Values{"_xsrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout through replica A: %d", resp.StatusCode)
	}

	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, _, err := closing.Read(rctx)
		if err == nil {
			continue // kernel messages still in flight
		}
		// A websocket left open ends here with the deadline (status -1).
		if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
			t.Fatalf("the logged-out session's websocket on replica B ended with %v (close status %d), want 1008", err, got)
		}
		break
	}

	// Replica B refuses the logged-out session.
	u, _ := url.Parse(s.base + "/hub/api/user") // the hub cookie is scoped to /hub/
	req, _ := http.NewRequest(http.MethodGet, replicaB+"/hub/api/user", nil)
	for _, ck := range s.c.Jar.Cookies(u) {
		req.AddCookie(ck)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the logged-out session on replica B: %d, want 403", resp.StatusCode)
	}

	// The other session's websocket still runs code.
	out, err := kernelclient.Execute(ctx, staying, kernelclient.Request{Code: "print(6*7)", Username: user})
	if err != nil || !strings.Contains(out, "42") {
		t.Fatalf("the other session's websocket after the logout: %q, %v", out, err)
	}
}
