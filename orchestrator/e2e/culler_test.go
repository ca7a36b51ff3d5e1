package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idleCuller replays, call for call, what jupyterhub-idle-culler does
// against a hub's API with its service token: the version check, the
// paginated user listings (following next.url), the servers' last_activity,
// DELETE .../server for idle ones and, with cullUsers, DELETE /users/NAME
// for inactive users without a server.
type idleCuller struct {
	t        *testing.T
	api      string // JUPYTERHUB_API_URL
	token    string
	limit    time.Duration
	pageSize int // the real culler takes the hub's page size; a small one gives several pages
	// cullAdmins is --cull-admin-users (default true in the culler).
	cullAdmins bool
	pages      int // pages fetched in the last run
}

func (c *idleCuller) do(method, u string, accept string) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	req.Header.Set("Authorization", "token "+c.token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// pep440 is the public version scheme of PEP 440 (release, pre, post, dev),
// which the culler's packaging.version.parse insists on.
var pep440 = regexp.MustCompile(`^v?(\d+(?:\.\d+)*)(?:[-_.]?(?:a|b|rc|alpha|beta|c)\d*)?(?:[-_.]?post\d*)?(?:[-_.]?dev\d*)?$`)

func versionAtLeast(v string, want []int) (bool, error) {
	m := pep440.FindStringSubmatch(strings.ToLower(strings.TrimSpace(v)))
	if m == nil {
		return false, fmt.Errorf("InvalidVersion: %q", v)
	}
	parts := strings.Split(m[1], ".")
	for i, w := range want {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(parts[i])
		}
		if n != w {
			return n > w, nil
		}
	}
	return true, nil
}

