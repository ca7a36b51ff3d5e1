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
// A cookie named like the hub's is dropped; any other is confined to the
// server's own /user/NAME/ (an outside Path is rewritten to it, a Domain is
// removed), so servers that scope their cookies to "/" (Notebook 6's
// _xsrf) keep working without reaching the hub or other servers.
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
		if p.hubNamed(v) {
			p.warnHeader(server, hdrSetCookie)
			continue
		}
		if c, changed := confineCookie(v, own); changed {
			v = c
			p.warnHeader(server, hdrSetCookie+" scope")
		}
		kept = append(kept, v)
	}
	if len(kept) == 0 {
		delete(h, hdrSetCookie)
	} else {
		h[hdrSetCookie] = kept
	}
}

// hubNamed reports whether a Set-Cookie value's name contains the hub
// cookie's or the access cookie's name (in any case, with or without a
// __Host-/__Secure- prefix, also in the nameless "=NAME=value" form, which
// browsers send back as "NAME=value").
func (p *Proxy) hubNamed(v string) bool {
	pair, _, _ := strings.Cut(v, ";")
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
	return false
}

// confineCookie rewrites every Path attribute that reaches beyond own
// ("/user/NAME/"): "/", "/hub/...", another user's server; and drops
// Domain attributes (a sibling host's cookies are not a server's to set).
// An empty Path means the request's directory, which is inside own.
func confineCookie(v, own string) (string, bool) {
	parts := strings.Split(v, ";")
	changed := false
	out := parts[:1]
	for _, a := range parts[1:] {
		k, val, _ := strings.Cut(a, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "domain":
			changed = true
			continue
		case "path":
			if path := strings.TrimSpace(val); path != "" && path != own[:len(own)-1] && !strings.HasPrefix(path, own) {
				a, changed = " Path="+own, true
			}
		}
		out = append(out, a)
	}
	if !changed {
		return v, false
	}
	return strings.Join(out, ";"), true
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
