// Package proxy forwards /user/NAME/... (HTTP and websockets) to NAME's
// Jupyter server. It decides who may pass, injects the server's token (when
// the server takes one), keeps the hub's own cookie away from user servers
// and counts activity, all without a Redis or Docker call per request:
// identities and addresses come from caches owned by the caller.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Identity is who a request belongs to, as the web layer's session and token
// cache says.
type Identity struct {
	User  string
	Admin bool
	Via   string // "session" | "token"
	// Server, when set, is the one server this identity may reach: a
	// server's access cookie opens that server and no other.
	Server string
	// Renew, when set, replaces the request's access cookie (one past half
	// its life) on the answer.
	Renew *http.Cookie
	// Session names the login session the request came with (its hash,
	// store.HashSessionID, never the cookie value); empty for tokens. A
	// websocket remembers it so that logging that session out closes it
	// (CloseSession).
	Session string
}

// Identifier names the user behind a request to server's pages: by the
// server's access cookie (Options.ServerCookieName) or an API token.
// Implementations cache: the proxy calls it on every request.
type Identifier interface {
	Identify(r *http.Request, server string) (Identity, bool)
}

// MayAccess is who may use server's pages: its owner, or an admin when
// admin_access is on. The hub asks it before minting an access cookie, the
// proxy on every request.
func MayAccess(who Identity, server string, adminAccess bool) bool {
	return who.User == server || who.Admin && adminAccess
}

// Namer turns the name in a /user/NAME/ path into the canonical username
// (internal/identity implements it), so every spelling of a name reaches
// one server.
type Namer interface {
	Canonical(raw string) (string, error)
}

// Resolver finds a user's running server and the token to send it (empty:
// send none). Target is cached by the implementation; Forget drops the
// cached address after a failed connection.
type Resolver interface {
	Target(ctx context.Context, user string) (addr, token string, err error)
	Forget(user string)
}

// ActivityRecorder counts activity per user in memory.
type ActivityRecorder interface{ Touch(user string) }

// AccessRecorder records an admin reaching another user's server.
type AccessRecorder interface{ AdminAccess(admin, user string) }

// Options configure a Proxy.
type Options struct {
	AdminAccess bool   // admins may open every user's server
	CookieName  string // the hub's session cookie, never sent upstream
	HubPrefix   string // default "/hub/"
	Logger      *slog.Logger
	Transport   http.RoundTripper // default: a pooled transport for user servers
	// ErrNotRunning is the Resolver's sentinel for "this user's server is
	// not running"; matched with errors.Is.
	ErrNotRunning error
	Clock         func() time.Time // default time.Now
	Namer         Namer            // required

	// ServerCookieName is the servers' access cookie (scoped to
	// /user/NAME/): it identifies browsers here, is never sent upstream and
	// cannot be set by a user server.
	ServerCookieName string
	// PublicURL's origin and AllowedOrigins may send websocket upgrades
	// and unsafe methods, besides the origin each request is addressed to.
	PublicURL      string
	AllowedOrigins []string
	// Per-user caps on open websockets and on plain requests in flight;
	// 0 = no cap.
	MaxWebsockets int
	MaxRequests   int
}

// accessEvery bounds admin_access events to one per admin and user.
const accessEvery = time.Minute

// Proxy is the http.Handler for /user/.
type Proxy struct {
	id   Identifier
	res  Resolver
	act  ActivityRecorder
	acc  AccessRecorder
	o    Options
	log  *slog.Logger
	now  func() time.Time
	rp   *httputil.ReverseProxy
	ws   registry
	seen accessLog

	origins originPolicy
	limits  userLimits
	warned  sync.Map   // warnKey -> struct{}: what warnOnce logged
	up      *upstreams // connections of the default transport; nil with Options.Transport
}

type noActivity struct{}

func (noActivity) Touch(string) {}

type noAccess struct{}

func (noAccess) AdminAccess(string, string) {}

// New builds a Proxy. act and acc may be nil.
func New(id Identifier, res Resolver, act ActivityRecorder, acc AccessRecorder, o Options) *Proxy {
	if o.HubPrefix == "" {
		o.HubPrefix = "/hub/"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	var up *upstreams
	if o.Transport == nil {
		up = &upstreams{}
		o.Transport = newTransport(up)
	}
	if act == nil {
		act = noActivity{}
	}
	if acc == nil {
		acc = noAccess{}
	}
	p := &Proxy{id: id, res: res, act: act, acc: acc, o: o, log: o.Logger, now: o.Clock, up: up}
	p.origins = newOriginPolicy(o.PublicURL, o.AllowedOrigins)
	p.limits.maxWS, p.limits.maxReq = int32(o.MaxWebsockets), int32(o.MaxRequests)
	// No FlushInterval: ReverseProxy passes bytes on as they come for
	// streams anyway (text/event-stream, or no Content-Length, as Jupyter's
	// streamed answers have). For an answer of known length, -1 would flush
	// the header on its own from a timer goroutine before the body: a
	// second write and TCP segment per request.
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      o.Transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
		BufferPool:     bufferPool{},
	}
	return p
}

