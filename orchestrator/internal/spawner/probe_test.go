package spawner_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

func TestHTTPProber(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/user/alice/api" && r.Header.Get("Authorization") == "":
			_, _ = w.Write([]byte(`{"version":"6.4.12"}`))
		case r.URL.Path != "/user/alice/api/status":
			http.NotFound(w, r)
		case r.Header.Get("Authorization") != "token good":
			http.Error(w, "forbidden", http.StatusForbidden)
		default:
			_, _ = w.Write([]byte(`{"started":"now"}`))
		}
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	tests := []struct {
		name, addr, user, token string
		wantErr                 string
	}{
		{name: "ready with the right token", addr: addr, user: "alice", token: "good"},
		{name: "wrong token", addr: addr, user: "alice", token: "bad", wantErr: "403"},
		{name: "other user's base url", addr: addr, user: "bob", token: "good", wantErr: "404"},
		{name: "no token: the unauthenticated version endpoint", addr: addr, user: "alice"},
		{name: "no token, other user's base url", addr: addr, user: "bob", wantErr: "404"},
		{name: "nothing listening", addr: "127.0.0.1:1", user: "alice", token: "good", wantErr: "readiness check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := (&spawner.HTTPProber{}).Probe(context.Background(), tt.addr, tt.user, tt.token)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Probe = %v, want ready", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Probe = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}
