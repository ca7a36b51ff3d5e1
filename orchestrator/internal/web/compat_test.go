package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// Issue 12: /hub/api answers as JupyterHub 5 does, so its clients work.

func TestAPIVersionIsJupyterHubsAndBuildIsSeparate(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/hub/api", "/hub/api/", "/hub/api/info"} {
		resp, body := e.client(t).do("GET", p, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
		var got struct {
			Version  string `json:"version"`
			Swarmhub struct {
				Version string `json:"version"`
			} `json:"swarmhub"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s: %v: %s", p, err, body)
		}
		if got.Version != web.JupyterHubAPIVersion || got.Swarmhub.Version != "test" {
			t.Fatalf("%s: want version %q and swarmhub.version %q: %s", p, web.JupyterHubAPIVersion, "test", body)
		}
	}
}

func TestPaginationNextKeepsTheQueryAndIsAbsolute(t *testing.T) {
	e := newEnv(t)
	admin := e.client(t)
	admin.login("admin", testPassword)
	resp, body := admin.do("GET", "/hub/api/users?state=inactive&name_filter=A&limit=1&offset=0", "",
		map[string]string{"Accept": "application/jupyterhub-pagination+json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var got struct {
		Items      []map[string]any `json:"items"`
		Pagination map[string]any   `json:"_pagination"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	// alice and admin match "a"; bob does not.
	next, _ := got.Pagination["next"].(map[string]any)
	if len(got.Items) != 1 || got.Pagination["total"] != 2.0 || got.Pagination["offset"] != 0.0 || got.Pagination["limit"] != 1.0 || next == nil {
		t.Fatalf("envelope: %s", body)
	}
	u, err := url.Parse(next["url"].(string))
	if err != nil || u.Scheme+"://"+u.Host != e.ts.URL || u.Path != "/hub/api/users" {
		t.Fatalf("next.url %v must be absolute on %s", next["url"], e.ts.URL)
	}
	q := u.Query()
	if q.Get("state") != "inactive" || q.Get("name_filter") != "A" || q.Get("offset") != "1" || q.Get("limit") != "1" || next["offset"] != 1.0 {
		t.Fatalf("next %v must keep state and name_filter and move offset", next)
	}
}

func TestActivityReportFeedsTheCullersRecord(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	tok := alice.createToken("alice", "singleuser")
	ctx := context.Background()
	before, err := e.st.Activity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	server := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	body := `{"last_activity":"` + server.Add(-time.Minute).Format(time.RFC3339) + `","servers":{"":{"last_activity":"` + server.Format(time.RFC3339Nano) + `"}}}`
	if code, b := e.withToken(t, "POST", "/hub/api/users/alice/activity", tok.Token, body); code != http.StatusOK {
		t.Fatalf("activity: %d %s", code, b)
	}
	after, err := e.st.Activity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !after["alice"].Equal(server) || after["alice"].Equal(before["alice"]) {
		t.Fatalf("alice's activity %v, want the server's %v (the later one)", after["alice"], server)
	}
	// An older report does not move it back (the culler takes the latest).
	old := `{"last_activity":"2020-01-01T00:00:00"}`
	if code, b := e.withToken(t, "POST", "/hub/api/users/alice/activity", tok.Token, old); code != http.StatusOK {
		t.Fatalf("old activity: %d %s", code, b)
	}
	if again, _ := e.st.Activity(ctx); !again["alice"].Equal(server) {
		t.Fatalf("an older report moved activity back to %v", again["alice"])
	}

	admin := e.client(t)
	admin.login("admin", testPassword)
	for _, c := range []struct {
		who    *client
		user   string
		body   string
		status int
	}{
		{alice, "alice", `{"last_activity":"yesterday"}`, http.StatusBadRequest},
		{alice, "alice", `{"servers":{"":{"last_activity":"2026-13-40T00:00:00Z"}}}`, http.StatusBadRequest},
		{alice, "alice", `{}`, http.StatusBadRequest},
		{alice, "alice", `[1]`, http.StatusBadRequest},
		{alice, "alice", `{"servers":{"gpu":{"last_activity":"2026-01-01T00:00:00Z"}}}`, http.StatusBadRequest},
		{alice, "bob", `{"last_activity":"2026-01-01T00:00:00Z"}`, http.StatusForbidden},
		{admin, "bob", `{"last_activity":"2026-01-01T00:00:00Z"}`, http.StatusOK},
		{admin, "nobody", `{"last_activity":"2026-01-01T00:00:00Z"}`, http.StatusNotFound},
	} {
		resp, b := c.who.do("POST", "/hub/api/users/"+c.user+"/activity", c.body,
			map[string]string{"X-XSRFToken": c.who.xsrf, "Content-Type": "application/json"})
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: want %d, got %d %s", c.user, c.body, c.status, resp.StatusCode, b)
		}
	}
	if code, _ := e.withToken(t, "POST", "/hub/api/users/alice/activity", "", `{"last_activity":"2026-01-01T00:00:00Z"}`); code == http.StatusOK {
		t.Fatal("activity without a token was accepted")
	}
}

func TestAPIStatusesAndModelsAsJupyterHub(t *testing.T) {
	e := newEnv(t)
	resp, body := e.client(t).do("GET", "/hub/api/users/alice", "", map[string]string{"Authorization": "token nope"})
	var msg map[string]any
	if resp.StatusCode != http.StatusForbidden || json.Unmarshal([]byte(body), &msg) != nil || msg["status"] != 403.0 || msg["message"] == "" {
		t.Fatalf("bad token: want 403 {status, message}, got %d %s", resp.StatusCode, body)
	}
	admin := e.client(t)
	admin.login("admin", testPassword)
	resp, body = admin.do("POST", "/hub/api/users/carol", `{}`, map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"})
	var u map[string]any
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(body), &u) != nil || u["name"] != "carol" || u["kind"] != "user" {
		t.Fatalf("POST /users/carol: want 201 and the user model, got %d %s", resp.StatusCode, body)
	}
	if resp, body = admin.do("POST", "/hub/api/users/carol", `{}`, map[string]string{"X-XSRFToken": admin.xsrf}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("POST an existing user: want 409, got %d %s", resp.StatusCode, body)
	}
}

func TestStartAcceptsAnyUserOptionsObject(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	hdr := map[string]string{"X-XSRFToken": alice.xsrf, "Content-Type": "application/json"}
	for body, want := range map[string]int{
		`[1, 2]`:                       http.StatusBadRequest,
		`"gpu"`:                        http.StatusBadRequest,
		`null`:                         http.StatusBadRequest,
		`{"image": 3}`:                 http.StatusBadRequest,
		`{"profile": "gpu", "cpu": 2}`: http.StatusAccepted,
	} {
		resp, b := alice.do("POST", "/hub/api/users/alice/server", body, hdr)
		if resp.StatusCode != want && !(want == http.StatusAccepted && resp.StatusCode == http.StatusCreated) {
			t.Errorf("start with %s: want %d, got %d %s", body, want, resp.StatusCode, b)
		}
	}
}

func TestMeHasScopesAndOneTokenByID(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	resp, body := alice.do("GET", "/hub/api/user", "", nil)
	var me struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &me) != nil || me.Name != "alice" {
		t.Fatalf("GET /user: %d %s", resp.StatusCode, body)
	}
	has := map[string]bool{}
	for _, s := range me.Scopes {
		has[s] = true
	}
	if !has["access:servers!user=alice"] || !has["users:activity!user=alice"] || has["admin:users"] {
		t.Fatalf("alice's scopes: %v", me.Scopes)
	}

	tok := alice.createToken("alice", "one")
	resp, body = alice.do("GET", "/hub/api/users/alice/tokens/"+tok.ID, "", nil)
	var m map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil || m["id"] != tok.ID || m["note"] != "one" || m["kind"] != "api_token" {
		t.Fatalf("GET token %s: %d %s", tok.ID, resp.StatusCode, body)
	}
	if _, ok := m["token"]; ok {
		t.Fatalf("GET token shows the secret: %s", body)
	}
	if resp, body = alice.do("GET", "/hub/api/users/alice/tokens/nope", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("absent token: want 404, got %d %s", resp.StatusCode, body)
	}
}

