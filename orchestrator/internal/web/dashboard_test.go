package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

const (
	imgOld = "registry.example/course/notebook:2024"
	imgNew = "registry.example/course/notebook:2025"
)

// startCall is one Start the recording spawner saw.
type startCall struct {
	user  string
	image string
}

// recordingServers writes the records a real spawner would and remembers
// each call, so tests can check which image a start asked for.
type recordingServers struct {
	mu      sync.Mutex
	st      *store.Store
	started []startCall
	stopped []string
}

func (f *recordingServers) Start(ctx context.Context, user string, so spawner.StartOptions) (store.Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, startCall{user, so.Image})
	srv := store.Server{User: user, State: store.StateStarting, Image: so.Image}
	return srv, f.st.PutServer(ctx, srv)
}

func (f *recordingServers) Stop(ctx context.Context, user, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, user)
	return f.st.PutServer(ctx, store.Server{User: user, State: store.StateStopped})
}

func (f *recordingServers) calls() ([]startCall, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]startCall(nil), f.started...), append([]string(nil), f.stopped...)
}

type fakeArchives struct{ runs []web.ArchiveRun }

func (f fakeArchives) Runs(context.Context) ([]web.ArchiveRun, error) { return f.runs, nil }

type loginCounter struct {
	mu  sync.Mutex
	got []string
}

func (l *loginCounter) Login(outcome string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, outcome)
}

type dashEnv struct {
	*env
	servers *recordingServers
	logins  *loginCounter
	now     time.Time
}

// newDashEnv is newEnv with the dashboard's options: allowed images, an
// archive list, a login counter and a fixed clock.
func newDashEnv(t *testing.T) *dashEnv { return newDashEnvTB(t) }

func newDashEnvTB(t testing.TB) *dashEnv {
	t.Helper()
	rdb := testenv.RedisClient(t)
	st := store.New(rdb, "t:")
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, u := range []store.User{{Name: "alice", Allowed: true}, {Name: "bob", Allowed: true}, {Name: "admin", Admin: true, Allowed: true}} {
		if err := st.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	rs := &recordingServers{st: st}
	lc := &loginCounter{}
	fp := &fakeProxy{}
	srv := web.New(web.Options{Version: "test", Logger: log, PublicURL: "https://hub.example.org",
		AllowedImages: []string{imgOld, imgNew}, AdminAccess: true, Clock: func() time.Time { return now }},
		web.Deps{
			Store:     st,
			Auth:      auth.NewDummy(testPassword, namer, log),
			Policy:    auth.NewPolicy(false),
			Regulator: auth.NewRegulator(st, auth.RegulationOptions{MaxFailures: 3, Window: time.Minute, Ban: time.Minute}),
			Namer:     namer,
			Servers:   rs,
			Proxy:     fp,
			Logins:    lc,
			Archives: fakeArchives{runs: []web.ArchiveRun{{Run: "2025-02-28T020000Z", Complete: true, Users: 2,
				Files: []web.ArchiveFile{{User: "alice", Size: 2048}, {User: "bob", Size: 4096}}}}},
		})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &dashEnv{env: &env{ts: ts, st: st, proxy: fp, srv: srv}, servers: rs, logins: lc, now: now}
}

var routeParam = regexp.MustCompile(`:[a-z]+`)

// openToEveryone lists the API routes everyone logged in may call (about
// themselves): every other route must refuse a student acting on bob.
var openToEveryone = map[string]bool{
	"GET /hub/api": true, "GET /hub/api/": true, "GET /hub/api/info": true, "GET /hub/api/user": true,
	"GET /hub/api/announcement": true,
}

// TestEveryAdminRouteRefusesStudents walks echo's route table, so a route
// added later is covered without touching this test.
func TestEveryAdminRouteRefusesStudents(t *testing.T) {
	e := newDashEnv(t)
	alice := e.client(t)
	if r := alice.login("alice", testPassword); r.StatusCode != http.StatusFound {
		t.Fatalf("alice login: %d", r.StatusCode)
	}
	plain, _, err := e.st.CreateToken(context.Background(), "alice", "test")
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{":name": "bob", ":user": "bob", ":run": "2025-02-28T020000Z", ":file": "bob.tar.gz", ":id": "x", ":group": "ta"}
	var tested []string
	for _, r := range e.srv.Echo().Routes() {
		key := r.Method + " " + r.Path
		admin := strings.HasPrefix(r.Path, "/hub/admin")
		if !(admin || strings.HasPrefix(r.Path, "/hub/api")) || openToEveryone[key] || r.Method == "echo_route_not_found" {
			continue
		}
		path := routeParam.ReplaceAllStringFunc(r.Path, func(p string) string { return params[p] })
		tested = append(tested, key)
		t.Run(key, func(t *testing.T) {
			hdr := map[string]string{"X-XSRFToken": alice.xsrf, "Content-Type": "application/json", "Accept": "application/json"}
			resp, body := alice.do(r.Method, path, `{}`, hdr)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("student session: want 403, got %d %s", resp.StatusCode, body)
			}
			var msg struct{ Message string }
			if json.Unmarshal([]byte(body), &msg) != nil || msg.Message == "" {
				t.Errorf("403 without a JSON message: %s", body)
			}
			resp, body = e.client(t).do(r.Method, path, `{}`, map[string]string{"Authorization": "token " + plain,
				"Content-Type": "application/json", "Accept": "application/json"})
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("student token: want 403, got %d %s", resp.StatusCode, body)
			}
		})
	}
	joined := strings.Join(tested, "\n")
	for _, want := range []string{"GET /hub/admin", "GET /hub/admin/gitpuller", "PUT /hub/api/image", "GET /hub/api/image",
		"POST /hub/api/image/restart-outdated", "GET /hub/api/gitpuller-link", "GET /hub/api/users", "PATCH /hub/api/users/:name",
		"GET /hub/api/events"} {
		if !strings.Contains(joined+"\n", want+"\n") {
			t.Errorf("route %s was not in the table; routes tested:\n%s", want, joined)
		}
	}
	if calls, stops := e.servers.calls(); len(calls)+len(stops) != 0 {
		t.Fatalf("a refused request reached the spawner: starts %v stops %v", calls, stops)
	}
}

