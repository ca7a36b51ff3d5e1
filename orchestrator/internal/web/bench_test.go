package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// BenchmarkDashboardLatency measures /hub/admin and GET /hub/api/users?limit=100
// with 5,000 users and 100 running servers in a real Redis, over HTTP with
// an admin session, and reports p50 and p99 (ms). Measured, not asserted:
//
//	go test ./orchestrator/internal/web/ -run '^$' -bench DashboardLatency -benchtime 300x
func BenchmarkDashboardLatency(b *testing.B) {
	users := 5000
	if v, err := strconv.Atoi(os.Getenv("SWARMHUB_BENCH_USERS")); err == nil && v > 0 {
		users = v
	}
	e := newDashEnvTB(b)
	seedUsers(b, e.st, users, 100, imgOld)
	cookie := adminCookie(b, e)
	for _, path := range []string{"/hub/admin", "/hub/api/users?limit=100", "/hub/admin?q=user-04&sort=-last_activity&offset=100"} {
		b.Run(path, func(b *testing.B) {
			client := &http.Client{}
			var lat []time.Duration
			for b.Loop() {
				req, _ := http.NewRequestWithContext(context.Background(), "GET", e.ts.URL+path, nil)
				req.Header.Set("Cookie", cookie)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(start))
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d", path, resp.StatusCode)
				}
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.Logf("%s with %d users: p50 %.1f ms, p99 %.1f ms over %d requests", path, users, pct(.5), pct(.99), len(lat))
		})
	}
}

func adminCookie(tb testing.TB, e *dashEnv) string {
	tb.Helper()
	sess, err := e.st.CreateSession(context.Background(), "admin", time.Hour, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("swarmhub-session=%s", sess.ID)
}

// BenchmarkProxiedRequest measures GET /user/alice/api/status through the
// real hub front, proxy and session cache with a browser's access cookie
// (signature, expiry and the cached session checked per request; no Redis
// call once warm), against the stand-in upstream.
func BenchmarkProxiedRequest(b *testing.B) {
	h := newRealHub(b, hubConfig{})
	sess, err := h.st.CreateSession(context.Background(), "alice", time.Hour, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ac, _ := h.accessCookie(b, sess.ID, "alice")
	if ac == nil {
		b.Fatal("no access cookie")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, h.ts.URL+"/user/alice/api/status", nil)
		req.Header.Set("Cookie", "_xsrf=2|abcdef; "+ac.Name+"="+ac.Value)
		for pb.Next() {
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkIdentify is the per-request identity check alone, warm: the
// proxy's access-cookie path (signature, expiry, cached session) beside the
// hub cookie's (the cached session only), which is what the proxy checked
// before access cookies.
func BenchmarkIdentify(b *testing.B) {
	h := newRealHub(b, hubConfig{})
	sess, err := h.st.CreateSession(context.Background(), "alice", time.Hour, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ac, _ := h.accessCookie(b, sess.ID, "alice")
	id := web.ProxyIdentifier{Cache: h.sessions, Access: h.access}
	b.Run("access-cookie", func(b *testing.B) {
		r, _ := http.NewRequest(http.MethodGet, "/user/alice/api/status", nil)
		r.Header.Set("Cookie", "_xsrf=2|abcdef; "+ac.Name+"="+ac.Value)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := id.Identify(r, "alice"); !ok {
				b.Fatal("not identified")
			}
		}
	})
	b.Run("hub-cookie", func(b *testing.B) {
		r, _ := http.NewRequest(http.MethodGet, "/hub/home", nil)
		r.Header.Set("Cookie", "_xsrf=2|abcdef; "+hubCookieName+"="+sess.ID)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := h.sessions.Identify(r); !ok {
				b.Fatal("not identified")
			}
		}
	})
}