func TestGroupsAPI(t *testing.T) {
	e := newEnv(t)
	admin := e.client(t)
	admin.login("admin", testPassword)
	call := func(method, path, body string, want int) map[string]any {
		t.Helper()
		resp, b := admin.do(method, path, body, map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"})
		if resp.StatusCode != want {
			t.Fatalf("%s %s %s: want %d, got %d %s", method, path, body, want, resp.StatusCode, b)
		}
		var m map[string]any
		_ = json.Unmarshal([]byte(b), &m)
		return m
	}
	g := call("POST", "/hub/api/groups/ta", `{"users":["alice"]}`, http.StatusCreated)
	if g["kind"] != "group" || g["name"] != "ta" || len(g["users"].([]any)) != 1 || g["properties"] == nil || g["roles"] == nil {
		t.Fatalf("created group model: %v", g)
	}
	call("POST", "/hub/api/groups/ta", ``, http.StatusConflict)
	call("POST", "/hub/api/groups/other", `{"users":["nobody"]}`, http.StatusBadRequest)
	g = call("POST", "/hub/api/groups/ta/users", `{"users":["bob"]}`, http.StatusOK)
	if users := g["users"].([]any); len(users) != 2 || users[0] != "alice" || users[1] != "bob" {
		t.Fatalf("after adding bob: %v", g)
	}
	if u := call("GET", "/hub/api/users/bob", "", http.StatusOK); len(u["groups"].([]any)) != 1 || u["groups"].([]any)[0] != "ta" {
		t.Fatalf("bob's groups: %v", u["groups"])
	}
	call("POST", "/hub/api/groups/empty", "", http.StatusCreated)
	resp, body := admin.do("GET", "/hub/api/groups?limit=1", "", map[string]string{"Accept": "application/jupyterhub-pagination+json"})
	var page struct {
		Items      []map[string]any `json:"items"`
		Pagination struct {
			Total int `json:"total"`
		} `json:"_pagination"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil || len(page.Items) != 1 || page.Items[0]["name"] != "empty" || page.Pagination.Total != 2 {
		t.Fatalf("list groups: %d %s", resp.StatusCode, body)
	}
	g = call("DELETE", "/hub/api/groups/ta/users", `{"users":["alice"]}`, http.StatusOK)
	if users := g["users"].([]any); len(users) != 1 || users[0] != "bob" {
		t.Fatalf("after removing alice: %v", g)
	}
	call("DELETE", "/hub/api/groups/ta", "", http.StatusNoContent)
	call("GET", "/hub/api/groups/ta", "", http.StatusNotFound)
	call("POST", "/hub/api/groups/ta/users", `{"users":["bob"]}`, http.StatusNotFound)
	if u := call("GET", "/hub/api/users/bob", "", http.StatusOK); len(u["groups"].([]any)) != 0 {
		t.Fatalf("bob's groups after the delete: %v", u["groups"])
	}

	g = call("POST", "/hub/api/groups/keep", `{"users":["bob"]}`, http.StatusCreated)
	call("DELETE", "/hub/api/users/bob", "", http.StatusNoContent)
	if g = call("GET", "/hub/api/groups/keep", "", http.StatusOK); len(g["users"].([]any)) != 0 {
		t.Fatalf("a deleted user stays in a group: %v", g)
	}

	alice := e.client(t)
	alice.login("alice", testPassword)
	if resp, _ := alice.do("GET", "/hub/api/groups", "", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a student lists groups: %d", resp.StatusCode)
	}
}

// The course's instructors are a group: its members start as instructors
// (nbgrader's formgrader) without being admins, and leave it through the
// groups API like any group.
func TestInstructorsGroup(t *testing.T) {
	e := newEnv(t)
	admin := e.client(t)
	admin.login("admin", testPassword)
	hdr := map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"}
	if resp, body := admin.do("POST", "/hub/api/groups/instructors", `{"users":["bob"]}`, hdr); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create the instructors group: %d %s", resp.StatusCode, body)
	}
	for _, u := range []string{"alice", "bob"} {
		if resp, body := admin.do("POST", "/hub/api/users/"+u+"/server", "", hdr); resp.StatusCode >= 300 {
			t.Fatalf("start %s: %d %s", u, resp.StatusCode, body)
		}
	}
	if got := strings.Join(e.servers.instructors, ","); got != "bob" {
		t.Errorf("started as instructors: %q, want only bob", got)
	}
	_, page := admin.do("GET", "/hub/admin", "", map[string]string{"Accept": "text/html"})
	if !strings.Contains(page, `<span class="badge badge-group" title="group instructors">instructors</span>`) {
		t.Error("the dashboard does not show bob's group")
	}
}
