package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
	"github.com/swarmhub/swarmhub/orchestrator/internal/sessioncache"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

type readyProber struct{}

func (readyProber) Probe(context.Context, string, string, string) error { return nil }

// TestInstructorWithoutAdmin: a member of the instructors group who is not
// an admin starts with the instructor environment (nbgrader's formgrader and
// course directory, through the image's start hook) and gets no admin
// rights: not over other users, their servers or the groups. The web layer,
// the proxy and the spawner are the real ones on a real Redis; only Docker
// is the in-memory fake, whose created service specs are read back.
func TestInstructorWithoutAdmin(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	st := store.New(rdb, "hub:")
	for _, u := range []store.User{{Name: "alice", Allowed: true}, {Name: "bob", Allowed: true}, {Name: "admin", Admin: true, Allowed: true}} {
		if err := st.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.EnsureGroupMembers(ctx, store.InstructorsGroup, []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	docker := fakedocker.New()
	mgr := spawner.NewManager(docker, spawner.WrapStore(st), spawner.ManagerOptions{
		Spec: spawner.Options{
			Network:  fakedocker.Network,
			Storage:  spawner.Storage{Backend: spawner.BackendHostPath, HostRoot: "/srv/swarmhub"},
			CourseID: "course101", ExchangeDir: "/home/jovyan/.exchange", ExchangeVolume: "exchange",
		},
		Image: "swarmhub/notebook:dev", Namer: namer, StartTimeout: time.Minute,
		ProbeInterval: time.Millisecond, Prober: readyProber{},
	}, log)
	sessions := sessioncache.New(st, 8*time.Hour, 168*time.Hour, 30*time.Second, hubCookieName)
	access := web.NewAccessCookies(hubCookieName+"-server", false)
	px := proxy.New(web.ProxyIdentifier{Cache: sessions, Access: access}, mgr, nil, nil, proxy.Options{
		AdminAccess: true, CookieName: hubCookieName, Logger: log, ErrNotRunning: spawner.ErrNotRunning, Namer: namer,
	})
	srv := web.New(web.Options{Version: "test", CookieName: hubCookieName, AdminAccess: true, Logger: log}, web.Deps{
		Store: st, Auth: auth.NewDummy(realPassword, namer, log), Policy: auth.NewPolicy(false),
		Regulator: auth.NewRegulator(st, auth.RegulationOptions{MaxFailures: 1000, Window: time.Minute, Ban: time.Minute}),
		Namer:     namer, Servers: mgr, Proxy: px, Sessions: sessions, Access: access,
	})
	ts := newHubHTTPServer(srv, io.Discard)
	t.Cleanup(ts.Close)

	tokenOf := func(user string) string {
		tok, _, err := st.CreateToken(ctx, user, "instructor test")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bob, alice := tokenOf("bob"), tokenOf("alice")
	call := func(token, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "token "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Both start their own servers; bob's is an instructor's, alice's not.
	for user, tok := range map[string]string{"bob": bob, "alice": alice} {
		if code, body := call(tok, http.MethodPost, "/hub/api/users/"+user+"/server", ""); code >= 300 {
			t.Fatalf("%s starts the server: %d %s", user, code, body)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := mgr.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	envOf := func(user string) []string {
		name, err := namer.ServiceName(user)
		if err != nil {
			t.Fatal(err)
		}
		svc, _, err := docker.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatalf("service of %s: %v", user, err)
		}
		return svc.Spec.TaskTemplate.ContainerSpec.Env
	}
	bobEnv, aliceEnv := envOf("bob"), envOf("alice")
	for _, want := range []string{spawner.EnvInstructor + "=1", spawner.EnvCourseID + "=course101"} {
		if !slices.Contains(bobEnv, want) {
			t.Errorf("bob's server lacks %s: %v", want, bobEnv)
		}
	}
	if !slices.Contains(aliceEnv, spawner.EnvInstructor+"=0") {
		t.Errorf("alice's server is not a student's: %v", aliceEnv)
	}
	if rec, err := st.GetServer(ctx, "bob"); err != nil || !rec.Instructor {
		t.Errorf("bob's server record: %+v %v, want an instructor's", rec, err)
	}

	// bob is no admin: his model says so, and every admin action is refused.
	code, body := call(bob, http.MethodGet, "/hub/api/user", "")
	var me struct {
		Admin  bool     `json:"admin"`
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal([]byte(body), &me); code != http.StatusOK || err != nil {
		t.Fatalf("bob's model: %d %s %v", code, body, err)
	}
	if me.Admin || !slices.Contains(me.Groups, store.InstructorsGroup) {
		t.Errorf("bob's model: admin %v, groups %v; want no admin, in %s", me.Admin, me.Groups, store.InstructorsGroup)
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/hub/api/users", ""},
		{http.MethodGet, "/hub/api/users/alice", ""},
		{http.MethodPatch, "/hub/api/users/bob", `{"admin":true}`},
		{http.MethodPatch, "/hub/api/users/alice", `{"admin":true}`},
		{http.MethodDelete, "/hub/api/users/alice/server", ""},
		{http.MethodPost, "/hub/api/users/alice/server", ""},
		{http.MethodPost, "/hub/api/groups/instructors/users", `{"users":["alice"]}`},
		{http.MethodGet, "/hub/api/groups", ""},
		{http.MethodGet, "/hub/api/events", ""},
		{http.MethodGet, "/user/alice/api/contents", ""},
	} {
		if code, body := call(bob, c.method, c.path, c.body); code != http.StatusForbidden && code != http.StatusNotFound {
			t.Errorf("bob %s %s: %d %s, want 403", c.method, c.path, code, body)
		}
	}
	sess, err := st.CreateSession(ctx, "bob", time.Hour, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/hub/admin"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: hubCookieName, Value: sess.ID})
		req.Header.Set("Accept", "text/html")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("bob's browser at %s: %d, want 403", path, resp.StatusCode)
		}
	}
	if u, err := st.GetUser(ctx, "bob"); err != nil || u.Admin {
		t.Errorf("bob after the attempts: %+v %v, want no admin", u, err)
	}
}