// TestCookieStateChangesWithoutXSRFAreRefused runs every state-changing
// route as an admin (who would be allowed) with forged-request shapes.
func TestCookieStateChangesWithoutXSRFAreRefused(t *testing.T) {
	e := newDashEnv(t)
	admin := e.client(t)
	admin.login("admin", testPassword)
	forged := []struct {
		name string
		hdr  map[string]string
		body string
	}{
		{"no token", map[string]string{"Content-Type": "application/json"}, `{}`},
		{"text/plain simple request", map[string]string{"Content-Type": "text/plain"}, `{"image":"` + imgNew + `"}`},
		{"no-cors fetch", map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site"}, `{}`},
		{"form post with a wrong _xsrf", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "_xsrf=wrong&blocked=true"},
		{"wrong header", map[string]string{"X-XSRFToken": "wrong", "Content-Type": "application/json"}, `{}`},
	}
	params := map[string]string{":name": "bob", ":user": "bob", ":run": "2025-02-28T020000Z", ":file": "bob.tar.gz", ":id": "x", ":group": "ta"}
	n := 0
	for _, r := range e.srv.Echo().Routes() {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || !strings.HasPrefix(r.Path, "/hub/api") {
			continue
		}
		path := routeParam.ReplaceAllStringFunc(r.Path, func(p string) string { return params[p] })
		for _, f := range forged {
			n++
			resp, body := admin.do(r.Method, path, f.body, f.hdr)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "_xsrf") {
				t.Errorf("%s %s (%s): want 403 naming _xsrf, got %d %s", r.Method, path, f.name, resp.StatusCode, body)
			}
		}
	}
	if n < 5*10 {
		t.Fatalf("only %d forged requests: the route table lost its state-changing routes", n)
	}
	if calls, stops := e.servers.calls(); len(calls)+len(stops) != 0 {
		t.Fatalf("a forged request reached the spawner: starts %v stops %v", calls, stops)
	}
	if u, _ := e.st.GetUser(context.Background(), "bob"); u.Blocked {
		t.Fatal("a forged request blocked bob")
	}
	if _, err := e.st.GetSetting(context.Background(), "notebook_image"); err == nil {
		t.Fatal("a forged request changed the image")
	}
}