// upstreamUserTimeout bounds how long data sent to a user server may stay
// unacknowledged before the connection is dropped (TCP_USER_TIMEOUT): a
// live server's kernel acknowledges at once however busy Jupyter is, so
// only a dead peer reaches it. Swarm declares a lost node down after
// 12-15 s; a request stuck on it fails soon after, and the next one reaches
// the replacement server.
const upstreamUserTimeout = 20 * time.Second

// NewTransport returns the transport New uses by default: plain HTTP/1.1 to
// user servers on the overlay network, with enough idle connections per
// server that a class's worth of browser tabs never waits for a dial.
func NewTransport() *http.Transport { return newTransport(&upstreams{}) }

// newTransport is NewTransport with its connections tracked in up.
func newTransport(up *upstreams) *http.Transport {
	return &http.Transport{
		DialContext:         upstreamDialer(up),
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		// No ResponseHeaderTimeout: Jupyter legitimately takes long before
		// answering (nbconvert exports, large saves, kernel restarts); a
		// client that gives up cancels the request through its context.
		ExpectContinueTimeout: time.Second,
		// Pass the browser's Accept-Encoding through instead of having the
		// transport ask for gzip and unpack it again.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
}

// upstreamDialer dials user servers for the transport and the lane, with
// the connections tracked in up.
func upstreamDialer(up *upstreams) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return quickAckDialer(up.dialer((&net.Dialer{
		Timeout: 5 * time.Second, // a server that does not accept in 5 s is gone; Forget and re-resolve
		// A server whose node died never answers nor resets: without
		// these, a request already sent on a kept-alive connection (or
		// an open websocket) to it waited forever, long after the
		// server was running again elsewhere.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3},
		Control:         setUserTimeout,
	}).DialContext))
}

// upstream is the per-request state handed from ServeHTTP to the
// ReverseProxy callbacks through the request context.
type upstream struct {
	in      *http.Request // inbound request carrying this state, for the retry
	server  string
	addr    string
	token   string
	retried bool
	ww      wsWriter // used only for upgrade requests
}

type ctxKey struct{}

func upstreamOf(r *http.Request) *upstream {
	st, _ := r.Context().Value(ctxKey{}).(*upstream)
	return st
}

// ServeHTTP routes, authorises and forwards one request under /user/.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	adm, refuse := p.admit(r)
	if refuse != nil {
		refuse(w, r)
		return
	}
	defer release(adm.slot)
	st, who := adm.st, adm.who
	ctx := context.WithValue(r.Context(), ctxKey{}, st)
	if adm.upgrade {
		ctx = withQuickAck(ctx)
	}
	r = r.WithContext(ctx)
	st.in = r
	if adm.upgrade {
		st.ww = wsWriter{ResponseWriter: w, p: p, who: who.User, session: who.Session, server: st.server}
		w = &st.ww
	} else if who.Renew != nil {
		http.SetCookie(w, who.Renew)
	}
	p.rp.ServeHTTP(w, r)
}

// admission is a request ServeHTTP (or the lane) may forward: who sends
// it, where it goes and the per-user slot it holds until it is answered.
type admission struct {
	st      *upstream
	who     Identity
	slot    *atomic.Int32
	upgrade bool
}

// refusal writes the answer to a request that is not forwarded.
type refusal func(w http.ResponseWriter, r *http.Request)

