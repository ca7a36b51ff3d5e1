package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// lectureEnv is the web layer on a real spawner with the line, over a fake
// Docker with one node where two servers fit.
func lectureEnv(t *testing.T) (*env, *spawner.Manager) {
	t.Helper()
	d := fakedocker.New()
	d.SetNodes(fakedocker.Node("n1", "node1", 1, 8<<30))
	d.SetTasks(func(svc swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStateRunning), fakedocker.OnNode("n1"),
			fakedocker.WithAddress(fakedocker.Network, fakedocker.DefaultIP))}
	})
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var mgr *spawner.Manager
	e := newEnvWith(t, func(_ *web.Options, dep *web.Deps) {
		st := dep.Store.(*store.Store)
		room := capacity.NewReader(d, capacity.Options{CPUGuarantee: 0.5, StartsPerNode: capacity.AutoStarts}, 0)
		mgr = spawner.NewManager(d, spawner.WrapStore(st), spawner.ManagerOptions{
			Spec: spawner.Options{
				Network: fakedocker.Network, CPUGuarantee: 0.5, CPULimit: 1,
				Storage: spawner.Storage{Backend: "hostpath", HostRoot: root},
			},
			Image: "img", Namer: namer, StartTimeout: time.Minute, ProbeInterval: time.Millisecond,
			Prober: readyProber{}, Line: st, Room: room, Settings: st, LineInterval: 5 * time.Millisecond,
		}, nil)
		dep.Servers, dep.Line, dep.Capacity = mgr, mgr, room
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); mgr.RunLine(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = mgr.Wait(context.Background()) })
	return e, mgr
}

func running(ctx context.Context, t *testing.T, st *store.Store, user string) {
	t.Helper()
	for {
		rec, err := st.GetServer(ctx, user)
		if err == nil && rec.State == store.StateRunning {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s's server never ran", user)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

type progress struct {
	Message     string `json:"message"`
	Ready       bool   `json:"ready"`
	Failed      bool   `json:"failed"`
	Position    int    `json:"position"`
	Full        bool   `json:"full"`
	WaitSeconds int    `json:"wait_seconds"`
}

func TestFullClusterQueuesTheStartAndStartsItWhenAServerStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, mgr := lectureEnv(t)
	for _, u := range []string{"admin", "bob"} {
		if _, err := mgr.Start(ctx, u, spawner.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		running(ctx, t, e.st, u)
	}

	c := e.client(t)
	c.login("alice", testPassword)
	resp, body := c.do("POST", "/hub/api/users/alice/server", "", map[string]string{"X-XSRFToken": c.xsrf})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start over capacity: %d %s, want 202 (queued, not refused)", resp.StatusCode, body)
	}
	var queued struct {
		Pending *string `json:"pending"`
		Line    struct {
			Position int  `json:"position"`
			Full     bool `json:"full"`
		} `json:"start_line"`
	}
	if err := json.Unmarshal([]byte(body), &queued); err != nil {
		t.Fatal(err)
	}
	if queued.Pending == nil || *queued.Pending != "spawn" || queued.Line.Position != 1 || !queued.Line.Full {
		t.Fatalf("start answer %s, want a pending spawn first in a full line", body)
	}

	// A JupyterHub client polling the user sees the spawn pending.
	if r, b := c.do("GET", "/hub/api/users/alice", "", nil); r.StatusCode != 200 || !strings.Contains(b, `"pending":"spawn"`) || !strings.Contains(b, `"start_line":{"position":1`) {
		t.Errorf("GET the queued user: %d %s, want a pending spawn with its place", r.StatusCode, b)
	}

	// The admin sees the line and the capacity.
	a := e.client(t)
	a.login("admin", testPassword)
	if r, b := a.do("GET", "/hub/api/line", "", nil); r.StatusCode != 200 || !strings.Contains(b, `"name":"alice","position":1`) {
		t.Fatalf("line: %d %s", r.StatusCode, b)
	}
	r, b := a.do("GET", "/hub/api/capacity", "", nil)
	var capa struct {
		Fit     int    `json:"fit"`
		Running int    `json:"running"`
		Allowed int    `json:"allowed_users"`
		Warning string `json:"warning"`
	}
	if err := json.Unmarshal([]byte(b), &capa); r.StatusCode != 200 || err != nil {
		t.Fatalf("capacity: %d %s", r.StatusCode, b)
	}
	if capa.Fit != 0 || capa.Running != 2 || capa.Allowed != 3 || capa.Warning == "" {
		t.Errorf("capacity %s, want nothing more fits, 2 running of 3 allowed, with a warning", b)
	}
	// An admin lifts the start bound at runtime, and puts it back.
	hdr := map[string]string{"X-XSRFToken": a.xsrf, "Content-Type": "application/json"}
	if r, b := a.do("PUT", "/hub/api/line", `{"starts_per_node": -2}`, hdr); r.StatusCode != http.StatusBadRequest {
		t.Errorf("starts_per_node -2: %d %s, want 400", r.StatusCode, b)
	}
	if r, b := a.do("PUT", "/hub/api/line", `{"starts_per_node": 0}`, hdr); r.StatusCode != 200 || !strings.Contains(b, `"starts_in_flight_bound":0,"starts_per_node":0`) {
		t.Errorf("starts_per_node 0: %d %s, want no bound", r.StatusCode, b)
	}
	if r, b := a.do("PUT", "/hub/api/line", `{"starts_per_node": null}`, hdr); r.StatusCode != 200 || !strings.Contains(b, `"starts_in_flight_bound":1}`) {
		t.Errorf("starts_per_node null: %d %s, want the configured bound (one CPU: 1)", r.StatusCode, b)
	}
	if _, page := a.do("GET", "/hub/admin", "", nil); !strings.Contains(page, `id="capacity-warning"`) || !strings.Contains(page, "1 waiting in line") {
		t.Errorf("the dashboard shows neither the warning nor the line")
	}

	// Alice's page follows her place; bob's server stops; hers starts.
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/hub/api/users/alice/server/progress", nil)
	sse, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()
	events := make(chan progress)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(sse.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var p progress
				_ = json.Unmarshal([]byte(data), &p)
				events <- p
			}
		}
	}()
	first := <-events
	if first.Position != 1 || !first.Full || !strings.Contains(first.Message, "number 1 in line") {
		t.Fatalf("first event %+v, want alice's place in a full line", first)
	}
	if err := mgr.Stop(ctx, "bob", "test"); err != nil {
		t.Fatal(err)
	}
	var last progress
	for p := range events {
		last = p
	}
	if !last.Ready {
		t.Fatalf("the stream ended with %+v, want alice's server ready", last)
	}
	running(ctx, t, e.st, "alice")
}
