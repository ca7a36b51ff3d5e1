// Package web serves swarmhub's pages, its JSON API and the entry point that
// hands /user/NAME/ traffic to the proxy.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/httpguard"
	"github.com/swarmhub/swarmhub/orchestrator/internal/sessioncache"
)

// Options are the web layer's settings.
type Options struct {
	Version       string
	PublicURL     string // used to build absolute links (nbgitpuller)
	CookieName    string
	SecureCookies bool // Secure flag; on under TLS or an https public URL
	TLS           bool // HSTS
	SessionIdle   time.Duration
	SessionMax    time.Duration
	AdminAccess   bool
	// AllowedImages are the images an admin may pick per start (with the
	// default image always allowed).
	AllowedImages   []string
	InstructorUsers []string
	// DiskSoftLimit > 0 warns a student whose workspace is larger.
	DiskSoftLimit int64
	Logger        *slog.Logger
	// Checks are reported by /hub/health; a failing check makes it 503.
	Checks map[string]Checker
	// Metrics serves /hub/metrics when set.
	Metrics http.Handler
	// IdentityCacheTTL bounds how long the proxy trusts a cached session
	// without asking Redis; revocations are pushed sooner (see sessioncache.Cache).
	IdentityCacheTTL time.Duration
	// WrapProxy, when set, wraps the /user/ proxy handler once (metrics).
	WrapProxy func(http.Handler) http.Handler
	// Clock replaces time.Now (idle times, the chart).
	Clock func() time.Time
	// RemoveData archives and then deletes a user's workspace
	// (DELETE /hub/api/users/NAME?remove_data=true); nil disables it.
	RemoveData func(ctx context.Context, user string) error
	// Services are API clients that are no users (JupyterHub's services),
	// identified by their tokens and limited to their scopes.
	Services []Service
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client address login regulation counts.
	TrustedProxies []netip.Prefix
	// BodyReadTimeout bounds how long a hub request may take to send its
	// body; /user/ requests are not bounded. 0: no limit.
	BodyReadTimeout time.Duration
}

// cachePrefix marks a revocation message that only drops cached identities
// (a deleted API token) without closing the user's connections.
const cachePrefix = "cache:"

// sessionPrefix marks a revocation message that ends one login session
// (logout), named by its hash, and closes its websockets.
const sessionPrefix = "session:"

// Deps are the collaborators the handlers call.
type Deps struct {
	Store     Store
	Auth      Authenticator
	Policy    Admitter
	Regulator Regulator
	// FailedLogins bounds the events failed logins write; nil records each.
	FailedLogins FailureLog
	Namer        Namer
	Servers      Servers
	Proxy        UserProxy
	// Sessions identifies requests; cmd shares it with the proxy.
	Sessions *sessioncache.Cache
	// Jobs drives cull, archive and reconcile from the API; nil disables
	// those endpoints.
	Jobs Lifecycle
	// Archives lists archive runs on the dashboard; nil hides the section.
	Archives ArchiveLister
	// Logins counts login outcomes; nil counts nothing.
	Logins LoginObserver
	// OAuth answers /hub/api/oauth2/ for jupyterhub-singleuser servers;
	// nil leaves those routes out.
	OAuth OAuthProvider
	// Prestarts keeps the pre-start schedules and starts a group's servers;
	// nil leaves /hub/api/prestarts and the group start/stop-all out.
	Prestarts Prestarts
	// Images pre-pulls the notebook image on every node and reports per
	// node; nil hides the nodes.
	Images ImageNodes
	// Access mints servers' access cookies; cmd shares it with the proxy's
	// ProxyIdentifier. nil: one with a key of this process's own.
	Access *AccessCookies
	// Line shows students their place in the start line and admins the
	// line; nil: starts do not wait in line.
	Line StartLine
	// Capacity shows admins how many more servers fit; nil hides it.
	Capacity CapacityReader
}

