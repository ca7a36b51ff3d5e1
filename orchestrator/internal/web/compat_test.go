package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

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