// admit runs every check on a request to /user/: the path's spelling,
// planted cookies, identity, origin, access, the user's caps, and the
// server's address. It either admits the request (the caller releases
// adm.slot once it is answered) or returns the refusal to write.
func (p *Proxy) admit(r *http.Request) (adm admission, refuse refusal) {
	escaped := r.URL.EscapedPath()
	name, rest, ok := ParseUserPath(escaped)
	if !ok {
		return adm, errorAnswer(http.StatusBadRequest, "bad request path")
	}
	// One spelling per server: the canonical name, canonically escaped, with
	// the trailing slash Jupyter's base_url needs. Nothing is revealed by
	// this; a name no user can have has no server.
	user, err := p.o.Namer.Canonical(name)
	if err != nil {
		return adm, errorAnswer(http.StatusNotFound, "no such user")
	}
	seg := escaped[len(userPrefix) : len(escaped)-len(rest)]
	if canon := url.PathEscape(user); canon != seg || rest == "" {
		if rest == "" {
			rest = "/"
		}
		return adm, func(w http.ResponseWriter, r *http.Request) {
			p.redirect(w, r, userPrefix+canon+rest+querySuffix(r))
		}
	}

	for _, ck := range []string{p.o.CookieName, p.o.ServerCookieName} {
		if ck != "" && sessionCookies(r, ck) > 1 {
			return adm, refusalAnswer(http.StatusBadRequest, "refused: this request carries two "+ck+
				" cookies, one of them planted by another site; clear this site's cookies in your browser and log in again")
		}
	}
	who, ok := p.identify(r, name)
	if why := p.origins.crossOrigin(r, who.Via == "token"); ok && why != "" {
		return adm, refusalAnswer(http.StatusForbidden, "refused: "+why+"; open "+name+"'s server from the hub's own address "+
			"(an admin can allow another site in proxy.allowed_origins)")
	}
	switch {
	case !ok:
		if isNavigation(r) {
			// The hub checks its session, mints this server's access
			// cookie and sends the browser back (or to the login form).
			return adm, func(w http.ResponseWriter, r *http.Request) {
				p.redirect(w, r, p.o.HubPrefix+"user-cookie?next="+url.QueryEscape(escaped+querySuffix(r)))
			}
		}
		return adm, errorAnswer(http.StatusUnauthorized, "authentication required: log in at "+p.o.HubPrefix+"login or send an API token")
	case who.Server != "" && who.Server != name, !MayAccess(who, name, p.o.AdminAccess):
		return adm, errorAnswer(http.StatusForbidden, "you may not access the server of "+name)
	case who.User != name && p.seen.first(who.User, name, p.now()):
		p.acc.AdminAccess(who.User, name)
	}
	upgrade := r.Header.Get("Upgrade") != ""
	slot, ok := p.limits.acquire(who.User, upgrade)
	if !ok {
		return adm, func(w http.ResponseWriter, _ *http.Request) { p.tooMany(w, who.User, upgrade) }
	}

	addr, token, err := p.res.Target(r.Context(), name)
	if err != nil {
		release(slot)
		return adm, func(w http.ResponseWriter, r *http.Request) { p.targetError(w, r, name, rest, err) }
	}
	p.act.Touch(name)
	return admission{st: &upstream{server: name, addr: addr, token: token}, who: who, slot: slot, upgrade: upgrade}, nil
}

func errorAnswer(status int, msg string) refusal {
	return func(w http.ResponseWriter, _ *http.Request) { writeError(w, status, msg) }
}

func refusalAnswer(status int, msg string) refusal {
	return func(w http.ResponseWriter, _ *http.Request) { writeRefusal(w, status, msg) }
}

// identify finds who sends r to server. With an access cookie the cookie
// decides and an Authorization header is ignored: JupyterLab sends the
// server token it read from its page, which is no hub API token, and
// looking it up would refuse the request (and cost a Redis call each time).
// The header never reaches the server either way: rewrite replaces it.
func (p *Proxy) identify(r *http.Request, server string) (Identity, bool) {
	if _, ok := r.Header["Authorization"]; ok && p.o.ServerCookieName != "" {
		if c, err := r.Cookie(p.o.ServerCookieName); err == nil && c.Value != "" {
			r2 := *r
			r2.Header = r.Header.Clone()
			r2.Header.Del("Authorization")
			return p.id.Identify(&r2, server)
		}
	}
	return p.id.Identify(r, server)
}

// targetError answers a request whose server cannot be resolved.
func (p *Proxy) targetError(w http.ResponseWriter, r *http.Request, name, rest string, err error) {
	switch {
	case r.Context().Err() != nil:
		w.WriteHeader(499) // client gone; nobody reads a body
	case p.o.ErrNotRunning != nil && errors.Is(err, p.o.ErrNotRunning):
		isAPI := strings.HasPrefix(rest, "/api/") || rest == "/api"
		if !isAPI && (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Upgrade") == "" {
			p.redirect(w, r, p.o.HubPrefix+"spawn-pending/"+url.PathEscape(name)+
				"?next="+url.QueryEscape(r.URL.EscapedPath()+querySuffix(r)))
			return
		}
		writeError(w, http.StatusServiceUnavailable,
			name+"'s server is not running; start it from "+p.o.HubPrefix+"home")
	default:
		p.log.Warn("cannot resolve user server", "user", name, "err", err)
		writeError(w, http.StatusBadGateway, name+"'s server cannot be reached; try again or restart it from "+p.o.HubPrefix+"home")
	}
}

