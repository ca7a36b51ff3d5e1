package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/accesscookie"
	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/httpguard"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
	"github.com/swarmhub/swarmhub/orchestrator/internal/sessioncache"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// This file wires the real web.Server, the real proxy.Proxy, the real
// session cache and a real Redis the way cmd/orchestrator/serve.go does, with
// only the spawner replaced (the upstream Jupyter server is an httptest
// server that reports what reached it; it is not the subject here).

const (
	hubCookieName    = "swarmhub-session"
	accessCookieName = "swarmhub-session-server"
	realPassword     = "real-hub-password"
)

var errRealNotRunning = errors.New("server not running")

// newHubHTTPServer serves h with the orchestrator's own http.Server
// settings (httpguard.NewServer with the default limits, as cmd/orchestrator uses).
func newHubHTTPServer(h http.Handler, errLog io.Writer) *httptest.Server {
	ts := httptest.NewUnstartedServer(h)
	l := config.Default().Listen
	ts.Config = httpguard.NewServer(h, httpguard.Limits{ReadHeaderTimeout: l.ReadHeaderTimeout, IdleTimeout: l.IdleTimeout, MaxHeaderBytes: int(l.MaxHeaderBytes)},
		stdlog.New(errLog, "http.Server: ", 0))
	ts.Start()
	return ts
}

// realServers stands in for the spawner: Start records a starting server.
type realServers struct{ st *store.Store }

func (f realServers) Start(ctx context.Context, user string, so spawner.StartOptions) (store.Server, error) {
	srv := store.Server{User: user, State: "starting", Requested: time.Now().UTC()}
	return srv, f.st.PutServer(ctx, srv)
}

func (f realServers) Stop(ctx context.Context, user, reason string) error {
	err := f.st.DeleteServer(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// realResolver sends every user to the one upstream, except users listed as
// not running.
type realResolver struct {
	addr       string
	mu         sync.Mutex
	notRunning map[string]bool
}

func (r *realResolver) Target(ctx context.Context, user string) (string, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notRunning[user] {
		return "", "", errRealNotRunning
	}
	return r.addr, "server-token-of-" + user, nil
}

func (r *realResolver) Forget(string) {}

// upstreamSeen is what the fake Jupyter server reports about a request.
type upstreamSeen struct {
	Path          string `json:"path"`
	Authorization string `json:"authorization"`
	Cookie        string `json:"cookie"`
}

// newUpstream is the stand-in Jupyter server: plain requests get a JSON
// report of what arrived; websocket upgrades are accepted by hand (101, then
// the connection idles until the other side closes it), so that each idle
// websocket costs the upstream side one goroutine and little memory.
func newUpstream(t testing.TB) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
			_ = brw.Flush()
			_, _ = io.Copy(io.Discard, brw)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(upstreamSeen{Path: r.URL.EscapedPath(), Authorization: r.Header.Get("Authorization"), Cookie: r.Header.Get("Cookie")})
	}))
	t.Cleanup(up.Close)
	return up
}

// realHub is one in-process orchestrator front.
type realHub struct {
	ts       *httptest.Server
	srv      *web.Server
	px       *proxy.Proxy
	st       *store.Store
	rdb      *redis.Client
	resolver *realResolver
	logs     *testsupport.Buffer
	sessions *sessioncache.Cache
	access   *web.AccessCookies
}

type hubConfig struct {
	adminAccess bool
	rdb         *redis.Client // share one Redis between hubs; nil: a fresh one
	upstream    *httptest.Server
	secure      bool // as under TLS: Secure cookies, HSTS
}

func newRealHub(t testing.TB, cfg hubConfig) *realHub {
	t.Helper()
	rdb := cfg.rdb
	if rdb == nil {
		rdb = testenv.RedisClient(t)
	}
	up := cfg.upstream
	if up == nil {
		up = newUpstream(t)
	}
	st := store.New(rdb, "hub:")
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testsupport.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	for _, u := range []store.User{{Name: "alice", Allowed: true}, {Name: "bob", Allowed: true}, {Name: "admin", Admin: true, Allowed: true}} {
		if err := st.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	hubCookie, accessCookie := web.CookieNames("swarmhub-session", cfg.secure)
	// Every hub on one Redis shares its key, as replicas do.
	access := &web.AccessCookies{Name: accessCookie, Secure: cfg.secure, Signer: &accesscookie.Signer{}}
	key, err := st.AccessCookieKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := access.Signer.SetKey(key); err != nil {
		t.Fatal(err)
	}
	sessions := sessioncache.New(st, 8*time.Hour, 168*time.Hour, 30*time.Second, hubCookie)
	res := &realResolver{addr: strings.TrimPrefix(up.URL, "http://"), notRunning: map[string]bool{}}
	px := proxy.New(web.ProxyIdentifier{Cache: sessions, Access: access}, res, nil, nil, proxy.Options{
		AdminAccess:      cfg.adminAccess,
		CookieName:       hubCookie,
		ServerCookieName: accessCookie,
		Logger:           log.With("component", "proxy"),
		ErrNotRunning:    errRealNotRunning,
		Namer:            namer,
	})
	srv := web.New(web.Options{
		Version:       "test",
		CookieName:    hubCookie,
		AdminAccess:   cfg.adminAccess,
		SecureCookies: cfg.secure,
		TLS:           cfg.secure,
		Logger:        log.With("component", "web"),
	}, web.Deps{
		Store:     st,
		Auth:      auth.NewDummy(realPassword, namer, log),
		Policy:    auth.NewPolicy(false),
		Regulator: auth.NewRegulator(st, auth.RegulationOptions{MaxFailures: 1000, Window: time.Minute, Ban: time.Minute}),
		Namer:     namer,
		Servers:   realServers{st},
		Proxy:     px,
		Sessions:  sessions,
		Access:    access,
	})
	ts := newHubHTTPServer(srv, logs)
	t.Cleanup(ts.Close)
	return &realHub{ts: ts, srv: srv, px: px, st: st, rdb: rdb, resolver: res, logs: logs, sessions: sessions, access: access}
}

// session creates a live session for user directly in Redis.
func (h *realHub) session(t testing.TB, user string) store.Session {
	t.Helper()
	s, err := h.st.CreateSession(context.Background(), user, 8*time.Hour, 168*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawExchange sends raw bytes on a fresh TCP connection and reads one
// response. It returns nil and the read error when the server closed the
// connection without answering.
func (h *realHub) rawExchange(t testing.TB, raw string) (*http.Response, string, error) {
	t.Helper()
	conn, err := net.Dial("tcp", h.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b), nil
}

// accessCookie gets the access cookie for server through the hub, as a
// browser does after the proxy's redirect, for the session with id sid. It
// returns nil when the hub sets none, with the hub's answer.
func (h *realHub) accessCookie(t testing.TB, sid, server string) (*http.Cookie, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+"/hub/user-cookie?next="+url.QueryEscape("/user/"+server+"/tree"), nil)
	req.Header.Set("Accept", "text/html")
	if sid != "" {
		req.AddCookie(&http.Cookie{Name: hubCookieName, Value: sid})
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == accessCookieName && c.MaxAge >= 0 {
			return c, resp
		}
	}
	return nil, resp
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
