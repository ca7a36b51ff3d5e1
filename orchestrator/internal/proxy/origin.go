package proxy

import (
	"net/http"
	"strings"
)

// The proxy injects the server's token, which turns off Jupyter's own XSRF
// and Origin checks; SameSite=Lax alone does not stop a page on a sibling
// host of the same registrable domain. So the proxy itself refuses
// websocket upgrades and state-changing requests that a browser marks as
// coming from another origin.

// originPolicy knows the hub's own origin(s) and the configured extra ones.
type originPolicy struct {
	allowed map[string]struct{} // normalised scheme://host[:port]
}

func newOriginPolicy(publicURL string, extra []string) originPolicy {
	p := originPolicy{allowed: make(map[string]struct{}, 1+len(extra))}
	for _, o := range append([]string{publicURL}, extra...) {
		if n, ok := normalOrigin(strings.TrimSuffix(o, "/")); ok {
			p.allowed[n] = struct{}{}
		}
	}
	return p
}

// safeMethod reports whether a method changes nothing by contract. A
// cross-site GET cannot read the answer (the browser's same-origin policy)
// and must not change anything.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// crossOrigin returns why r must be refused as a cross-origin websocket
// upgrade or state-changing request, or "" when it may pass. viaToken marks
// a request authenticated by a token in its Authorization header: it carries
// no ambient credential a foreign page could ride on (a page cannot add
// that header to a websocket, and a cross-origin fetch with it needs a
// CORS preflight the user server does not grant), so, as JupyterHub does
// for its XSRF check, it is exempt.
func (p *originPolicy) crossOrigin(r *http.Request, viaToken bool) string {
	// Header maps are indexed by canonical keys directly: this runs on
	// every request.
	if viaToken || safeMethod(r.Method) && len(r.Header["Upgrade"]) == 0 {
		return ""
	}
	if origin, ok := r.Header["Origin"]; ok {
		if len(origin) == 1 && p.sameOrigin(r, origin[0]) {
			return ""
		}
		return "Origin " + quoteShort(strings.Join(origin, ", ")) + " is not this hub"
	}
	// No Origin: an older browser, or no browser at all. Fetch metadata
	// tells where a browser's request comes from; a sibling host under the
	// same registrable domain is "same-site", exactly the attacker to stop.
	switch site := firstValue(r.Header["Sec-Fetch-Site"]); site {
	case "", "same-origin", "none":
		return ""
	default:
		return "Sec-Fetch-Site " + quoteShort(site) + " is not same-origin"
	}
}

// sameOrigin reports whether origin is the hub's: the origin the request
// itself was sent to (its Host with the scheme it arrived by, as the web
// layer derives its public URL when none is configured), the configured
// public URL, or an extra allowed origin. Matching the request's own Host
// is safe: a browser sets Host to the site it talks to and Origin to the
// page that talks, so they agree only for a same-origin page. The common
// case allocates nothing.
func (p *originPolicy) sameOrigin(r *http.Request, origin string) bool {
	scheme, host, ok := splitOrigin(origin)
	if !ok {
		return false // "null" (sandboxed frames, file:) and garbage
	}
	if strings.EqualFold(scheme, requestScheme(r)) && strings.EqualFold(host, stripDefaultPort(scheme, r.Host)) {
		return true
	}
	if len(p.allowed) == 0 {
		return false
	}
	_, ok = p.allowed[strings.ToLower(scheme+"://"+host)]
	return ok
}

// requestScheme is the scheme the browser used: https when the hub serves
// TLS itself, else what a TLS-terminating proxy in front says (a foreign
// page cannot set X-Forwarded-Proto on a websocket or a form post).
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if fp := firstValue(r.Header["X-Forwarded-Proto"]); fp != "" {
		return strings.TrimSpace(fp)
	}
	return "http"
}

func firstValue(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// splitOrigin splits an http or https origin into scheme and host, the
// scheme's default port dropped, so that https://Hub.example.edu:443 and
// https://hub.example.edu compare equal. An origin with path, user or
// query does not qualify.
func splitOrigin(o string) (scheme, host string, ok bool) {
	scheme, host, ok = strings.Cut(o, "://")
	if !ok || host == "" || strings.ContainsAny(host, "/?#@ ") ||
		!strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") {
		return "", "", false
	}
	return scheme, stripDefaultPort(scheme, host), true
}

func stripDefaultPort(scheme, host string) string {
	if strings.EqualFold(scheme, "https") {
		return strings.TrimSuffix(host, ":443")
	}
	return strings.TrimSuffix(host, ":80")
}

// normalOrigin is an origin's key in originPolicy.allowed.
func normalOrigin(o string) (string, bool) {
	scheme, host, ok := splitOrigin(o)
	return strings.ToLower(scheme + "://" + host), ok
}

// quoteShort quotes a client-supplied value for an error message, cut so
// that a huge header does not come back in full.
func quoteShort(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s) + `"`
}

// sessionCookies counts the cookies named name in r's Cookie headers,
// without allocating. Two mean a second one was planted ("cookie tossing":
// a sibling host sets one for the parent domain, or one with a longer
// path), and which of them the hub would read is the attacker's choice.
func sessionCookies(r *http.Request, name string) int {
	n := 0
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, _, _ := strings.Cut(part, "=")
			if strings.TrimSpace(k) == name {
				n++
			}
		}
	}
	return n
}

// writeRefusal answers a refused request in short plain text: the browser
// shows it as it is, and it says what to do.
func writeRefusal(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}