// rewrite shapes the upstream request. The path is kept as it is: Jupyter
// runs with base_url /user/NAME/.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := upstreamOf(pr.In)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = st.addr
	// Keep the browser's Host: Jupyter compares a websocket's Origin with
	// Host and refuses the upgrade when they differ (as CHP does, too).
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	h := pr.Out.Header
	// The client's Authorization (maybe a hub API token) is not for the user
	// server; the server's own token is. A server without one (it asks the
	// hub who its visitors are) gets none.
	switch v := h["Authorization"]; {
	case st.token == "":
		delete(h, "Authorization")
	case len(v) > 0:
		v[0] = "token " + st.token // reuse the clone's slice
		h["Authorization"] = v[:1]
	default:
		h["Authorization"] = []string{"token " + st.token}
	}
	stripCookie(h, p.o.CookieName)
	stripCookie(h, p.o.ServerCookieName)
}

// stripCookie removes the cookie called name from the Cookie header(s) and
// keeps every other cookie (Jupyter's _xsrf must pass).
func stripCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if name == "" || len(lines) == 0 {
		return
	}
	found := false
	for _, l := range lines {
		if containsFold(l, name) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var b strings.Builder
	for _, line := range lines {
		b.Grow(len(line))
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			n, _, _ := strings.Cut(part, "=")
			if strings.EqualFold(strings.TrimSpace(n), name) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	if b.Len() == 0 {
		delete(h, "Cookie")
		return
	}
	// h is the outbound clone: its value slices are its own to reuse.
	lines[0] = b.String()
	h["Cookie"] = lines[:1]
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// modifyResponse drops the headers by which a user server would act on
// the hub: all servers share the hub's origin.
func (p *Proxy) modifyResponse(res *http.Response) error {
	p.stripHostileHeaders(res)
	return nil
}

// errorHandler maps a failed upstream exchange to a status. A failed dial
// means the server moved or restarted: the cached address is dropped and the
// request tried once more against a fresh one (nothing reached the old
// address, so this is safe for every method).
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st := upstreamOf(r)
	if ww, ok := w.(*wsWriter); ok && ww.hijacked {
		return // the connection belongs to the websocket copy now
	}
	name := ""
	if st != nil {
		name = st.server
	}
	if isDialError(err) && st != nil {
		p.res.Forget(name)
		if !st.retried && r.Context().Err() == nil {
			if terr := p.retarget(st.in.Context(), st); terr != nil {
				_, rest, _ := ParseUserPath(st.in.URL.EscapedPath())
				p.targetError(w, st.in, name, rest, terr)
				return
			}
			p.rp.ServeHTTP(w, st.in)
			return
		}
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled) || r.Context().Err() == context.Canceled:
		w.WriteHeader(499) // client gone; nobody reads a body
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		p.log.Warn("user server timed out", "user", name, "err", err)
		writeError(w, http.StatusGatewayTimeout, name+"'s server did not answer in time")
	default:
		p.log.Warn("user server failed", "user", name, "err", err)
		writeError(w, http.StatusBadGateway, name+"'s server cannot be reached; try again or restart it from "+p.o.HubPrefix+"home")
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retarget is the one retry a request gets after its dial failed (the
// server moved or restarted): st goes to the server's address resolved
// afresh, once the caller has made the resolver forget the old one.
func (p *Proxy) retarget(ctx context.Context, st *upstream) error {
	st.retried = true
	addr, token, err := p.res.Target(ctx, st.server)
	if err != nil {
		return err
	}
	st.addr, st.token = addr, token
	return nil
}

// redirect answers 302 for GET and HEAD and 307 otherwise, so that a
// redirected POST keeps its method and body.
func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request, location string) {
	code := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code = http.StatusTemporaryRedirect
	}
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
}

func querySuffix(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return "?" + r.URL.RawQuery
}

// isNavigation reports whether a browser is loading a page, which should
// lead to the login form rather than a JSON error.
func isNavigation(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		r.Header.Get("Upgrade") == "" &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// accessLog remembers when each admin last reached each user's server, so
// that admin_access events are recorded at most once per minute per pair.
type accessLog struct {
	mu   sync.Mutex
	last map[[2]string]time.Time
}

func (a *accessLog) first(admin, user string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last == nil {
		a.last = make(map[[2]string]time.Time)
	}
	k := [2]string{admin, user}
	if t, ok := a.last[k]; ok && now.Sub(t) < accessEvery {
		return false
	}
	if len(a.last) >= 1024 { // keep the map small: forget pairs past their minute
		for k, t := range a.last {
			if now.Sub(t) >= accessEvery {
				delete(a.last, k)
			}
		}
	}
	a.last[k] = now
	return true
}

// bufferPool reuses ReverseProxy's copy buffers across requests.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// DropUpstream closes every connection to the user server at addr (ip:port),
// in use or idle: its node was declared down, so nothing will come back on
// them. A request waiting on one fails at once and is retried on the
// server's new address (see errorHandler).
func (p *Proxy) DropUpstream(addr string) {
	if p == nil || p.up == nil {
		return
	}
	if n := p.up.closeAll(addr); n > 0 {
		p.log.Info("closed connections to a lost server", "addr", addr, "connections", n)
	}
}
