package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// Issue 12: every /hub/api route through the real HTTP stack, for callers
// with different scopes. "alice" is the student and the :name of every
// route.

const cullerToken = "culler-service-token-for-tests"

// cullerScopes are what jupyterhub-idle-culler's documentation asks for.
var cullerScopes = []string{"list:users", "read:users:activity", "read:servers", "delete:servers", "admin:users"}

const (
	byAdmin   = 1 << iota // admin's session
	byStudent             // alice's session
	byToken               // alice's token limited to read:users:name!user=alice
	byCuller              // the idle-culler service
	byAll     = byAdmin | byStudent | byToken | byCuller
)

// scopeRoutes lists every API route with a harmless request and who may
// call it; the destructive DELETE /users/:name comes last.
var scopeRoutes = []struct {
	method, route, path, body string
	allowed                   int
}{
	{"GET", "/hub/api", "/hub/api", "", byAll},
	{"GET", "/hub/api/", "/hub/api/", "", byAll},
	{"GET", "/hub/api/info", "/hub/api/info", "", byAll},
	{"GET", "/hub/api/user", "/hub/api/user", "", byAll},
	{"GET", "/hub/api/users", "/hub/api/users", "", byAdmin | byCuller},
	{"POST", "/hub/api/users", "/hub/api/users", `{"usernames":["zed"]}`, byAdmin | byCuller},
	{"GET", "/hub/api/users/:name", "/hub/api/users/alice", "", byAll},
	// JupyterHub's PATCH needs admin:users, which the culler's scopes include.
	{"PATCH", "/hub/api/users/:name", "/hub/api/users/alice", `{}`, byAdmin | byCuller},
	{"POST", "/hub/api/users/:name", "/hub/api/users/alice", `{}`, byAdmin | byCuller},
	{"POST", "/hub/api/users/:name/server", "/hub/api/users/alice/server", "", byAdmin | byStudent},
	{"GET", "/hub/api/users/:name/server/progress", "/hub/api/users/alice/server/progress", "", byAdmin | byStudent | byCuller},
	{"DELETE", "/hub/api/users/:name/server", "/hub/api/users/alice/server", "", byAdmin | byStudent | byCuller},
	{"GET", "/hub/api/users/:name/tokens", "/hub/api/users/alice/tokens", "", byAdmin | byStudent},
	{"POST", "/hub/api/users/:name/tokens", "/hub/api/users/alice/tokens", `{"note":"t"}`, byAdmin | byStudent},
	{"DELETE", "/hub/api/users/:name/tokens/:id", "/hub/api/users/alice/tokens/0000", "", byAdmin | byStudent},
	{"POST", "/hub/api/users/:name/activity", "/hub/api/users/alice/activity", `{"last_activity":"2025-01-01T00:00:00Z"}`, byAdmin | byStudent | byCuller},
	{"GET", "/hub/api/users/:name/tokens/:id", "/hub/api/users/alice/tokens/0000", "", byAdmin | byStudent},
	{"POST", "/hub/api/groups/:name", "/hub/api/groups/staff", `{"users":["alice"]}`, byAdmin},
	{"GET", "/hub/api/groups", "/hub/api/groups", "", byAdmin},
	{"GET", "/hub/api/groups/:name", "/hub/api/groups/staff", "", byAdmin},
	{"POST", "/hub/api/groups/:name/users", "/hub/api/groups/staff/users", `{"users":["alice"]}`, byAdmin},
	{"DELETE", "/hub/api/groups/:name/users", "/hub/api/groups/staff/users", `{"users":["alice"]}`, byAdmin},
	{"DELETE", "/hub/api/groups/:name", "/hub/api/groups/staff", "", byAdmin},
	{"GET", "/hub/api/users/:name/workspace.tar.gz", "/hub/api/users/alice/workspace.tar.gz", "", byAdmin | byStudent},
	{"GET", "/hub/api/events", "/hub/api/events", "", byAdmin},
	{"GET", "/hub/api/image", "/hub/api/image", "", byAdmin},
	{"PUT", "/hub/api/image", "/hub/api/image", `{}`, byAdmin},
	{"POST", "/hub/api/image/restart-outdated", "/hub/api/image/restart-outdated", "", byAdmin},
	{"GET", "/hub/api/gitpuller-link", "/hub/api/gitpuller-link", "", byAdmin},
	{"GET", "/hub/api/capacity", "/hub/api/capacity", "", byAdmin},
	{"GET", "/hub/api/line", "/hub/api/line", "", byAdmin},
	{"PUT", "/hub/api/line", "/hub/api/line", `{"starts_per_node": null}`, byAdmin},
	{"POST", "/hub/api/cull", "/hub/api/cull", "", byAdmin},
	{"POST", "/hub/api/reconcile", "/hub/api/reconcile", "", byAdmin},
	{"GET", "/hub/api/archives", "/hub/api/archives", "", byAdmin},
	{"POST", "/hub/api/archives", "/hub/api/archives", "", byAdmin},
	{"GET", "/hub/api/archives/:run/:file", "/hub/api/archives/2025-01-01T000000Z/alice.tar.gz", "", byAdmin},
	{"POST", "/hub/api/archives/:run/:user/restore", "/hub/api/archives/2025-01-01T000000Z/alice/restore", "", byAdmin},
	{"GET", "/hub/api/announcement", "/hub/api/announcement", "", byAll},
	{"PUT", "/hub/api/announcement", "/hub/api/announcement", `{"message":""}`, byAdmin},
	{"DELETE", "/hub/api/announcement", "/hub/api/announcement", "", byAdmin},
	{"GET", "/hub/api/prestarts", "/hub/api/prestarts", "", byAdmin},
	{"GET", "/hub/api/prestarts/:name", "/hub/api/prestarts/x", "", byAdmin},
	{"PUT", "/hub/api/prestarts/:name", "/hub/api/prestarts/x", `{"cron":"x"}`, byAdmin},
	{"DELETE", "/hub/api/prestarts/:name", "/hub/api/prestarts/x", "", byAdmin},
	{"POST", "/hub/api/groups/:name/servers", "/hub/api/groups/nope/servers", "", byAdmin},
	{"DELETE", "/hub/api/groups/:name/servers", "/hub/api/groups/nope/servers", "", byAdmin},
	{"DELETE", "/hub/api/users/:name", "/hub/api/users/alice", "", byAdmin | byCuller},
}

func newServiceEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, func(o *web.Options, _ *web.Deps) {
		o.Services = []web.Service{{Name: "idle-culler", Token: cullerToken, Scopes: cullerScopes}}
	})
}

// status sends one request and returns once the headers are in (the
// progress route streams).
func status(t *testing.T, e *env, method, path, body string, hdr map[string]string, cookies *client) int {
	t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := http.DefaultClient
	if cookies != nil {
		c = cookies.c
		req.Header.Set("X-XSRFToken", cookies.xsrf)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestEveryAPIRouteChecksScopes(t *testing.T) {
	// Every API route the server registers is in the table.
	e := newServiceEnv(t)
	listed := map[string]bool{}
	for _, r := range scopeRoutes {
		listed[r.method+" "+r.route] = true
	}
	for _, r := range e.srv.Echo().Routes() {
		if strings.HasPrefix(r.Path, "/hub/api") && !strings.HasPrefix(r.Path, "/hub/api/oauth2/") &&
			slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, r.Method) && !listed[r.Method+" "+r.Path] {
			t.Errorf("route %s %s is missing from scopeRoutes", r.Method, r.Path)
		}
	}

	for _, caller := range []struct {
		name string
		bit  int
		as   func(t *testing.T, e *env) (map[string]string, *client)
	}{
		{"admin session", byAdmin, func(t *testing.T, e *env) (map[string]string, *client) {
			c := e.client(t)
			c.login("admin", testPassword)
			return nil, c
		}},
		{"student session", byStudent, func(t *testing.T, e *env) (map[string]string, *client) {
			c := e.client(t)
			c.login("alice", testPassword)
			return nil, c
		}},
		{"student token with read:users:name", byToken, func(t *testing.T, e *env) (map[string]string, *client) {
			c := e.client(t)
			c.login("alice", testPassword)
			resp, body := c.do("POST", "/hub/api/users/alice/tokens", `{"note":"narrow","scopes":["read:users:name!user=alice"]}`,
				map[string]string{"X-XSRFToken": c.xsrf, "Content-Type": "application/json"})
			var tok createdToken
			if err := json.Unmarshal([]byte(body), &tok); resp.StatusCode != http.StatusCreated || err != nil {
				t.Fatalf("create a narrow token: %d %s", resp.StatusCode, body)
			}
			return map[string]string{"Authorization": "token " + tok.Token}, nil
		}},
		{"idle-culler service", byCuller, func(t *testing.T, e *env) (map[string]string, *client) {
			return map[string]string{"Authorization": "token " + cullerToken}, nil
		}},
	} {
		t.Run(caller.name, func(t *testing.T) {
			e := newServiceEnv(t)
			hdr, c := caller.as(t, e)
			for _, r := range scopeRoutes {
				got := status(t, e, r.method, r.path, r.body, hdr, c)
				allowed := r.allowed&caller.bit != 0
				if allowed && (got == http.StatusForbidden || got == http.StatusUnauthorized) {
					t.Errorf("%s %s: %d, want it allowed", r.method, r.path, got)
				}
				if !allowed && got != http.StatusForbidden {
					t.Errorf("%s %s: %d, want 403", r.method, r.path, got)
				}
			}
		})
	}
}

func TestServiceIsNoUser(t *testing.T) {
	e := newServiceEnv(t)
	st, body := e.withToken(t, "GET", "/hub/api/user", cullerToken, "")
	var me struct {
		Kind, Name string
		Scopes     []string
	}
	if err := json.Unmarshal([]byte(body), &me); st != http.StatusOK || err != nil {
		t.Fatalf("GET /hub/api/user as the service: %d %s", st, body)
	}
	if me.Kind != "service" || me.Name != "idle-culler" || !slices.Contains(me.Scopes, "delete:servers") || slices.Contains(me.Scopes, "admin:servers") {
		t.Errorf("service model = %+v", me)
	}
	if st, body := e.withToken(t, "GET", "/hub/api/user", "not-"+cullerToken, ""); st != http.StatusUnauthorized && st != http.StatusForbidden {
		t.Errorf("a wrong service token: %d %s", st, body)
	}
	if st, _ := e.withToken(t, "GET", "/hub/home", cullerToken, ""); st != http.StatusForbidden {
		t.Errorf("a service on /hub/home: %d, want 403", st)
	}
	// What a service does is recorded under its name.
	if st, body := e.withToken(t, "PATCH", "/hub/api/users/alice", cullerToken, `{"admin": false}`); st != http.StatusOK {
		t.Fatalf("PATCH as the service: %d %s", st, body)
	}
	evs, err := e.st.Events(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs, func(ev store.Event) bool { return ev.Kind == "user-changed" && ev.Actor == "service idle-culler" }) {
		t.Errorf("events = %+v, want a user-changed by service idle-culler", evs)
	}
}

func TestTokenScopesMustBeHeldByTheOwner(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	for _, tt := range []struct {
		scopes string
		status int
	}{
		{`["admin:users"]`, http.StatusForbidden},
		{`["read:users!user=bob"]`, http.StatusForbidden},
		{`["read:users"]`, http.StatusForbidden},
		{`["no-such-scope"]`, http.StatusBadRequest},
		{`["read:users!user=alice", "access:servers!server=alice/"]`, http.StatusCreated},
		{`["inherit"]`, http.StatusCreated},
	} {
		resp, body := alice.do("POST", "/hub/api/users/alice/tokens", `{"scopes":`+tt.scopes+`}`,
			map[string]string{"X-XSRFToken": alice.xsrf, "Content-Type": "application/json"})
		if resp.StatusCode != tt.status {
			t.Errorf("token with %s: %d %s, want %d", tt.scopes, resp.StatusCode, body, tt.status)
		}
	}
	// A token without scopes has all of its owner's.
	tok := alice.createToken("alice", "all")
	if st, _ := e.withToken(t, "GET", "/hub/api/users/alice/tokens", tok.Token, ""); st != http.StatusOK {
		t.Errorf("an unscoped token lists its owner's tokens: %d", st)
	}
}

// A token reaches a server through the proxy only with access:servers: an
// OAuth token of jupyterhub-singleuser does, a token made to read users
// does not, and an admin's token limited to its own server opens no other.
func TestProxyNeedsAccessServers(t *testing.T) {
	h := newRealHub(t, hubConfig{adminAccess: true})
	ctx := context.Background()
	token := func(user string, sc ...string) string {
		plain, _, err := h.st.CreateScopedToken(ctx, user, "t", sc, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return plain
	}
	full, _, err := h.st.CreateToken(ctx, "alice", "all")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, token, path string
		through           bool
	}{
		{"unscoped token", full, "/user/alice/api/status", true},
		{"access:servers token", token("alice", "access:servers!server=alice/"), "/user/alice/api/status", true},
		{"read-only token", token("alice", "read:users:name!user=alice"), "/user/alice/api/status", false},
		{"admin token for own server", token("admin", "access:servers!user=admin"), "/user/alice/api/status", false},
		{"admin token for every server", token("admin", "access:servers"), "/user/alice/api/status", true},
	} {
		req, _ := http.NewRequest("GET", h.ts.URL+tt.path, nil)
		req.Header.Set("Authorization", "token "+tt.token)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != tt.through {
			t.Errorf("%s: %d, want through=%v", tt.name, resp.StatusCode, tt.through)
		}
	}
}
