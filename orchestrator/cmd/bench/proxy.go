package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
)

// proxyTarget is one user server, reachable directly and through the hub.
type proxyTarget struct {
	label string
	user  string
	s     *session
	addr  string // task ip:port
	token string // the server token; "" for a server that authenticates through the hub
}

func (e *env) proxyTargets(ctx context.Context) ([]proxyTarget, error) {
	img, err := e.debianImage()
	if err != nil {
		return nil, err
	}
	var out []proxyTarget
	for _, t := range []struct{ label, user, image string }{
		{"tinynotebook", "pxtiny", ""},
		{"notebook-debian", "pxdebian", img},
	} {
		s, err := e.ensureServer(ctx, t.user, t.image)
		if err != nil {
			return nil, err
		}
		if err := s.serverAccess(ctx, t.user); err != nil {
			return nil, err
		}
		addr, token, err := e.serverTarget(ctx, t.user)
		if err != nil {
			return nil, err
		}
		out = append(out, proxyTarget{label: t.label, user: t.user, s: s, addr: addr, token: token})
	}
	return out, nil
}

func (t proxyTarget) directReq(path string) func(context.Context) *http.Request {
	return t.viaReq(t.addr, path)
}

// viaReq is directReq sent to addr (a relay in front of the server).
func (t proxyTarget) viaReq(addr, path string) func(context.Context) *http.Request {
	url := "http://" + addr + "/user/" + t.user + path
	return func(ctx context.Context) *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		r.Header.Set("Authorization", "token "+t.token)
		return r
	}
}

func (t proxyTarget) proxiedReq(path string) func(context.Context) *http.Request {
	url := t.s.base + "/user/" + t.user + path
	cookie := t.s.cookiesFor("/user/" + t.user + "/")
	return func(ctx context.Context) *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		r.Header.Set("Cookie", cookie)
		return r
	}
}

// suiteProxy: GET /user/NAME/api/status directly vs through the hub.
func (e *env) suiteProxy(ctx context.Context) ([]table, error) {
	targets, err := e.proxyTargets(ctx)
	if err != nil {
		return nil, err
	}
	t := table{Title: "Proxy, HTTP: GET /user/NAME/api/status, direct to the server's task IP vs through the orchestrator",
		Head: []string{"server", "conns", "direct req/s", "proxied req/s", "throughput ratio", "direct p50", "proxied p50", "added p50", "direct p99", "proxied p99", "added p99", "errors d/p"}}
	for _, tg := range targets {
		for _, conns := range []int{1, 16, 64} {
			// Warm both paths: connection pools, session cache, address cache.
			httpLoad(ctx, conns, 300*time.Millisecond, 0, tg.directReq("/api/status"))
			httpLoad(ctx, conns, 300*time.Millisecond, 0, tg.proxiedReq("/api/status"))
			d, p := httpLoadAlternating(ctx, conns, e.o.Duration, 4, tg.directReq("/api/status"), tg.proxiedReq("/api/status"))
			t.add(tg.label, fmt.Sprint(conns), fmt.Sprintf("%.0f", d.RPS), fmt.Sprintf("%.0f", p.RPS), ratio(p.RPS, d.RPS),
				ms(d.Lat.P50), ms(p.Lat.P50), signed(p.Lat.P50-d.Lat.P50), ms(d.Lat.P99), ms(p.Lat.P99), signed(p.Lat.P99-d.Lat.P99),
				fmt.Sprintf("%d/%d", d.Errors, p.Errors))
			if d.FirstErr != "" || p.FirstErr != "" {
				t.Notes = append(t.Notes, fmt.Sprintf("%s at %d: first errors: direct %q, proxied %q", tg.label, conns, d.FirstErr, p.FirstErr))
			}
		}
	}
	t.Notes = append(t.Notes, fmt.Sprintf("Closed loop: each connection sends its next request when the previous answer is read; %s per side and level, in four blocks that alternate between the sides, after a 0.3 s warm-up. Direct requests carry the server token; proxied ones only the session cookie (the proxy injects the token). Load generator, orchestrator and servers share this machine's 2 cores, so the ratio is a floor for a proxy on its own node.", e.o.Duration))
	if e.o.Relay == "" {
		return []table{t}, nil
	}
	hops, err := e.proxyHops(ctx, targets)
	if err != nil {
		return nil, err
	}
	return []table{t, hops}, nil
}

