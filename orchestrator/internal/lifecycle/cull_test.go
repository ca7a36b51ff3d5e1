package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/lifecycle"
)

var now = time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return now.Add(-d) }

type fakeServers []lifecycle.ServerInfo

func (f fakeServers) ListRunning(context.Context) ([]lifecycle.ServerInfo, error) { return f, nil }

type fakeActivity map[string]time.Time

func (f fakeActivity) LastActivity(context.Context) (map[string]time.Time, error) { return f, nil }

type status struct {
	last time.Time
	busy int
	err  error
}

type fakeProber struct {
	mu     sync.Mutex
	status map[string]status
	asked  []string
}

func (f *fakeProber) Status(_ context.Context, addr, user, token string) (time.Time, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, user)
	s, ok := f.status[user]
	if !ok {
		return time.Time{}, 0, errors.New("no such server")
	}
	return s.last, s.busy, s.err
}

type fakeStopper struct {
	mu      sync.Mutex
	stopped map[string]string
	fail    map[string]error
}

func (f *fakeStopper) Stop(_ context.Context, user, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[user]; err != nil {
		return err
	}
	if f.stopped == nil {
		f.stopped = map[string]string{}
	}
	f.stopped[user] = reason
	return nil
}

func running(user string, started, ready time.Time) lifecycle.ServerInfo {
	return lifecycle.ServerInfo{User: user, State: "running", Started: started, Ready: ready, Addr: user + ":8888", Token: "tok-" + user}
}

func TestCullRules(t *testing.T) {
	defaults := lifecycle.CullOptions{Timeout: 15 * time.Minute, CullAdmins: true, BusyIsActive: true}
	tests := []struct {
		name       string
		opts       *lifecycle.CullOptions
		server     lifecycle.ServerInfo
		proxy      time.Time
		status     *status
		stopErr    error
		wantReason string // substring; "" = kept
		wantProbe  bool
		wantErr    string
	}{
		{name: "idle everywhere is culled", server: running("u", ago(2*time.Hour), ago(2*time.Hour)), proxy: ago(20 * time.Minute),
			status: &status{last: ago(30 * time.Minute)}, wantReason: "idle for 20m0s", wantProbe: true},
		{name: "recent proxy traffic keeps it without asking the server", server: running("u", ago(2*time.Hour), ago(2*time.Hour)),
			proxy: ago(time.Minute), wantProbe: false},
		{name: "server's own last_activity keeps it", server: running("u", ago(2*time.Hour), ago(2*time.Hour)), proxy: ago(time.Hour),
			status: &status{last: ago(5 * time.Minute)}, wantProbe: true},
		{name: "busy kernel keeps it by default", server: running("u", ago(2*time.Hour), ago(2*time.Hour)), proxy: ago(time.Hour),
			status: &status{last: ago(time.Hour), busy: 1}, wantProbe: true},
		{name: "busy kernel is culled when busy does not count", opts: &lifecycle.CullOptions{Timeout: 15 * time.Minute, CullAdmins: true},
			server: running("u", ago(2*time.Hour), ago(2*time.Hour)), proxy: ago(time.Hour),
			status: &status{last: ago(time.Hour), busy: 2}, wantReason: "idle for 1h0m0s", wantProbe: true},
		{name: "starting server is never culled", server: lifecycle.ServerInfo{User: "u", State: "starting", Started: ago(3 * time.Hour)},
			wantProbe: false},
		{name: "freshly ready server without traffic is kept", server: running("u", ago(20*time.Minute), ago(10*time.Minute)),
			wantProbe: false},
		{name: "admin kept when admins are not culled", opts: &lifecycle.CullOptions{Timeout: 15 * time.Minute, BusyIsActive: true},
			server: func() lifecycle.ServerInfo {
				s := running("u", ago(2*time.Hour), ago(2*time.Hour))
				s.Admin = true
				return s
			}(),
			proxy: ago(time.Hour), status: &status{last: ago(time.Hour)}},
		{name: "admin culled by default", server: func() lifecycle.ServerInfo {
			s := running("u", ago(2*time.Hour), ago(2*time.Hour))
			s.Admin = true
			return s
		}(),
			proxy: ago(time.Hour), status: &status{last: ago(time.Hour)}, wantReason: "idle for 1h0m0s", wantProbe: true},
		{name: "max age stops an active server", opts: &lifecycle.CullOptions{Timeout: 15 * time.Minute, MaxAge: 8 * time.Hour, BusyIsActive: true},
			server: running("u", ago(9*time.Hour), ago(9*time.Hour)), proxy: ago(time.Second), wantReason: "maximum age 8h0m0s"},
		{name: "max age not yet reached", opts: &lifecycle.CullOptions{Timeout: 15 * time.Minute, MaxAge: 8 * time.Hour, BusyIsActive: true},
			server: running("u", ago(7*time.Hour), ago(7*time.Hour)), proxy: ago(time.Second)},
		{name: "unreachable idle server is culled and the probe error reported", server: running("u", ago(2*time.Hour), ago(2*time.Hour)),
			proxy: ago(time.Hour), status: &status{err: errors.New("connection refused")}, wantReason: "idle for 1h0m0s", wantProbe: true,
			wantErr: "connection refused"},
		{name: "failed stop is an error, not a cull", server: running("u", ago(2*time.Hour), ago(2*time.Hour)), proxy: ago(time.Hour),
			status: &status{last: ago(time.Hour)}, stopErr: errors.New("docker unavailable"), wantProbe: true, wantErr: "docker unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaults
			if tt.opts != nil {
				o = *tt.opts
			}
			o.Clock = func() time.Time { return now }
			prober := &fakeProber{status: map[string]status{}}
			if tt.status != nil {
				prober.status["u"] = *tt.status
			}
			act := fakeActivity{}
			if !tt.proxy.IsZero() {
				act["u"] = tt.proxy
			}
			stopper := &fakeStopper{fail: map[string]error{"u": tt.stopErr}}
			events := &eventLog{}
			c := lifecycle.NewCuller(fakeServers{tt.server}, act, prober, stopper, events, o)
			rep, err := c.Run(t.Context())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			reason, stopped := stopper.stopped["u"]
			switch {
			case tt.wantReason == "" && stopped:
				t.Errorf("stopped (%q), want kept", reason)
			case tt.wantReason != "" && !strings.Contains(reason, tt.wantReason):
				t.Errorf("stop reason = %q (stopped=%v), want it to contain %q", reason, stopped, tt.wantReason)
			}
			if probed := len(prober.asked) > 0; probed != tt.wantProbe {
				t.Errorf("server asked for its status: %v, want %v", probed, tt.wantProbe)
			}
			if tt.wantErr == "" && len(rep.Errors) > 0 || tt.wantErr != "" && !strings.Contains(rep.Errors["u"], tt.wantErr) {
				t.Errorf("report errors = %v, want %q", rep.Errors, tt.wantErr)
			}
			ev := events.all()
			if stopped {
				if len(rep.Culled) != 1 || len(ev) != 1 || ev[0].Kind != "cull" || ev[0].User != "u" || ev[0].Message != reason {
					t.Errorf("culled %v, events %+v: want one cull event with the reason", rep.Culled, ev)
				}
			} else if len(ev) != 0 || len(rep.Culled) != 0 {
				t.Errorf("culled %v, events %+v for a kept server", rep.Culled, ev)
			}
		})
	}
}