// paginated yields every item of a list endpoint, following next.url.
func (c *idleCuller) paginated(u string) []map[string]any {
	c.t.Helper()
	var all []map[string]any
	for u != "" {
		code, body := c.do(http.MethodGet, u, "application/jupyterhub-pagination+json")
		if code != http.StatusOK {
			c.t.Fatalf("GET %s: %d %s", u, code, body)
		}
		c.pages++
		var page struct {
			Items      []map[string]any `json:"items"`
			Pagination struct {
				Next *struct {
					URL string `json:"url"`
				} `json:"next"`
			} `json:"_pagination"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			c.t.Fatalf("GET %s: not the pagination envelope: %v: %s", u, err, body)
		}
		all = append(all, page.Items...)
		u = ""
		if page.Pagination.Next != nil {
			u = page.Pagination.Next.URL
			if p, err := url.Parse(u); err != nil || !p.IsAbs() {
				c.t.Fatalf("next.url %q is not absolute (the culler fetches it as it is)", u)
			}
		}
	}
	return all
}

func parseDate(v any) (time.Time, bool) {
	s, _ := v.(string)
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// run is one cull_idle pass; it returns the servers and users it culled.
func (c *idleCuller) run(cullUsers bool) (servers, users []string) {
	c.t.Helper()
	c.pages = 0
	code, body := c.do(http.MethodGet, c.api+"/", "")
	var info struct{ Version string }
	if code != http.StatusOK || json.Unmarshal(body, &info) != nil {
		c.t.Fatalf("GET %s/: %d %s", c.api, code, body)
	}
	stateFilter, err := versionAtLeast(info.Version, []int{1, 3, 0})
	if err != nil {
		c.t.Fatalf("the culler cannot read the hub's version: %v", err)
	}
	if !stateFilter {
		c.t.Fatalf("hub version %s is older than 1.3.0: the culler would not filter by state", info.Version)
	}
	now := time.Now()
	list := func(state string) []map[string]any {
		return c.paginated(c.api + "/users?state=" + state + "&limit=" + strconv.Itoa(c.pageSize))
	}
	handleUser := func(u map[string]any) {
		name, _ := u["name"].(string)
		srvs, _ := u["servers"].(map[string]any)
		alive := 0
		for sname, raw := range srvs {
			s, _ := raw.(map[string]any)
			if s["pending"] != nil {
				alive++
				continue
			}
			if ready, _ := s["ready"].(bool); !ready {
				alive++
				continue
			}
			last, ok := parseDate(s["last_activity"])
			if !ok {
				last, ok = parseDate(s["started"])
			}
			if !ok || now.Sub(last) < c.limit {
				alive++
				continue
			}
			if sname != "" {
				c.t.Fatalf("named server %q: swarmhub has none", sname)
			}
			code, body := c.do(http.MethodDelete, c.api+"/users/"+url.PathEscape(name)+"/server", "")
			switch code {
			case http.StatusNoContent:
				servers = append(servers, name)
			case http.StatusAccepted:
				servers = append(servers, name)
				alive++ // slow to stop: the culler keeps the user
			default:
				c.t.Fatalf("DELETE %s's server: %d %s", name, code, body)
			}
		}
		if !cullUsers || alive > 0 {
			return
		}
		last, ok := parseDate(u["last_activity"])
		if !ok {
			last, ok = parseDate(u["created"])
		}
		if admin, _ := u["admin"].(bool); !ok || now.Sub(last) < c.limit || (admin && !c.cullAdmins) {
			return
		}
		if code, body := c.do(http.MethodDelete, c.api+"/users/"+url.PathEscape(name), ""); code != http.StatusNoContent {
			c.t.Fatalf("DELETE user %s: %d %s", name, code, body)
		}
		users = append(users, name)
	}
	if cullUsers {
		for _, u := range list("inactive") {
			handleUser(u)
		}
	}
	for _, u := range list("ready") {
		handleUser(u)
	}
	return servers, users
}

// TestIdleCullerAsService runs the stock idle culler's calls as a service
// whose token holds only the culler's scopes: idle servers stop, a busy one
// is kept, an inactive user without a server is removed with --cull-users,
// and the same token gets 403 outside its scopes.
func TestIdleCullerAsService(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	token := randHex(32)
	h := deployWith(t, "culler", func(h *hub) string {
		if err := os.WriteFile(filepath.Join(h.root, "idle-culler-token"), []byte(token+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return testConfig(h, defaultLifecycle+`services:
  - name: idle-culler
    api_token_file: /srv/swarmhub/idle-culler-token
    scopes: [list:users, read:users:activity, read:servers, delete:servers, admin:users]
`)
	}, "SWARMHUB_NOTEBOOK_IMAGE=swarmhub/tinynotebook:"+imageTag())
	admin := h.admin(t)
	alice, bob, carol := h.student(t, "alice"), h.student(t, "bob"), h.student(t, "carol")
	for _, b := range []*browser{alice, bob, carol} {
		b.startServer(b.user)
	}
	// bob keeps working through the proxy; alice and carol do nothing more.
	keepBusy(t, bob, "/api/status", 2*time.Second)
	culler := &idleCuller{t: t, api: h.base + "/hub/api", token: token, limit: 30 * time.Second, pageSize: 1}
	time.Sleep(40 * time.Second)

	servers, users := culler.run(false)
	if strings.Join(servers, ",") != "alice,carol" && strings.Join(servers, ",") != "carol,alice" {
		t.Errorf("culled servers %v, want alice and carol", servers)
	}
	if len(users) != 0 {
		t.Errorf("culled users %v without --cull-users", users)
	}
	if culler.pages < 3 {
		t.Errorf("the ready listing took %d pages of 1, want one per running server", culler.pages)
	}
	for user, want := range map[string]string{"alice": "stopped", "carol": "stopped", "bob": "running"} {
		if got := admin.state(t, user); got != want {
			t.Errorf("%s: state %s, want %s", user, got, want)
		}
	}

	// --cull-users --cull-admin-users=false: dave and eve never started a server and are inactive
	// (allowed by the config at start, more than 30 s ago); bob is busy.
	_, users = culler.run(true)
	deleted := map[string]bool{}
	for _, u := range users {
		deleted[u] = true
	}
	for _, u := range []string{"alice", "carol", "dave", "eve"} {
		if !deleted[u] {
			t.Errorf("user %s not culled with --cull-users (culled %v)", u, users)
		}
	}
	if deleted["bob"] || deleted["admin"] {
		t.Errorf("culled users %v include an active one", users)
	}
	if admin.state(t, "bob") != "running" {
		t.Error("bob's server stopped")
	}

	// The same token outside the culler's scopes (admin:users allows
	// PATCH /users/NAME, as in JupyterHub).
	for _, call := range []struct{ method, path string }{
		{http.MethodGet, "/events"},
		{http.MethodGet, "/image"},
		{http.MethodPost, "/users/bob/tokens"},
		{http.MethodPost, "/users/bob/server"},
	} {
		if code, body := culler.do(call.method, h.base+"/hub/api"+call.path, ""); code != http.StatusForbidden {
			t.Errorf("service token on %s %s: %d %s, want 403", call.method, call.path, code, body)
		}
	}
}
