package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/metrics"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/hub/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics handler: %d", rec.Code)
	}
	return rec.Body.String()
}

func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(body, "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
}

func TestCountersAndGauges(t *testing.T) {
	running, sockets := 7, 3
	m := metrics.New(metrics.Options{
		RunningServers: func() int { return running },
		OpenWebsockets: func() int { return sockets },
		WorkspaceBytes: func() map[string]int64 { return map[string]int64{"alice": 3 << 20, "bob": 4096} },
		DockerRequests: func() uint64 { return 42 },
	})
	m.SpawnFinished(4*time.Second, "")
	m.SpawnFinished(2*time.Minute, "the server did not become ready within 2m0s")
	m.SpawnFinished(time.Second, "No such image: swarmhub/does-not-exist:nope")
	m.CullStopped(2)
	m.CullStopped(0)
	m.ArchiveFinished(true, 1000)
	m.ArchiveFinished(false, 0)
	m.Login(metrics.LoginSuccess)
	m.Login(metrics.LoginBadCredentials)
	m.Login(metrics.LoginBadCredentials)
	body := scrape(t, m)
	wantLines(t, body,
		"swarmhub_running_servers 7",
		"swarmhub_open_websockets 3",
		"swarmhub_docker_requests_total 42",
		`swarmhub_spawn_duration_seconds_count{outcome="ready"} 1`,
		`swarmhub_spawn_duration_seconds_count{outcome="failed"} 2`,
		`swarmhub_spawn_failures_total{reason="timeout"} 1`,
		`swarmhub_spawn_failures_total{reason="image"} 1`,
		`swarmhub_spawn_failures_total{reason="mount"} 0`,
		"swarmhub_culled_servers_total 2",
		`swarmhub_archives_total{result="ok"} 1`,
		`swarmhub_archives_total{result="error"} 1`,
		"swarmhub_archive_bytes_total 1000",
		`swarmhub_logins_total{outcome="success"} 1`,
		`swarmhub_logins_total{outcome="bad_credentials"} 2`,
		`swarmhub_logins_total{outcome="banned"} 0`,
		`swarmhub_workspace_bytes{user="alice"} 3.145728e+06`,
		`swarmhub_workspace_bytes{user="bob"} 4096`,
	)
	running = 9
	wantLines(t, scrape(t, m), "swarmhub_running_servers 9")
}

func TestWrapProxyCountsByStatusClassAndKeepsHijack(t *testing.T) {
	m := metrics.New(metrics.Options{})
	h := m.WrapProxy(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/user/a/ok":
			_, _ = io.WriteString(w, "hi")
		case "/user/a/missing":
			http.Error(w, "no", http.StatusNotFound)
		case "/user/a/bad":
			w.WriteHeader(http.StatusBadGateway)
		case "/user/a/ws":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack through the wrapper: %v", err)
				return
			}
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			conn.Close()
		}
	}))
	ts := httptest.NewServer(h)
	defer ts.Close()
	for _, p := range []string{"/user/a/ok", "/user/a/ok", "/user/a/missing", "/user/a/bad"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", ts.URL+"/user/a/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade through the wrapper: %d", resp.StatusCode)
	}
	resp.Body.Close()
	body := scrape(t, m)
	wantLines(t, body,
		`swarmhub_proxy_requests_total{code="2xx"} 2`,
		`swarmhub_proxy_requests_total{code="4xx"} 1`,
		`swarmhub_proxy_requests_total{code="5xx"} 1`,
		`swarmhub_proxy_requests_total{code="1xx"} 1`,
		`swarmhub_proxy_request_duration_seconds_count{code="2xx"} 2`,
	)
}

func BenchmarkWrapProxy(b *testing.B) {
	m := metrics.New(metrics.Options{})
	h := m.WrapProxy(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	req := httptest.NewRequest("GET", "/user/a/", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

func TestLectureGauges(t *testing.T) {
	ready := false
	m := metrics.New(metrics.Options{Lecture: func() (metrics.Lecture, bool) {
		return metrics.Lecture{NodeFit: map[string]int{"node1": 3, "node2": 0}, Fit: 3, Waiting: 4, Starting: 2, Bound: 2}, ready
	}})
	if body := scrape(t, m); strings.Contains(body, "swarmhub_capacity") {
		t.Error("capacity gauges before the first reading")
	}
	ready = true
	wantLines(t, scrape(t, m),
		`swarmhub_capacity_servers{node="node1"} 3`,
		`swarmhub_capacity_servers{node="node2"} 0`,
		"swarmhub_capacity_servers_total 3",
		"swarmhub_start_line_waiting 4",
		"swarmhub_starts_in_flight 2",
		"swarmhub_starts_in_flight_bound 2",
	)
}
