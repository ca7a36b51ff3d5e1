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