// gatedProber blocks every probe until released, recording the highest
// number of probes in flight.
type gatedProber struct {
	mu       sync.Mutex
	inFlight int
	max      int
	entered  chan struct{}
	release  chan struct{}
}

func (g *gatedProber) Status(ctx context.Context, addr, user, token string) (time.Time, int, error) {
	g.mu.Lock()
	g.inFlight++
	g.max = max(g.max, g.inFlight)
	g.mu.Unlock()
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
	return time.Time{}, 0, nil
}

func TestCullConcurrencyIsBounded(t *testing.T) {
	var servers fakeServers
	for _, u := range []string{"a", "b", "c", "d", "e", "f"} {
		servers = append(servers, running(u, ago(time.Hour), ago(time.Hour)))
	}
	g := &gatedProber{entered: make(chan struct{}, len(servers)), release: make(chan struct{})}
	stopper := &fakeStopper{}
	c := lifecycle.NewCuller(servers, fakeActivity{}, g, stopper, nil, lifecycle.CullOptions{
		Timeout: 15 * time.Minute, Concurrency: 2, Clock: func() time.Time { return now },
	})
	done := make(chan lifecycle.CullReport, 1)
	go func() { rep, _ := c.Run(t.Context()); done <- rep }()
	for range servers {
		<-g.entered
		g.release <- struct{}{}
	}
	rep := <-done
	if g.max > 2 {
		t.Errorf("%d probes ran at once, want at most 2", g.max)
	}
	if len(rep.Culled) != len(servers) || rep.Checked != len(servers) || rep.Probed != len(servers) {
		t.Errorf("report %+v, want all six checked, probed and culled", rep)
	}
}