// proxyHops decomposes the one-connection cost of the proxy: the same
// request direct, through a byte-copying TCP relay and a plain
// httputil.ReverseProxy (both in the relay container, on the same network
// as the orchestrator), and through swarmhub, in rotating blocks.
func (e *env) proxyHops(ctx context.Context, targets []proxyTarget) (table, error) {
	t := table{Title: "Proxy, HTTP at one connection: the extra hop decomposed (GET /user/NAME/api/status)",
		Head: []string{"server", "path", "req/s", "ratio to direct", "p50", "added p50", "p99", "added p99", "errors"}}
	ips, err := net.DefaultResolver.LookupHost(ctx, e.o.Relay)
	if err != nil || len(ips) == 0 {
		return t, fmt.Errorf("relay %s: %w", e.o.Relay, err)
	}
	relay := func(port int) string { return net.JoinHostPort(ips[0], fmt.Sprint(port)) }
	names := []string{"direct", "TCP relay (bytes copied)", "plain httputil.ReverseProxy",
		"plain ReverseProxy, the browser's cookies", "plain ReverseProxy, FlushInterval −1",
		"plain ReverseProxy, transport on the handler's goroutine",
		"lean HTTP/1.1 forwarder (one goroutine per connection)", "swarmhub"}
	for _, tg := range targets {
		if err := setRelayTarget(ctx, ips[0], tg.addr); err != nil {
			return t, err
		}
		withCookies := tg.viaReq(relay(relayHTTPPort), "/api/status")
		cookie := tg.s.cookiesFor("/user/" + tg.user + "/")
		sides := []func(context.Context) *http.Request{
			tg.directReq("/api/status"),
			tg.viaReq(relay(relayTCPPort), "/api/status"),
			tg.viaReq(relay(relayHTTPPort), "/api/status"),
			func(ctx context.Context) *http.Request {
				r := withCookies(ctx)
				r.Header.Set("Cookie", cookie)
				return r
			},
			tg.viaReq(relay(relayHTTPFlushPort), "/api/status"),
			tg.viaReq(relay(relayHTTPSyncPort), "/api/status"),
			tg.viaReq(relay(relayLeanPort), "/api/status"),
			tg.proxiedReq("/api/status"),
		}
		for _, mk := range sides {
			httpLoad(ctx, 1, 300*time.Millisecond, 0, mk)
		}
		rs := httpLoadRotating(ctx, 1, e.o.Duration, 4, sides...)
		d := rs[0]
		for i, r := range rs {
			t.add(tg.label, names[i], fmt.Sprintf("%.0f", r.RPS), ratio(r.RPS, d.RPS), ms(r.Lat.P50), signed(r.Lat.P50-d.Lat.P50),
				ms(r.Lat.P99), signed(r.Lat.P99-d.Lat.P99), fmt.Sprint(r.Errors))
			if r.FirstErr != "" {
				t.Notes = append(t.Notes, fmt.Sprintf("%s via %s: first error %q", tg.label, names[i], r.FirstErr))
			}
		}
	}
	t.Notes = append(t.Notes, fmt.Sprintf("One keep-alive connection per side, %s per side in four rotating blocks after a 0.3 s warm-up. The relays run in their own container (`bench relay`) on the same overlay network as the orchestrator: the TCP relay copies bytes (the cost of a second hop alone), the plain ReverseProxy parses and forwards HTTP with Go's default transport (the floor of any Go HTTP proxy). Relay requests carry the server token like direct ones; \"the browser's cookies\" adds the Cookie header the swarmhub side sends (Jupyter's own cookies among them), \"FlushInterval −1\" flushes each answer's header on its own (swarmhub's proxy before issue 15); \"transport on the handler's goroutine\" replaces http.Transport's per-connection read and write goroutines; the lean forwarder reads each request and answer with net/http's parsers on the connection's own goroutine (no server or transport goroutines).", e.o.Duration))
	return t, nil
}

