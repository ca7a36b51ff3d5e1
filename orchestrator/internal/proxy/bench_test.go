package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
)

// BenchmarkProxyHTTP measures a small Jupyter-style API GET against an
// upstream directly and through the proxy, in the same run, so the ns/op
// figures give the proxy's throughput ratio and added latency. "bare" is a
// plain httputil.ReverseProxy with the same transport: the floor any Go
// proxy pays, which separates this package's own cost from HTTP's. Client,
// proxy and upstream share the machine's cores here, so the ratio is far
// below what a proxy in front of a real (Python) Jupyter server shows.
// "proxied-post" is a same-origin POST, which passes the Origin check; the
// proxy runs with the default per-user caps; "lane" is the proxy behind its
// lane (as served on plain HTTP). The "one-conn" variants send
// one request at a time over one keep-alive connection.
func BenchmarkProxyHTTP(b *testing.B) {
	body := []byte(`{"started":"2025-01-06T09:00:00Z","last_activity":"2025-01-06T09:01:00Z","connections":1,"kernels":1}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer up.Close()
	res := &fakeResolver{addr: map[string]string{"alice": up.Listener.Addr().String()}}
	p := proxy.New(identities, res, &fakeActivity{}, nil, proxy.Options{CookieName: hubCookie, ServerCookieName: accessCookie, Logger: quiet, Namer: namer,
		MaxWebsockets: 64, MaxRequests: 128})
	front := httptest.NewServer(p)
	defer front.Close()
	// lane serves the same proxy through its lane, as cmd/orchestrator does
	// on plain HTTP.
	lane := httptest.NewUnstartedServer(p)
	lane.Listener = p.Lane(lane.Listener, proxy.LaneOptions{})
	lane.Start()
	defer lane.Close()
	target, _ := url.Parse(up.URL)
	bareRP := httputil.NewSingleHostReverseProxy(target)
	bareRP.Transport = proxy.NewTransport()
	bare := httptest.NewServer(bareRP)
	defer bare.Close()

	// one sends requests one after another on one keep-alive connection
	// (the latency a single browser tab sees); otherwise in parallel.
	run := func(b *testing.B, method, base string, one bool) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		target := base + "/user/alice/api/status"
		b.ReportAllocs()
		loop := func(next func() bool) {
			req, _ := http.NewRequest(method, target, nil)
			req.Header.Set("Cookie", "_xsrf=2|abcdef; "+accessCookie+"=s-alice")
			req.Header.Set("Origin", base)
			for next() {
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
		}
		if one {
			loop(b.Loop)
			return
		}
		b.RunParallel(func(pb *testing.PB) { loop(pb.Next) })
	}
	for _, one := range []bool{false, true} {
		pre := ""
		if one {
			pre = "one-conn/"
		}
		b.Run(pre+"direct", func(b *testing.B) { run(b, http.MethodGet, up.URL, one) })
		b.Run(pre+"bare", func(b *testing.B) { run(b, http.MethodGet, bare.URL, one) })
		b.Run(pre+"proxied", func(b *testing.B) { run(b, http.MethodGet, front.URL, one) })
		b.Run(pre+"proxied-post", func(b *testing.B) { run(b, http.MethodPost, front.URL, one) })
		b.Run(pre+"lane", func(b *testing.B) { run(b, http.MethodGet, lane.URL, one) })
	}
}