// jupyter mimics a notebook server's /api/status and /api/kernels.
func jupyter(t *testing.T, user, token string, last time.Time, kernels []map[string]any) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	// Like Jupyter Server, any API request without no_track_activity counts
	// as activity, so a probe that forgets it keeps the server alive.
	var mu sync.Mutex
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "token "+token {
				http.Error(w, `{"message": "Forbidden", "reason": null}`, http.StatusForbidden)
				return
			}
			mu.Lock()
			if r.URL.Query().Get("no_track_activity") == "" {
				last = time.Now().UTC()
			}
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			h(w, r)
		}
	}
	mux.HandleFunc("GET /user/"+user+"/api/status", auth(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{
			"started":       "2025-05-01T08:00:00.000000Z",
			"last_activity": last.Format("2006-01-02T15:04:05.000000Z"),
			"connections":   0,
			"kernels":       len(kernels),
		})
	}))
	mux.HandleFunc("GET /user/"+user+"/api/kernels", auth(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(kernels)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func kernel(state string, last time.Time) map[string]any {
	return map[string]any{
		"id": "5f0f1c2e-1b1e-4e6a-9a57-3c9a4f6f0f0f", "name": "python3", "execution_state": state,
		"connections": 1, "last_activity": last.Format("2006-01-02T15:04:05.000000Z"),
	}
}

func TestHTTPStatusProber(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		kernels  []map[string]any
		wantLast time.Time
		wantBusy int
		wantErr  string
	}{
		{name: "no kernels", token: "secret", kernels: []map[string]any{}, wantLast: ago(time.Hour)},
		{name: "idle kernel with later activity", token: "secret", kernels: []map[string]any{kernel("idle", ago(10*time.Minute))}, wantLast: ago(10 * time.Minute)},
		{name: "one busy kernel", token: "secret", kernels: []map[string]any{kernel("idle", ago(2*time.Hour)), kernel("busy", ago(2*time.Hour))}, wantLast: ago(time.Hour), wantBusy: 1},
		{name: "kernel still reported starting", token: "secret", kernels: []map[string]any{kernel("starting", ago(2*time.Hour))}, wantLast: ago(time.Hour), wantBusy: 1},
		{name: "wrong token", token: "guess", kernels: []map[string]any{}, wantErr: "403"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := jupyter(t, "alice", "secret", ago(time.Hour), tt.kernels)
			p := lifecycle.NewHTTPStatusProber(srv.Client())
			last, busy, err := p.Status(t.Context(), srv.Listener.Addr().String(), "alice", tt.token)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !last.Equal(tt.wantLast) || busy != tt.wantBusy {
				t.Errorf("Status = %s, %d busy; want %s, %d", last, busy, tt.wantLast, tt.wantBusy)
			}
		})
	}
}

func TestHTTPStatusProberUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, _, err := lifecycle.NewHTTPStatusProber(nil).Status(t.Context(), addr, "alice", "x"); err == nil {
		t.Error("Status of a closed port succeeded")
	}
}

// TestCullerWithRealHTTP runs a cull cycle against two fake Jupyter servers:
// one whose kernel is busy (kept) and one idle (culled).
func TestCullerWithRealHTTP(t *testing.T) {
	busy := jupyter(t, "busy", "t1", ago(time.Hour), []map[string]any{kernel("busy", ago(time.Hour))})
	idle := jupyter(t, "idle", "t2", ago(time.Hour), []map[string]any{kernel("idle", ago(time.Hour))})
	servers := fakeServers{
		{User: "busy", State: "running", Started: ago(2 * time.Hour), Ready: ago(2 * time.Hour), Addr: busy.Listener.Addr().String(), Token: "t1"},
		{User: "idle", State: "running", Started: ago(2 * time.Hour), Ready: ago(2 * time.Hour), Addr: idle.Listener.Addr().String(), Token: "t2"},
	}
	stopper := &fakeStopper{}
	c := lifecycle.NewCuller(servers, fakeActivity{}, lifecycle.NewHTTPStatusProber(nil), stopper, nil, lifecycle.CullOptions{
		Timeout: 15 * time.Minute, BusyIsActive: true, CullAdmins: true, Clock: func() time.Time { return now },
	})
	rep, err := c.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var culled []string
	for u := range stopper.stopped {
		culled = append(culled, u)
	}
	if !slices.Equal(culled, []string{"idle"}) || len(rep.Errors) != 0 {
		t.Errorf("culled %v (errors %v), want only idle", culled, rep.Errors)
	}
}

type fakeSpares map[string]time.Time

func (f fakeSpares) Spared(context.Context) (map[string]time.Time, error) { return f, nil }

// TestCullSparesPreStartedServersUntilTheirGraceEnds: a server started
// ahead of a lecture sits idle until its student comes; the culler leaves
// it alone until the grace after the lecture start, then judges it like
// any other.
func TestCullSparesPreStartedServersUntilTheirGraceEnds(t *testing.T) {
	servers := fakeServers{running("pre", ago(time.Hour), ago(time.Hour)), running("other", ago(time.Hour), ago(time.Hour))}
	spares := fakeSpares{"pre": now.Add(10 * time.Minute)}
	for _, tt := range []struct {
		at   time.Time
		want []string
	}{
		{now, []string{"other"}},
		{now.Add(11 * time.Minute), []string{"pre"}},
	} {
		stopper := &fakeStopper{}
		if tt.at.After(now) {
			servers = servers[:1]
		}
		c := lifecycle.NewCuller(servers, fakeActivity{}, nil, stopper, nil, lifecycle.CullOptions{
			Timeout: 15 * time.Minute, Spares: spares, Clock: func() time.Time { return tt.at }})
		rep, err := c.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for u := range stopper.stopped {
			got = append(got, u)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("at %s: culled %v, want %v (report %+v)", tt.at.Format(time.Kitchen), got, tt.want, rep)
		}
	}
}
