package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// User servers share the hub's origin, so some response headers would act
// on the hub: Service-Worker-Allowed lets a worker registered from a
// student's page control /hub/ (one admin visit installs it for good),
// Clear-Site-Data logs the visitor out of the hub, and a Set-Cookie can
// plant or overwrite the hub's cookies.
const (
	hdrServiceWorkerAllowed = "Service-Worker-Allowed"
	hdrClearSiteData        = "Clear-Site-Data"
	hdrSetCookie            = "Set-Cookie"
)

// stripHostileHeaders removes those headers from a user server's response.
// Cookies a server scopes to its own /user/NAME/ pass.
func (p *Proxy) stripHostileHeaders(res *http.Response) {
	h := res.Header
	_, swa := h[hdrServiceWorkerAllowed]
	_, csd := h[hdrClearSiteData]
	sc := h[hdrSetCookie]
	if !swa && !csd && len(sc) == 0 {
		return
	}
	server := ""
	if st := upstreamOf(res.Request); st != nil {
		server = st.server
	}
	if swa {
		delete(h, hdrServiceWorkerAllowed)
		p.warnHeader(server, hdrServiceWorkerAllowed)
	}
	if csd {
		delete(h, hdrClearSiteData)
		p.warnHeader(server, hdrClearSiteData)
	}
	if len(sc) == 0 {
		return
	}
	own := userPrefix + url.PathEscape(server) + "/"
	kept := sc[:0]
	for _, v := range sc {
		if p.hostileCookie(v, own) {
			p.warnHeader(server, hdrSetCookie)
			continue
		}
		kept = append(kept, v)
	}
	if len(kept) == 0 {
		delete(h, hdrSetCookie)
	} else {
		h[hdrSetCookie] = kept
	}
}

// hostileCookie reports whether a Set-Cookie value touches the hub's
// cookies: its name contains the hub cookie's or the access cookie's name (in any case, with or
// without a __Host-/__Secure- prefix, also in the nameless "=NAME=value"
// form, which browsers send back as "NAME=value"), or one of its Path
// attributes reaches beyond the server's own prefix own ("/user/NAME/"):
// "/", "/hub/...", or another user's server.
func (p *Proxy) hostileCookie(v, own string) bool {
	pair, attrs, _ := strings.Cut(v, ";")
	pair = strings.TrimSpace(pair)
	for strings.HasPrefix(pair, "=") {
		pair = strings.TrimSpace(pair[1:])
	}
	name, _, _ := strings.Cut(pair, "=")
	for _, ck := range []string{p.o.CookieName, p.o.ServerCookieName} {
		if base := hubCookieBase(ck); base != "" && containsFold(name, base) {
			return true
		}
	}
	for len(attrs) > 0 {
		var a string
		a, attrs, _ = strings.Cut(attrs, ";")
		k, val, _ := strings.Cut(a, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "path") {
			continue
		}
		// An empty Path means the default: the directory of the request,
		// which is inside own.
		if path := strings.TrimSpace(val); path != "" && path != own[:len(own)-1] && !strings.HasPrefix(path, own) {
			return true
		}
	}
	return false
}

// hubCookieBase is the session cookie's name without a cookie prefix, so
// that a server cannot plant a prefixed twin of it.
func hubCookieBase(name string) string {
	for _, pre := range []string{"__Host-", "__Secure-"} {
		if len(name) > len(pre) && strings.EqualFold(name[:len(pre)], pre) {
			return name[len(pre):]
		}
	}
	return name
}

// warnHeader logs a dropped header once per user server and header.
func (p *Proxy) warnHeader(server, header string) {
	p.warnOnce(server, header, "dropped a header by which a user server could act on the hub", "header", header)
}

// warnOnce logs msg once per user and kind, so that a server sending a
// header on every response, or a script hammering a cap, cannot flood the
// log.
func (p *Proxy) warnOnce(user, kind, msg string, args ...any) {
	if _, seen := p.warned.LoadOrStore(warnKey{user, kind}, struct{}{}); seen {
		return
	}
	p.log.Warn(msg+" (logged once per user)", append([]any{"user", user}, args...)...)
}

type warnKey struct{ user, kind string }
