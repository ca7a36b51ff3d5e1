package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/prepull"
	"github.com/swarmhub/swarmhub/orchestrator/internal/prestart"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// groupMembers answers prestart's Members from the real store.
type groupMembers struct{ st *store.Store }

func (g groupMembers) Members(ctx context.Context, group string) ([]string, error) {
	groups, err := g.st.Groups(ctx)
	return groups[group], err
}

// lateStarter is the web server's own StartServer, set once it exists.
type lateStarter struct{ srv *web.Server }

func (l *lateStarter) StartServer(ctx context.Context, user string) (bool, error) {
	return l.srv.StartServer(ctx, user)
}

// TestPrestartAPIAndGroupStartStopAll drives the schedules and the group
// buttons through the API as an admin; a student gets none of it.
func TestPrestartAPIAndGroupStartStopAll(t *testing.T) {
	ls := &lateStarter{}
	var runner *prestart.Runner
	e := newEnvWith(t, func(o *web.Options, d *web.Deps) {
		runner = prestart.New(d.Store.(*store.Store), groupMembers{d.Store.(*store.Store)}, ls, prestart.Options{})
		d.Prestarts = runner
	})
	ls.srv = e.srv
	ctx := t.Context()
	admin := e.client(t)
	admin.login("admin", testPassword)
	tok := admin.createToken("admin", "staff script").Token
	alice := e.client(t)
	alice.login("alice", testPassword)
	aliceTok := alice.createToken("alice", "mine").Token

	put := func(token, name, body string) (int, string) {
		return e.withToken(t, "PUT", "/hub/api/prestarts/"+name, token, body)
	}
	if code, body := put(tok, "cs101", `{"cron":"15 10 * * 1","group":"cs101"}`); code != http.StatusBadRequest || !strings.Contains(body, "no such group") {
		t.Fatalf("schedule for a missing group: %d %s", code, body)
	}
	if err := e.st.CreateGroup(ctx, "cs101"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddGroupMembers(ctx, "cs101", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ body, want string }{
		{`{"cron":"15 25 * * 1","group":"cs101"}`, "cron"},
		{`{"cron":"15 10 * * 1","lead":"soon"}`, "lead"},
		{`{"cron":"15 10 * * 1","leed":"30m"}`, "leed"},
		{`{"name":"other","cron":"15 10 * * 1"}`, "must agree"},
	} {
		if code, body := put(tok, "cs101", bad.body); code != http.StatusBadRequest || !strings.Contains(body, bad.want) {
			t.Errorf("PUT %s: %d %s, want 400 naming %q", bad.body, code, body, bad.want)
		}
	}
	code, body := put(tok, "cs101", `{"cron":"15 10 * * 1","group":"cs101","lead":"45m"}`)
	if code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil || v["lead"] != "45m0s" || v["next_start"] == nil {
		t.Fatalf("saved schedule: %v %s", err, body)
	}
	next, _ := time.Parse(time.RFC3339, v["next_start"].(string))
	if lecture, _ := time.Parse(time.RFC3339, v["next_lecture"].(string)); lecture.Sub(next) != 45*time.Minute || lecture.Weekday() != time.Monday {
		t.Errorf("next start %v for lecture %v", next, lecture)
	}
	if code, body := e.withToken(t, "GET", "/hub/api/prestarts", aliceTok, ""); code != http.StatusForbidden {
		t.Errorf("student lists schedules: %d %s", code, body)
	}
	if code, _ := e.withToken(t, "POST", "/hub/api/groups/cs101/servers", aliceTok, ""); code != http.StatusForbidden {
		t.Errorf("student starts a group: %d", code)
	}

	// Start all: only cs101's members, in the background.
	if code, body := e.withToken(t, "POST", "/hub/api/groups/cs101/servers", tok, ""); code != http.StatusAccepted {
		t.Fatalf("start all: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.servers.mu.Lock()
		started := slices.Clone(e.servers.started)
		e.servers.mu.Unlock()
		if len(started) > 0 {
			if !slices.Equal(started, []string{"alice"}) {
				t.Fatalf("started %v, want cs101's alice only", started)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("start all started nobody")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := e.withToken(t, "POST", "/hub/api/groups/nope/servers", tok, ""); code != http.StatusNotFound {
		t.Errorf("start all of a missing group: %d", code)
	}

	// The dashboard shows the schedule and the group buttons.
	_, page := admin.do("GET", "/hub/admin", "", nil)
	for _, want := range []string{`id="prestart-card"`, `data-prestart="cs101"`, "15 10 * * 1", `id="group-start-all"`} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %s", want)
		}
	}

	// Stop all stops the members' servers that run or start.
	code, body = e.withToken(t, "DELETE", "/hub/api/groups/cs101/servers", tok, "")
	if code != http.StatusOK || !strings.Contains(body, `"stopped":["alice"]`) {
		t.Errorf("stop all: %d %s", code, body)
	}
	if code, _ := e.withToken(t, "DELETE", "/hub/api/prestarts/cs101", tok, ""); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if code, _ := e.withToken(t, "DELETE", "/hub/api/prestarts/cs101", tok, ""); code != http.StatusNotFound {
		t.Errorf("delete again: %d", code)
	}
}

// fakeImages stands in for the pre-pull job (tested on the real swarm in
// package prepull): node states to show, and the images it was asked for.
type fakeImages struct {
	mu      sync.Mutex
	ensured []string
}

func (f *fakeImages) Ensure(_ context.Context, image string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensured = append(f.ensured, image)
	return nil
}

func (f *fakeImages) Status(context.Context) ([]prepull.NodeStatus, error) {
	return []prepull.NodeStatus{
		{Node: "node1", Image: "nb:2", State: prepull.StatePresent},
		{Node: "node2", Image: "nb:2", State: prepull.StateFailed, Reason: "pull access denied for nb"},
	}, nil
}

func TestImageChangePrepullsAndShowsEachNode(t *testing.T) {
	imgs := &fakeImages{}
	e := newEnvWith(t, func(o *web.Options, d *web.Deps) {
		o.AllowedImages = []string{"nb:1", "nb:2"}
		d.Images = imgs
	})
	admin := e.client(t)
	admin.login("admin", testPassword)
	resp, body := admin.do("PUT", "/hub/api/image", `{"image":"nb:2"}`, map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"state":"failed"`) || !strings.Contains(body, "pull access denied") {
		t.Fatalf("PUT image: %d %s", resp.StatusCode, body)
	}
	if !slices.Equal(imgs.ensured, []string{"nb:2"}) {
		t.Errorf("pre-pull asked for %v, want the new image at once", imgs.ensured)
	}
	_, page := admin.do("GET", "/hub/admin", "", nil)
	if !strings.Contains(page, `id="image-nodes"`) || !strings.Contains(page, `data-node="node2"`) || !strings.Contains(page, "pull access denied") {
		t.Error("the dashboard does not show each node's image state")
	}
}

// TestAnnouncementOnEveryPageUntilItExpires: an admin announces; a student
// sees it on home and on the start page; after the expiry it is gone.
func TestAnnouncementOnEveryPageUntilItExpires(t *testing.T) {
	now := time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	e := newEnvWith(t, func(o *web.Options, d *web.Deps) { o.Clock = func() time.Time { return clock() } })
	admin := e.client(t)
	admin.login("admin", testPassword)
	alice := e.client(t)
	alice.login("alice", testPassword)
	hdr := map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"}
	for _, bad := range []string{`{"message":"  "}`, `{"message":"x","expires_in":"-1h"}`, `{"message":"x","expires":"tomorrow"}`, `{"message":"` + strings.Repeat("x", 1001) + `"}`} {
		if resp, body := admin.do("PUT", "/hub/api/announcement", bad, hdr); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %.40s: %d %s", bad, resp.StatusCode, body)
		}
	}
	if resp, _ := alice.do("PUT", "/hub/api/announcement", `{"message":"hi"}`, map[string]string{"X-XSRFToken": alice.xsrf, "Content-Type": "application/json"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a student announces: %d", resp.StatusCode)
	}
	msg := "The hub restarts at 18:00 <b>save</b>"
	if resp, body := admin.do("PUT", "/hub/api/announcement", `{"message":"`+msg+`","expires_in":"3h"}`, hdr); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	for _, page := range []string{"/hub/home", "/hub/spawn-pending/alice"} {
		_, body := alice.do("GET", page, "", nil)
		if !strings.Contains(body, `id="announcement"`) || !strings.Contains(body, "The hub restarts at 18:00 &lt;b&gt;save&lt;/b&gt;") {
			t.Errorf("%s lacks the (escaped) announcement", page)
		}
	}
	if _, body := alice.do("GET", "/hub/api/announcement", "", nil); !strings.Contains(body, "18:00") {
		t.Errorf("GET announcement: %s", body)
	}
	now = now.Add(3*time.Hour + time.Second)
	if _, body := alice.do("GET", "/hub/home", "", nil); strings.Contains(body, `id="announcement"`) {
		t.Error("the announcement is still shown after it expired")
	}
	if _, body := alice.do("GET", "/hub/api/announcement", "", nil); body != `{"message":""}`+"\n" {
		t.Errorf("GET after expiry: %q", body)
	}
}

// TestDiskUsageOnHomeAndDashboard: a measured workspace over the soft limit
// warns its student; the dashboard shows and sorts the sizes.
func TestDiskUsageOnHomeAndDashboard(t *testing.T) {
	e := newEnvWith(t, func(o *web.Options, d *web.Deps) { o.DiskSoftLimit = 2 << 20 })
	ctx := t.Context()
	now := time.Now().UTC()
	if err := e.st.PutUsage(ctx, map[string]store.Usage{"alice": {Bytes: 3 << 20, Files: 4, Measured: now}, "bob": {Bytes: 1 << 20, Files: 2, Measured: now}}); err != nil {
		t.Fatal(err)
	}
	alice := e.client(t)
	alice.login("alice", testPassword)
	_, home := alice.do("GET", "/hub/home", "", nil)
	if !strings.Contains(home, `id="disk-usage"`) || !strings.Contains(home, "3.0 MiB") || !strings.Contains(home, `id="over-limit"`) {
		t.Errorf("alice's home lacks her usage or the warning")
	}
	bob := e.client(t)
	bob.login("bob", testPassword)
	if _, home := bob.do("GET", "/hub/home", "", nil); !strings.Contains(home, "1.0 MiB") || strings.Contains(home, `id="over-limit"`) {
		t.Errorf("bob's home: usage missing or a warning under the limit")
	}
	admin := e.client(t)
	admin.login("admin", testPassword)
	_, page := admin.do("GET", "/hub/admin?sort=-disk", "", nil)
	ia, ib := strings.Index(page, `data-user="alice"`), strings.Index(page, `data-user="bob"`)
	if ia < 0 || ib < 0 || ia > ib || !strings.Contains(page, "over-limit") {
		t.Errorf("dashboard sorted by -disk: alice at %d, bob at %d, over-limit marked: %v", ia, ib, strings.Contains(page, "over-limit"))
	}
	if _, body := admin.do("GET", "/hub/api/users/alice", "", nil); !strings.Contains(body, `"disk_bytes":3145728`) {
		t.Errorf("user model lacks disk_bytes: %s", body)
	}
}
