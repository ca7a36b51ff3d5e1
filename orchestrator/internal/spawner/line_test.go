package spawner_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

// eventLog records what happened, in order: "create U" when the service
// of U is created, "ready U" when U's server first answers.
type eventLog struct {
	mu     sync.Mutex
	events []string
	allow  map[string]bool // users whose server may answer
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *eventLog) release(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.allow[user] = true
}

// Probe answers ready for released users only, logging the first answer.
func (l *eventLog) Probe(_ context.Context, _, user, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.allow[user] {
		return errors.New("not yet")
	}
	if !slices.Contains(l.events, "ready "+user) {
		l.events = append(l.events, "ready "+user)
	}
	return nil
}

type loggingDocker struct {
	*fakedocker.Client
	log *eventLog
}

func (d loggingDocker) ServiceCreate(ctx context.Context, spec swarm.ServiceSpec, o swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error) {
	r, err := d.Client.ServiceCreate(ctx, spec, o)
	if err == nil {
		d.log.add("create " + spec.Labels[spawner.LabelUser])
	}
	return r, err
}

// fixedRoom is a capacity with a start bound and no guarantees.
type fixedRoom struct{ starts int }

func (r fixedRoom) Report(context.Context) (capacity.Report, error) {
	return capacity.Report{Starts: r.starts, Fit: capacity.Unlimited}, nil
}

type lineHarness struct {
	d   *fakedocker.Client
	log *eventLog
	rdb *redis.Client
	st  *store.Store
}

func newLineHarness(t *testing.T) *lineHarness {
	t.Helper()
	rdb := testenv.RedisClient(t)
	return &lineHarness{d: fakedocker.New(), log: &eventLog{allow: map[string]bool{}}, rdb: rdb, st: store.New(rdb, "linetest:")}
}

// manager is one orchestrator replica on the harness' Docker and Redis.
func (h *lineHarness) manager(t *testing.T, room spawner.Room, prober spawner.Prober) *spawner.Manager {
	t.Helper()
	o := baseOptions()
	o.Storage.HostRoot = t.TempDir()
	o.CPUGuarantee, o.CPULimit = 0.5, 1
	st := store.New(h.rdb, "linetest:")
	return spawner.NewManager(loggingDocker{h.d, h.log}, spawner.WrapStore(st), spawner.ManagerOptions{
		Spec: o, Image: "img", Namer: identityNamer(t), StartTimeout: time.Minute,
		ProbeInterval: time.Millisecond, Prober: prober,
		Line: st, Room: room, LineInterval: 5 * time.Millisecond,
	}, nil)
}

func runLine(t *testing.T, m *spawner.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.RunLine(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
		defer wcancel()
		_ = m.Wait(wctx)
	})
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting until %s", what)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func queuedAt(t *testing.T, err error) spawner.Place {
	t.Helper()
	var q *spawner.QueuedError
	if !errors.As(err, &q) {
		t.Fatalf("Start returned %v, want a place in line", err)
	}
	return q.Place
}