// Server is the orchestrator's HTTP front: hub pages and API through echo,
// /user/ through the proxy without echo in the way.
type Server struct {
	o        Options
	d        Deps
	e        *echo.Echo
	hub      http.Handler // e behind the hub's body deadline
	log      *slog.Logger
	sessions *sessioncache.Cache
	access   *AccessCookies
	instr    map[string]bool
	proxy    http.Handler
	now      func() time.Time
	// running is the number of running servers at the last look (sampler
	// or dashboard), for a metrics gauge that must not call Redis.
	running atomic.Int64

	api      *echo.Group
	services serviceTokens
	// announce caches the announcement for announceTTL, so page views do
	// not each read Redis.
	announce atomic.Pointer[cachedAnnouncement]
	healthC  healthCache
}

// New builds the server; it does not listen.
func New(o Options, d Deps) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CookieName == "" {
		o.CookieName = "swarmhub-session"
	}
	if o.SessionIdle == 0 {
		o.SessionIdle = 8 * time.Hour
	}
	if o.SessionMax == 0 {
		o.SessionMax = 168 * time.Hour
	}
	if o.IdentityCacheTTL == 0 {
		o.IdentityCacheTTL = 30 * time.Second
	}
	s := &Server{o: o, d: d, log: o.Logger, instr: map[string]bool{}}
	for _, u := range o.InstructorUsers {
		s.instr[u] = true
	}
	s.now = o.Clock
	if s.now == nil {
		s.now = time.Now
	}
	if d.Proxy != nil {
		s.proxy = d.Proxy
		if o.WrapProxy != nil {
			s.proxy = o.WrapProxy(d.Proxy)
		}
	}
	s.sessions = d.Sessions
	s.access = d.Access
	if s.access == nil {
		_, name := CookieNames(strings.TrimPrefix(o.CookieName, securePrefix), o.SecureCookies)
		s.access = NewAccessCookies(name, o.SecureCookies)
	}
	if s.sessions == nil {
		s.sessions = sessioncache.New(d.Store, o.SessionIdle, o.SessionMax, o.IdentityCacheTTL, o.CookieName)
	}
	s.e = echo.New()
	s.e.HideBanner = true
	s.e.HidePort = true
	s.e.HTTPErrorHandler = s.httpError
	s.services = newServiceTokens(o.Services)
	s.routes()
	s.hub = httpguard.BodyDeadline(s.e, o.BodyReadTimeout)
	return s
}

// Sessions exposes the session cache: the proxy identifies requests through
// it and the revocation subscriber drops entries from it.
func (s *Server) Sessions() *sessioncache.Cache { return s.sessions }

// Echo gives other packages' handlers (lifecycle, archives) a place to
// register admin routes before serving.
func (s *Server) Echo() *echo.Echo { return s.e }

// ServeHTTP sends /user/ to the proxy and everything else to echo.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/user/") && s.proxy != nil {
		s.proxy.ServeHTTP(w, r)
		return
	}
	s.hub.ServeHTTP(w, r)
}

// Revoke ends every session of user on this replica and tells the others.
func (s *Server) Revoke(ctx context.Context, user string) error {
	if _, err := s.d.Store.DeleteUserSessions(ctx, user); err != nil {
		return err
	}
	s.DropLocal(user)
	return s.d.Store.PublishRevoke(ctx, user)
}

// DropLocal forgets cached sessions and closes open websockets of user (or
// of one session, for a logout) on this replica; the revocation subscriber
// calls it for every message.
func (s *Server) DropLocal(user string) {
	if user == "*" {
		s.sessions.DropAll()
		return
	}
	if u, ok := strings.CutPrefix(user, cachePrefix); ok {
		s.sessions.DropUser(u)
		return
	}
	if key, ok := strings.CutPrefix(user, sessionPrefix); ok {
		s.sessions.DropSession(key)
		if s.d.Proxy != nil {
			s.d.Proxy.CloseSession(key)
		}
		return
	}
	s.sessions.DropUser(user)
	if s.d.Proxy != nil {
		s.d.Proxy.CloseUser(user)
	}
}

// Identity is who a request comes from, as the session cache answers it.
type Identity = sessioncache.Identity