// suiteWS: websocket round trips directly and through the hub.
func (e *env) suiteWS(ctx context.Context) ([]table, error) {
	targets, err := e.proxyTargets(ctx)
	if err != nil {
		return nil, err
	}
	t := table{Title: "Proxy, websocket: round trips direct vs through the orchestrator",
		Head: []string{"exchange", "round trips per side", "direct p50", "proxied p50", "added p50", "direct p99", "proxied p99", "added p99"}}
	for _, tg := range targets {
		var n int
		var exch func(context.Context, *websocket.Conn) error
		var path string
		switch tg.label {
		case "notebook-debian":
			ks := kernelServer(tg)
			id, err := ks.StartKernel(ctx)
			if err != nil {
				return nil, err
			}
			defer ks.DeleteKernel(context.WithoutCancel(ctx), id)
			path = "/api/kernels/" + id + "/channels"
			exch = kernelExchange("bench")
			n = e.o.WSRounds
		default:
			path = "/echo"
			exch = echoExchange
			n = e.o.WSRounds * 5
		}
		direct, proxied, err := e.wsCompare(ctx, tg, path, n, exch)
		if err != nil {
			return nil, fmt.Errorf("%s websocket: %w", tg.label, err)
		}
		d, p := summarize(direct), summarize(proxied)
		name := "tinynotebook echo (pure proxy)"
		if tg.label == "notebook-debian" {
			name = "kernel execute_request 1+1 → reply + idle (notebook-debian)"
		}
		t.add(name, fmt.Sprint(n), ms(d.P50), ms(p.P50), signed(p.P50-d.P50), ms(d.P99), ms(p.P99), signed(p.P99-d.P99))
	}
	t.Notes = append(t.Notes, "One websocket per side, sequential round trips; the sides alternate in four blocks so that drift hits both. Direct: the server token in Authorization; proxied: the session cookie and the hub's Origin, as a browser sends them.")
	return []table{t}, nil
}

func (e *env) wsCompare(ctx context.Context, tg proxyTarget, path string, n int, exch func(context.Context, *websocket.Conn) error) (direct, proxied []time.Duration, err error) {
	dial := func(viaHub bool) (*websocket.Conn, error) {
		h := http.Header{}
		var url string
		if viaHub {
			url = "ws" + strings.TrimPrefix(tg.s.base, "http") + "/user/" + tg.user + path
			h.Set("Cookie", tg.s.cookiesFor("/user/"+tg.user+path))
			h.Set("Origin", tg.s.base)
		} else {
			url = "ws://" + tg.addr + "/user/" + tg.user + path
			if tg.token != "" {
				h.Set("Authorization", "token "+tg.token)
			} else {
				// A server that logs students in itself (OAuth) knows them by
				// the cookie it set; it asks the hub about it once and caches.
				h.Set("Cookie", tg.s.cookiesFor("/user/"+tg.user+path))
			}
		}
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			if resp != nil {
				return nil, fmt.Errorf("dial %s: %w (status %d)", url, err, resp.StatusCode)
			}
			return nil, fmt.Errorf("dial %s: %w", url, err)
		}
		c.SetReadLimit(1 << 22)
		return c, nil
	}
	dc, err := dial(false)
	if err != nil {
		return nil, nil, err
	}
	defer dc.CloseNow()
	pc, err := dial(true)
	if err != nil {
		return nil, nil, err
	}
	defer pc.CloseNow()
	// Warm-up: the kernel's first execution is slow.
	for _, c := range []*websocket.Conn{dc, pc} {
		if _, err := wsRoundTrips(ctx, c, 10, exch); err != nil {
			return nil, nil, err
		}
	}
	const blocks = 4
	per := n / blocks
	for i := 0; i < blocks; i++ {
		d, err := wsRoundTrips(ctx, dc, per, exch)
		if err != nil {
			return nil, nil, err
		}
		direct = append(direct, d...)
		p, err := wsRoundTrips(ctx, pc, per, exch)
		if err != nil {
			return nil, nil, err
		}
		proxied = append(proxied, p...)
	}
	return direct, proxied, nil
}

// kernelServer is tg's Jupyter server reached directly with its token.
func kernelServer(tg proxyTarget) kernelclient.Server {
	return kernelclient.Server{URL: "http://" + tg.addr + "/user/" + tg.user,
		Header: http.Header{"Authorization": {"token " + tg.token}}}
}
