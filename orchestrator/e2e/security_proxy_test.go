package e2e_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
)

// TestProxyRefusesCrossSiteWebsockets is issue 13's first attack through
// the real stack: a page on another site, or on a sibling host of the same
// site, opens a student's kernel websocket (or POSTs to their server) with
// the student's cookie. The proxy injects the server token, which turns
// Jupyter's own Origin check off, so the proxy must refuse; from the hub's
// own origin the same websocket runs 1+1. An admin with admin_access, whose
// cookie opens every server, is refused the same way.
func TestProxyRefusesCrossSiteWebsockets(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "xsite", "")
	alice := h.student(t, "alice")
	admin := h.admin(t)
	alice.startServer("alice")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := kernelclient.Server{URL: alice.base + "/user/alice", Client: alice.c,
		Header: http.Header{"X-XSRFToken": {alice.xsrfFor("/user/alice/api/kernels")}}}
	id, err := srv.StartKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.DeleteKernel(context.Background(), id)
	path := "/user/alice/api/kernels/" + id + "/channels"

	for _, tc := range []struct {
		name   string
		who    *browser
		header map[string]string // set on the browser's own handshake; "" deletes
	}{
		{"foreign Origin", alice, map[string]string{"Origin": "http://evil.example"}},
		{"sibling host marked same-site", alice, map[string]string{"Origin": "", "Sec-Fetch-Site": "same-site"}},
		{"cross-site", alice, map[string]string{"Origin": "", "Sec-Fetch-Site": "cross-site"}},
		{"admin from a foreign Origin", admin, map[string]string{"Origin": "http://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := tc.who.wsHeaderFor(path)
			for k, v := range tc.header {
				if v == "" {
					hdr.Del(k)
				} else {
					hdr.Set(k, v)
				}
			}
			c, resp, err := websocket.Dial(ctx, srv.ChannelsURL(id), &websocket.DialOptions{HTTPHeader: hdr})
			if err == nil {
				c.CloseNow()
				t.Fatal("the kernel websocket opened")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("handshake: %v (response %v), want 403", err, resp)
			}
		})
	}

	t.Run("POST from a foreign Origin", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, alice.base+"/user/alice/api/kernels", strings.NewReader(`{"name":"python3"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-XSRFToken", alice.xsrfFor("/user/alice/api/kernels"))
		req.Header.Set("Origin", "http://evil.example")
		resp, err := alice.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Origin") {
			t.Fatalf("POST /user/alice/api/kernels from evil.example: %d %s, want 403 naming the Origin", resp.StatusCode, body)
		}
	})

	t.Run("the hub's own origin runs 1+1", func(t *testing.T) {
		conn, err := kernelclient.Dial(ctx, srv.ChannelsURL(id), alice.wsHeaderFor(path))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		out, err := kernelclient.Execute(ctx, conn, kernelclient.Request{Code: "1+1", Username: alice.user})
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "2" {
			t.Fatalf("1+1 gave %q", out)
		}
	})
}