// With two starts allowed in flight, the first students are ready before
// the last ones start, and starts begin in the order they were asked for.
func TestLineStartsInOrderWithinTheBound(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := newLineHarness(t)
	m := h.manager(t, fixedRoom{starts: 2}, h.log)
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
	for i, u := range users {
		rec, err := m.Start(ctx, u, spawner.StartOptions{})
		if i < 2 {
			if err != nil || rec.State != store.StateStarting {
				t.Fatalf("Start(%s) = %+v, %v; want starting at once", u, rec, err)
			}
			continue
		}
		if p := queuedAt(t, err); p.Position != i-1 || p.Length != i-1 {
			t.Fatalf("Start(%s) queued at %+v, want position %d of %d", u, p, i-1, i-1)
		}
	}
	runLine(t, m)
	for _, u := range users {
		waitFor(ctx, t, u+"'s service exists", func() bool { return slices.Contains(h.log.snapshot(), "create "+u) })
		h.log.release(u)
	}
	waitFor(ctx, t, "every server is ready", func() bool { return len(h.log.snapshot()) == 2*len(users) })

	ev := h.log.snapshot()
	var created []string
	inFlight := 0
	for _, e := range ev {
		if u, ok := cutPrefix(e, "create "); ok {
			created = append(created, u)
			inFlight++
		} else {
			inFlight--
		}
		if inFlight > 2 {
			t.Fatalf("more than 2 starts in flight at %q in %v", e, ev)
		}
	}
	if len(created) != len(users) {
		t.Errorf("services created %v, want one for each of %v", created, users)
	}
	// First come, first served: a start begins after the one two ahead of
	// it (starts admitted together may create their services in either
	// order), and only once enough starts before it are ready (which ones:
	// whichever servers answered first).
	for k := 2; k < len(users); k++ {
		at := slices.Index(ev, "create "+users[k])
		if at < slices.Index(ev, "create "+users[k-2]) {
			t.Errorf("%s started before %s: %v", users[k], users[k-2], ev)
		}
		ready := 0
		for _, e := range ev[:at] {
			if _, ok := cutPrefix(e, "ready "); ok {
				ready++
			}
		}
		if ready < k-1 {
			t.Errorf("%s started with %d servers ready, want at least %d: %v", users[k], ready, k-1, ev)
		}
	}
	if slices.Index(ev, "ready u1") > slices.Index(ev, "create u6") {
		t.Errorf("the first student was ready only after the last one started: %v", ev)
	}
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// A new orchestrator on the same Redis sees the line and lets it move.
func TestLineSurvivesAnOrchestratorRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := newLineHarness(t)
	first := h.manager(t, fixedRoom{starts: 1}, h.log)
	if _, err := first.Start(ctx, "a", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"b", "c"} {
		if _, err := first.Start(ctx, u, spawner.StartOptions{}); err == nil {
			t.Fatalf("Start(%s) went ahead past the bound", u)
		}
	}
	second := h.manager(t, fixedRoom{starts: 1}, h.log)
	st, err := second.LineStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var waiting []string
	for _, e := range st.Waiting {
		waiting = append(waiting, e.User)
	}
	if !slices.Equal(waiting, []string{"b", "c"}) || !slices.Equal(st.Starting, []string{"a"}) || st.Bound != 1 {
		t.Fatalf("the new orchestrator sees %+v, want b and c waiting behind a's start, bound 1", st)
	}
	runLine(t, second)
	h.log.release("a")
	waitFor(ctx, t, "b starts on the new orchestrator", func() bool { return slices.Contains(h.log.snapshot(), "create b") })
	if ev := h.log.snapshot(); slices.Contains(ev, "create c") {
		t.Errorf("c started before b was ready: %v", ev)
	}
	h.log.release("b")
	h.log.release("c")
	waitFor(ctx, t, "c is ready", func() bool { return slices.Contains(h.log.snapshot(), "ready c") })
	if err := first.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// When no node can take another server, a start waits in line rather than
// failing, and starts by itself once a server stops.
func TestLineWaitsForCapacityAndStartsWhenAServerStops(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := newLineHarness(t)
	// One node with one CPU: two servers reserving 0.5 each fit.
	h.d.SetNodes(fakedocker.Node("n1", "node1", 1, 8<<30))
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStateRunning), fakedocker.OnNode("n1"),
			fakedocker.WithAddress(fakedocker.Network, fakedocker.DefaultIP))}
	})
	room := capacity.NewReader(h.d, capacity.Options{CPUGuarantee: 0.5, StartsPerNode: capacity.AutoStarts}, 0)
	m := h.manager(t, room, alwaysReady)
	runLine(t, m)
	for _, u := range []string{"a", "b"} {
		if _, err := m.Start(ctx, u, spawner.StartOptions{}); err != nil {
			t.Fatalf("Start(%s): %v", u, err)
		}
		waitFor(ctx, t, u+" is running", func() bool {
			rec, err := h.st.GetServer(ctx, u)
			return err == nil && rec.State == store.StateRunning
		})
	}
	_, err := m.Start(ctx, "c", spawner.StartOptions{})
	if p := queuedAt(t, err); !p.Full || p.Position != 1 {
		t.Fatalf("the start over capacity is at %+v, want first in line with the cluster full", p)
	}
	if rec, err := h.st.GetServer(ctx, "c"); err == nil && rec.State == store.StateFailed {
		t.Fatalf("the start over capacity failed: %s", rec.Error)
	}
	if slices.Contains(h.d.ServiceNames(), "jupyter-c") {
		t.Fatal("a service was created for c over capacity")
	}
	if err := m.Stop(ctx, "a", "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "c runs once a's server stopped", func() bool {
		rec, err := h.st.GetServer(ctx, "c")
		return err == nil && rec.State == store.StateRunning
	})
	if names := h.d.ServiceNames(); !slices.Equal(names, []string{"jupyter-b", "jupyter-c"}) {
		t.Errorf("services %v, want b's and c's", names)
	}
}

