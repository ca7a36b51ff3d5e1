package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newHandler("/user/alice/", "secret", time.Now))
	t.Cleanup(srv.Close)

	tests := []struct {
		name, path, auth string
		wantCode         int
		wantBody         string
	}{
		{name: "status with token", path: "/user/alice/api/status", auth: "token secret", wantCode: 200, wantBody: `"kernels":0`},
		{name: "status without token", path: "/user/alice/api/status", wantCode: 403},
		{name: "status with wrong token", path: "/user/alice/api/status", auth: "token nope", wantCode: 403},
		{name: "version needs no token", path: "/user/alice/api", wantCode: 200, wantBody: `"version":"tiny"`},
		{name: "other base url", path: "/user/bob/api/status", auth: "token secret", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body json.RawMessage
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("GET %s = %d %s, want %d containing %q", tt.path, resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newHandler("/user/alice/", "secret", time.Now))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/user/alice/echo",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"token secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("ping 1")); err != nil {
		t.Fatal(err)
	}
	typ, msg, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(msg) != "ping 1" {
		t.Errorf("echo = %v %q %v, want text %q", typ, msg, err, "ping 1")
	}
	if _, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/user/alice/echo", nil); err == nil {
		t.Error("echo without a token was accepted")
	}
}
