package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// TestRequestLogsCarryNoSecrets sends tokens in the query string and the
// Authorization header and a password in the login form, and checks that
// the structured request log has request ids but none of the secrets.
func TestRequestLogsCarryNoSecrets(t *testing.T) {
	rdb := testenv.RedisClient(t)
	st := store.New(rdb, "t:")
	ctx := context.Background()
	if err := st.PutUser(ctx, store.User{Name: "alice", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	namer, _ := identity.New(identity.Options{})
	var buf testsupport.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := web.New(web.Options{Version: "test", Logger: log}, web.Deps{
		Store: st, Auth: auth.NewDummy(testPassword, namer, slog.New(slog.NewTextHandler(io.Discard, nil))),
		Policy: auth.NewPolicy(false), Namer: namer, Servers: &fakeServers{st: st}, Proxy: &fakeProxy{},
		Regulator: auth.NewRegulator(st, auth.RegulationOptions{MaxFailures: 3, Window: time.Minute, Ban: time.Minute}),
	})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	plain, _, err := st.CreateToken(ctx, "alice", "x")
	if err != nil {
		t.Fatal(err)
	}
	const queryToken = "query-token-must-not-be-logged"
	for _, path := range []string{"/hub/api/user?token=" + queryToken, "/hub/api/users?token=" + queryToken, "/hub/login?next=%2Fuser%2Falice%3Ftoken%3D" + queryToken} {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Header.Set("Authorization", "token "+plain)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	c := (&env{ts: ts, st: st}).client(t)
	c.login("alice", "password-must-not-be-logged")
	c.login("alice", testPassword)

	out := buf.String()
	for _, secret := range []string{queryToken, plain, "password-must-not-be-logged", testPassword} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains a secret %q:\n%s", secret, out)
		}
	}
	var lines, withID int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "http request" {
			continue
		}
		lines++
		if id, _ := m["request_id"].(string); id != "" {
			withID++
		}
		if p, _ := m["path"].(string); strings.Contains(p, "?") {
			t.Errorf("logged path carries a query: %s", p)
		}
	}
	if lines < 5 || withID != lines {
		t.Fatalf("%d request lines, %d with a request id; want every request logged with one", lines, withID)
	}
}
