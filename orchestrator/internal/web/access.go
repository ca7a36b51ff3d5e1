package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/accesscookie"
	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
	"github.com/swarmhub/swarmhub/orchestrator/internal/sessioncache"
)

// securePrefix marks cookies a browser accepts only from HTTPS with the
// Secure flag, so a plain-HTTP sibling cannot set them. (__Host- would also
// forbid a Domain, but it demands Path=/, which the hub cookie no longer
// has.)
const securePrefix = "__Secure-"

// accessCookieTTL is how long a server's access cookie lives; the proxy
// renews it on traffic in its second half, so only a browser idle that long
// goes back through the hub.
const accessCookieTTL = time.Hour

// CookieNames are the hub session cookie's name and the servers' access
// cookies' name for the configured session.cookie_name: under HTTPS both
// carry the __Secure- prefix.
func CookieNames(base string, secure bool) (hub, access string) {
	if secure {
		base = securePrefix + base
	}
	return base, base + "-server"
}

// AccessCookies mints and checks the cookies that open one user's server:
// scoped to Path=/user/NAME/, signed, bound to the hub session that asked for
// them (a session's end ends them) and short-lived.
type AccessCookies struct {
	Name   string // CookieNames' access name
	Secure bool
	Signer *accesscookie.Signer
	Clock  func() time.Time // nil: time.Now
}

// NewAccessCookies builds AccessCookies with a fresh random key, for a hub
// with one replica and tests; cmd loads the key shared through Redis.
func NewAccessCookies(name string, secure bool) *AccessCookies {
	s := &accesscookie.Signer{}
	if err := s.SetKey([]byte(randomHex(32))); err != nil {
		panic(err) // 64 bytes always fit
	}
	return &AccessCookies{Name: name, Secure: secure, Signer: s}
}

func (a *AccessCookies) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

// serverPath is the path a server's cookie is scoped to: the proxy's
// canonical spelling of /user/NAME/.
func serverPath(server string) string { return "/user/" + url.PathEscape(server) + "/" }

// mint returns user's access cookie for server, vouched for by the session
// with hash session.
func (a *AccessCookies) mint(user, server, session string) (*http.Cookie, error) {
	v, err := a.Signer.Sign(accesscookie.Claims{User: user, Server: server, Session: session, Expires: a.now().Add(accessCookieTTL)})
	if err != nil {
		return nil, err
	}
	return &http.Cookie{Name: a.Name, Value: v, Path: serverPath(server), MaxAge: int(accessCookieTTL.Seconds()),
		HttpOnly: true, Secure: a.Secure, SameSite: http.SameSiteLaxMode}, nil
}

// check returns the claims of r's access cookie for server: the first
// genuine, unexpired one for server, else the first genuine one for another
// server (which the proxy refuses with 403), else none.
func (a *AccessCookies) check(r *http.Request, server string) (accesscookie.Claims, bool) {
	now := a.now()
	var other accesscookie.Claims
	found := false
	for _, c := range r.CookiesNamed(a.Name) {
		cl, err := a.Signer.Verify(c.Value, now)
		switch {
		case err != nil:
		case cl.Server == server:
			return cl, true
		case !found:
			other, found = cl, true
		}
	}
	return other, found
}

// ProxyIdentifier adapts the session cache to the proxy's Identifier: an API
// token, or a server's access cookie whose session still lives; a caller
// passes only as far as ServerAccess lets it. The hub's own cookie is not
// accepted on /user/ (browsers do not send it there).
type ProxyIdentifier struct {
	Cache  *sessioncache.Cache
	Access *AccessCookies
}

// Identify is the cached identity in the proxy's terms.
func (i ProxyIdentifier) Identify(r *http.Request, server string) (proxy.Identity, bool) {
	if sessioncache.TokenFromHeader(r) == "" {
		return i.fromCookie(r.Context(), r, server)
	}
	id, ok := i.Cache.Identify(r)
	own, all := ServerAccess(id)
	if !ok || !own && !all {
		return proxy.Identity{}, false
	}
	return proxy.Identity{User: id.User, Admin: all, Via: id.Via}, true
}

func (i ProxyIdentifier) fromCookie(ctx context.Context, r *http.Request, server string) (proxy.Identity, bool) {
	cl, ok := i.Access.check(r, server)
	if !ok {
		return proxy.Identity{}, false
	}
	id, ok := i.Cache.Session(ctx, cl.Session)
	if !ok || id.User != cl.User {
		return proxy.Identity{}, false
	}
	_, all := ServerAccess(id)
	who := proxy.Identity{User: id.User, Admin: all, Via: id.Via, Server: cl.Server, Session: cl.Session}
	if cl.Server == server && cl.Expires.Sub(i.Access.now()) < accessCookieTTL/2 {
		if ck, err := i.Access.mint(cl.User, cl.Server, cl.Session); err == nil {
			who.Renew = ck
		}
	}
	return who, true
}

// userCookie is where the proxy sends a browser that opens /user/NAME/
// without a valid access cookie: with a hub session that may use NAME's
// server (the proxy's own rule), it sets that server's cookie and sends the
// browser back to next; without a session, to the login form first.
func (s *Server) userCookie(c echo.Context) error {
	next := safeNext(c.QueryParam("next"), "")
	u, err := url.Parse(next)
	if next == "" || err != nil {
		return apiError(http.StatusBadRequest, "next must be a path under /user/NAME/")
	}
	raw, _, ok := proxy.ParseUserPath(u.EscapedPath())
	if !ok {
		return apiError(http.StatusBadRequest, "next must be a path under /user/NAME/")
	}
	server, err := s.d.Namer.Canonical(raw)
	if err != nil {
		return apiError(http.StatusNotFound, "no such user")
	}
	id, ok := identityOf(c)
	if !ok || id.Via != "session" {
		return c.Redirect(http.StatusFound, "/hub/login?next="+url.QueryEscape(next))
	}
	_, all := ServerAccess(id)
	if !proxy.MayAccess(proxy.Identity{User: id.User, Admin: all}, server, s.o.AdminAccess) {
		return apiError(http.StatusForbidden, "you may not access the server of "+server)
	}
	ck, err := s.access.mint(id.User, server, id.SessionHash)
	if errors.Is(err, accesscookie.ErrNoKey) {
		return &apiErr{Status: http.StatusServiceUnavailable, Retry: 5 * time.Second,
			Message: "the hub cannot reach its database yet; try again in a few seconds"}
	}
	if err != nil {
		return err
	}
	c.SetCookie(ck)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, next)
}