// seedUsers writes n students (user-00000 ...) and running servers for the
// first running of them, the way 5,000 students look to the hub.
func seedUsers(t testing.TB, st *store.Store, n, running int, image string) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				name := fmt.Sprintf("user-%05d", i)
				if err := st.PutUser(ctx, store.User{Name: name, Allowed: true}); err != nil {
					errs <- err
					return
				}
				if i < running {
					at := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
					if err := st.PutServer(ctx, store.Server{User: name, State: store.StateRunning, Image: image, Started: at, Ready: at}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

type usersPage struct {
	Items      []map[string]any `json:"items"`
	Pagination struct {
		Offset, Limit, Total int
		Next                 *struct {
			Offset, Limit int
			URL           string
		}
	} `json:"_pagination"`
}

func TestFiveThousandUsersPaginateAndTheDashboardRenders(t *testing.T) {
	e := newDashEnv(t)
	seedUsers(t, e.st, 5000, 100, imgOld)
	admin := e.client(t)
	admin.login("admin", testPassword)
	envelope := map[string]string{"Accept": "application/jupyterhub-pagination+json"}
	get := func(path string) usersPage {
		t.Helper()
		resp, body := admin.do("GET", path, "", envelope)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		var p usersPage
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return p
	}

	t.Run("envelope with total and next", func(t *testing.T) {
		p := get("/hub/api/users?limit=100")
		if len(p.Items) != 100 || p.Pagination.Total != 5003 || p.Pagination.Next == nil || p.Pagination.Next.Offset != 100 {
			t.Fatalf("first page: %d items, pagination %+v", len(p.Items), p.Pagination)
		}
		if p.Items[0]["name"] != "admin" {
			t.Errorf("first user %v, want admin (sorted by name)", p.Items[0]["name"])
		}
		next, err := url.Parse(p.Pagination.Next.URL)
		if err != nil || next.Scheme+"://"+next.Host != "https://hub.example.org" || next.Query().Get("limit") != "100" {
			t.Fatalf("next.url %q must be absolute on the configured public URL and keep limit", p.Pagination.Next.URL)
		}
		second := get(next.RequestURI())
		if len(second.Items) != 100 || second.Pagination.Offset != 100 || second.Items[0]["name"] == p.Items[0]["name"] {
			t.Fatalf("next page: %d items at offset %d", len(second.Items), second.Pagination.Offset)
		}
		last := get("/hub/api/users?limit=100&offset=4950")
		if len(last.Items) != 53 || last.Pagination.Next != nil {
			t.Fatalf("last page: %d items, next %+v", len(last.Items), last.Pagination.Next)
		}
	})
	t.Run("state, name filter and sort", func(t *testing.T) {
		if p := get("/hub/api/users?state=ready&limit=1000"); p.Pagination.Total != 100 {
			t.Errorf("state=ready: total %d, want 100", p.Pagination.Total)
		}
		if p := get("/hub/api/users?state=inactive&limit=10"); p.Pagination.Total != 4903 {
			t.Errorf("state=inactive: total %d, want 4903", p.Pagination.Total)
		}
		if p := get("/hub/api/users?name_filter=user-0499"); p.Pagination.Total != 10 {
			t.Errorf("name_filter=user-0499: total %d, want 10", p.Pagination.Total)
		}
		p := get("/hub/api/users?sort=-name&limit=1")
		if p.Items[0]["name"] != "user-04999" || !strings.Contains(p.Pagination.Next.URL, "sort=-name") {
			t.Errorf("sort=-name: first %v, next %+v", p.Items[0]["name"], p.Pagination.Next)
		}
		p = get("/hub/api/users?state=ready&sort=-started&limit=1")
		if p.Items[0]["name"] != "user-00099" {
			t.Errorf("sort=-started: first %v, want the latest start user-00099", p.Items[0]["name"])
		}
	})
	t.Run("plain list without the envelope", func(t *testing.T) {
		resp, body := admin.do("GET", "/hub/api/users?limit=100", "", nil)
		var list []map[string]any
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 100 {
			t.Fatalf("plain list: %d, %d items", resp.StatusCode, len(list))
		}
	})
	t.Run("bad parameters say what is accepted", func(t *testing.T) {
		for _, q := range []string{"state=sleeping", "limit=-1", "offset=x", "sort=shoe_size"} {
			resp, body := admin.do("GET", "/hub/api/users?"+q, "", nil)
			var m struct{ Message string }
			if resp.StatusCode != 400 || json.Unmarshal([]byte(body), &m) != nil || m.Message == "" {
				t.Errorf("%s: %d %s", q, resp.StatusCode, body)
			}
		}
	})
	t.Run("dashboard renders one page of users", func(t *testing.T) {
		resp, page := admin.do("GET", "/hub/admin", "", map[string]string{"Accept": "text/html"})
		if resp.StatusCode != 200 {
			t.Fatalf("/hub/admin: %d", resp.StatusCode)
		}
		if rows := strings.Count(page, `<tr data-user=`); rows != 50 {
			t.Errorf("dashboard shows %d rows, want a page of 50", rows)
		}
		for _, want := range []string{`id="count-users">5003<`, `id="running-count">100<`, `Showing <strong>1–50</strong> of <strong>5003</strong>`,
			`href="/hub/admin?offset=50"`, `id="running-chart"`} {
			if !strings.Contains(page, want) {
				t.Errorf("dashboard lacks %q", want)
			}
		}
		if len(page) > 150_000 {
			t.Errorf("dashboard page is %d bytes: it should hold one page of users, not all", len(page))
		}
		_, page = admin.do("GET", "/hub/admin?q=user-0499&state=inactive&sort=-name", "", nil)
		if rows := strings.Count(page, `<tr data-user=`); rows != 10 || !strings.Contains(page, `data-user="user-04999"`) {
			t.Errorf("search page shows %d rows", rows)
		}
	})
}

func TestUserModelHasServerFields(t *testing.T) {
	e := newDashEnv(t)
	ctx := context.Background()
	started := e.now.Add(-time.Hour)
	if err := e.st.PutServer(ctx, store.Server{User: "alice", State: store.StateRunning, Image: imgOld, Started: started, Ready: started}); err != nil {
		t.Fatal(err)
	}
	active := e.now.Add(-5 * time.Minute)
	if err := e.st.RecordActivity(ctx, map[string]time.Time{"alice": active}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetSetting(ctx, "notebook_image", imgNew); err != nil {
		t.Fatal(err)
	}
	alice := e.client(t)
	alice.login("alice", testPassword)
	resp, body := alice.do("GET", "/hub/api/users/alice", "", nil)
	var m struct {
		Name         string
		Admin        bool
		Blocked      bool
		State        string
		Started      *time.Time
		LastActivity *time.Time `json:"last_activity"`
		Image        string
		Pending      *string
		Outdated     bool
		Server       *string
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &m) != nil {
		t.Fatalf("GET user: %d %s", resp.StatusCode, body)
	}
	if m.Name != "alice" || m.State != "running" || m.Image != imgOld || !m.Outdated || m.Pending != nil ||
		m.Started == nil || !m.Started.Equal(started) || m.Server == nil {
		t.Errorf("user model: %s", body)
	}
	// The login just now is later than the proxied activity.
	if m.LastActivity == nil || m.LastActivity.Before(active) {
		t.Errorf("last_activity %v, want at least the proxied activity %v", m.LastActivity, active)
	}
	resp, body = alice.do("GET", "/hub/api/users/nobody", "", nil)
	if resp.StatusCode != 403 {
		t.Errorf("another user's record: %d %s", resp.StatusCode, body)
	}
}

func TestImageUpdates(t *testing.T) {
	e := newDashEnv(t)
	ctx := context.Background()
	admin := e.client(t)
	admin.login("admin", testPassword)
	jsonHdr := map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"}

	resp, body := admin.do("GET", "/hub/api/image", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"image":"`+imgOld+`"`) {
		t.Fatalf("default image: %d %s", resp.StatusCode, body)
	}
	resp, body = admin.do("PUT", "/hub/api/image", `{"image":"evil/miner:latest"}`, jsonHdr)
	if resp.StatusCode != 400 || !strings.Contains(body, "allowed_images") {
		t.Fatalf("image outside the allowed list: %d %s", resp.StatusCode, body)
	}
	resp, body = admin.do("PUT", "/hub/api/image", `{"image":"`+imgNew+`"}`, jsonHdr)
	if resp.StatusCode != 200 || !strings.Contains(body, `"image":"`+imgNew+`"`) {
		t.Fatalf("set image: %d %s", resp.StatusCode, body)
	}

	// Servers: alice idle for an hour on the old image, bob busy on the old
	// image, admin already on the new one.
	hourAgo := e.now.Add(-time.Hour)
	for _, s := range []store.Server{
		{User: "alice", State: store.StateRunning, Image: imgOld, Ready: hourAgo},
		{User: "bob", State: store.StateRunning, Image: imgOld, Ready: hourAgo},
		{User: "admin", State: store.StateRunning, Image: imgNew, Ready: hourAgo},
	} {
		if err := e.st.PutServer(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.RecordActivity(ctx, map[string]time.Time{"alice": hourAgo, "bob": e.now.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	_, body = admin.do("GET", "/hub/api/users?state=outdated", "", nil)
	var outdated []struct{ Name string }
	_ = json.Unmarshal([]byte(body), &outdated)
	if len(outdated) != 2 || outdated[0].Name != "alice" || outdated[1].Name != "bob" {
		t.Fatalf("outdated users: %s", body)
	}
	_, page := admin.do("GET", "/hub/admin", "", nil)
	if strings.Count(page, `class="badge badge-outdated"`) != 2 {
		t.Errorf("dashboard does not mark the two outdated servers")
	}

	resp, body = admin.do("POST", "/hub/api/image/restart-outdated?idle=soon", "", jsonHdr)
	if resp.StatusCode != 400 || !strings.Contains(body, "duration") {
		t.Fatalf("bad idle: %d %s", resp.StatusCode, body)
	}
	resp, body = admin.do("POST", "/hub/api/image/restart-outdated?idle=10m", "", jsonHdr)
	var rep struct {
		Restarted     []string
		SkippedActive []string `json:"skipped_active"`
		Failed        map[string]string
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &rep) != nil {
		t.Fatalf("restart-outdated: %d %s", resp.StatusCode, body)
	}
	if fmt.Sprint(rep.Restarted) != "[alice]" || fmt.Sprint(rep.SkippedActive) != "[bob]" || len(rep.Failed) != 0 {
		t.Fatalf("restart report: %s", body)
	}
	starts, stops := e.servers.calls()
	if fmt.Sprint(stops) != "[alice]" || len(starts) != 1 || starts[0] != (startCall{"alice", imgNew}) {
		t.Fatalf("spawner calls: starts %v stops %v", starts, stops)
	}

	// A start without a chosen image gets the current one.
	bob := e.client(t)
	bob.login("bob", testPassword)
	if err := e.st.PutServer(ctx, store.Server{User: "bob", State: store.StateStopped}); err != nil {
		t.Fatal(err)
	}
	resp, body = bob.do("POST", "/hub/api/users/bob/server", "", map[string]string{"X-XSRFToken": bob.xsrf})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	starts, _ = e.servers.calls()
	if got := starts[len(starts)-1]; got != (startCall{"bob", imgNew}) {
		t.Fatalf("start used %+v, want the current image", got)
	}
}

func TestGitpullerLinks(t *testing.T) {
	e := newDashEnv(t)
	admin := e.client(t)
	admin.login("admin", testPassword)
	cases := []struct {
		name, repo, branch, urlpath string
		want                        string // link, or the field in error
	}{
		{"defaults to the repository folder", "https://github.com/org/course.git", "", "",
			"https://hub.example.org/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Forg%2Fcourse.git&urlpath=tree%2Fcourse%2F"},
		{"branch and lab path", "https://github.com/org/course", "week-1", "lab/tree/course/intro.ipynb",
			"https://hub.example.org/hub/user-redirect/git-pull?branch=week-1&repo=https%3A%2F%2Fgithub.com%2Forg%2Fcourse&urlpath=lab%2Ftree%2Fcourse%2Fintro.ipynb"},
		{"ssh repository", "git@github.com:org/course.git", "", "", "repo"},
		{"javascript repository", "javascript:alert(1)", "", "", "repo"},
		{"credentials in the URL", "https://user:secret@github.com/org/course", "", "", "repo"},
		{"branch with dotdot", "https://github.com/org/course", "a..b", "", "branch"},
		{"branch with a space", "https://github.com/org/course", "my branch", "", "branch"},
		{"branch ending in .lock", "https://github.com/org/course", "main.lock", "", "branch"},
		{"absolute urlpath", "https://github.com/org/course", "", "/hub/admin", "urlpath"},
		{"urlpath escaping upwards", "https://github.com/org/course", "", "tree/../../hub", "urlpath"},
		{"urlpath to another host", "https://github.com/org/course", "", "https://evil.example/", "urlpath"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"repo": {tc.repo}, "branch": {tc.branch}, "urlpath": {tc.urlpath}}.Encode()
			resp, body := admin.do("GET", "/hub/api/gitpuller-link?"+q, "", nil)
			var out struct {
				Link    string
				Message string
				Errors  map[string]string
			}
			_ = json.Unmarshal([]byte(body), &out)
			if strings.HasPrefix(tc.want, "https://") {
				if resp.StatusCode != 200 || out.Link != tc.want {
					t.Fatalf("got %d %q, want %q", resp.StatusCode, out.Link, tc.want)
				}
				_, page := admin.do("GET", "/hub/admin/gitpuller?"+q, "", nil)
				if !strings.Contains(page, `id="copy-link"`) || !strings.Contains(page, `id="gitpuller-link" value="`+strings.ReplaceAll(tc.want, "&", "&amp;")+`"`) {
					t.Errorf("page does not show the link with a copy button")
				}
				return
			}
			if resp.StatusCode != 400 || out.Errors[tc.want] == "" || out.Message == "" {
				t.Fatalf("want a 400 naming %s, got %d %s", tc.want, resp.StatusCode, body)
			}
			_, page := admin.do("GET", "/hub/admin/gitpuller?"+q, "", nil)
			if !strings.Contains(page, `id="error-`+tc.want+`"`) || strings.Contains(page, `id="copy-link"`) {
				t.Errorf("page does not show the error next to %s", tc.want)
			}
		})
	}
}

func TestLoginOutcomesAreCounted(t *testing.T) {
	e := newDashEnv(t)
	e.client(t).login("alice", testPassword)
	e.client(t).login("alice", "wrong")
	e.client(t).login("mallory", testPassword)
	e.client(t).login("bob", "wrong")
	e.client(t).login("bob", "wrong")
	e.client(t).login("bob", "wrong")
	e.client(t).login("bob", testPassword) // banned now
	e.logins.mu.Lock()
	defer e.logins.mu.Unlock()
	got := strings.Join(e.logins.got, ",")
	want := "success,bad_credentials,not_allowed,bad_credentials,bad_credentials,bad_credentials,banned"
	if got != want {
		t.Fatalf("login outcomes %s, want %s", got, want)
	}
}

func TestDashboardShowsArchivesChartAndEvents(t *testing.T) {
	e := newDashEnv(t)
	ctx := context.Background()
	for i, n := range []int{0, 3, 7, 5} {
		if err := e.st.RecordRunning(ctx, e.now.Add(time.Duration(i-4)*time.Hour), n); err != nil {
			t.Fatal(err)
		}
	}
	admin := e.client(t)
	admin.login("admin", testPassword)
	_, page := admin.do("GET", "/hub/admin", "", nil)
	for _, want := range []string{
		`href="/hub/api/archives/2025-02-28T020000Z/alice.tar.gz"`,
		`href="/hub/api/archives/2025-02-28T020000Z/bob.tar.gz"`,
		`<polyline class="line" points="`,
		`peak 7 · now 5`,
		`<span class="kind">login</span>`,
		`id="image-select"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, " style=") || strings.Contains(page, "onclick") {
		t.Error("dashboard has inline script or style, which the CSP blocks")
	}
	// Open appears only for running servers when admin_access is on.
	if err := e.st.PutServer(ctx, store.Server{User: "bob", State: store.StateRunning, Image: imgOld}); err != nil {
		t.Fatal(err)
	}
	_, page = admin.do("GET", "/hub/admin", "", nil)
	if !strings.Contains(page, `href="/user/bob/"`) || strings.Contains(page, `href="/user/alice/"`) {
		t.Error("Open links: want one for bob's running server only")
	}
}

func TestSampleRunningRecordsTheSeries(t *testing.T) {
	e := newDashEnv(t)
	bg := context.Background()
	seedUsers(t, e.st, 5, 3, imgOld)
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { defer close(done); e.srv.SampleRunning(ctx) }()
	deadline, stop := context.WithTimeout(bg, 30*time.Second)
	defer stop()
	for {
		got, err := e.st.RunningSeries(bg, e.now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			if got[0].Value != 3 || !got[0].Time.Equal(e.now) {
				t.Fatalf("sample %+v, want 3 at %v", got[0], e.now)
			}
			break
		}
		select {
		case <-deadline.Done():
			t.Fatal("no sample was recorded")
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	<-done
	if n := e.srv.RunningCount(); n != 3 {
		t.Fatalf("RunningCount = %d, want 3", n)
	}
}

func TestHomeSaysWhatToDoAfterAFailedStart(t *testing.T) {
	e := newDashEnv(t)
	if err := e.st.PutServer(context.Background(), store.Server{User: "alice", State: store.StateFailed,
		Error: "No such image: registry.example/course/notebook:2025"}); err != nil {
		t.Fatal(err)
	}
	alice := e.client(t)
	alice.login("alice", testPassword)
	_, page := alice.do("GET", "/hub/home", "", nil)
	for _, want := range []string{`id="server-error"`, "tell the course staff", "No such image", `id="start"`,
		`href="/hub/api/users/alice/workspace.tar.gz"`} {
		if !strings.Contains(page, want) {
			t.Errorf("home lacks %q", want)
		}
	}
}