// A stop of a start still waiting takes it out of the line.
func TestLineStopLeavesTheLine(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := newLineHarness(t)
	m := h.manager(t, fixedRoom{starts: 1}, h.log)
	for i, u := range []string{"a", "b", "c"} {
		_, err := m.Start(ctx, u, spawner.StartOptions{})
		if i > 0 {
			queuedAt(t, err)
		}
	}
	if err := m.Stop(ctx, "b", "changed my mind"); err != nil {
		t.Fatal(err)
	}
	p, in, err := m.Place(ctx, "c")
	if err != nil || !in || p.Position != 1 {
		t.Errorf("c after b left: %+v in=%v %v; want first in line", p, in, err)
	}
	if _, in, _ := m.Place(ctx, "b"); in {
		t.Error("b is still in line after its stop")
	}
	h.log.release("a")
	h.log.release("c")
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

type reportRoom capacity.Report

func (r reportRoom) Report(context.Context) (capacity.Report, error) { return capacity.Report(r), nil }

type settingsMap map[string]string

func (s settingsMap) GetSetting(_ context.Context, name string) (string, error) {
	if v, ok := s[name]; ok {
		return v, nil
	}
	return "", store.ErrNotFound
}

// An admin's runtime setting replaces notebook.starts_per_node.
func TestLineBoundFollowsTheRuntimeSetting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// One node with 4 CPUs, configured for one start at a time.
	room := reportRoom{Starts: 1, Fit: capacity.Unlimited, Nodes: []capacity.Node{{ID: "n1", CPUs: 4}}}
	for _, tc := range []struct {
		setting string
		want    int
	}{
		{"", 1},   // unset: the configured bound
		{"x", 1},  // invalid: ignored
		{"0", 0},  // no bound
		{"-1", 4}, // the node's CPU count
		{"3", 3},  // per node
	} {
		h := newLineHarness(t)
		o := baseOptions()
		o.Storage.HostRoot = t.TempDir()
		st := store.New(h.rdb, "linetest:")
		settings := settingsMap{}
		if tc.setting != "" {
			settings[spawner.SettingStartsPerNode] = tc.setting
		}
		m := spawner.NewManager(h.d, spawner.WrapStore(st), spawner.ManagerOptions{
			Spec: o, Image: "img", Namer: identityNamer(t), Prober: h.log, Line: st, Room: room, Settings: settings,
		}, nil)
		ls, err := m.LineStatus(ctx)
		if err != nil || ls.Bound != tc.want {
			t.Errorf("setting %q: bound %d (%v), want %d", tc.setting, ls.Bound, err, tc.want)
		}
	}
}
