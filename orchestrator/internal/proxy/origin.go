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
	if viaToken || safeMethod(r.Method) && r.Header.Get("Upgrade") == "" {
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
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
		return ""
	default:
		return "Sec-Fetch-Site " + quoteShort(site) + " is not same-origin"
	}
}

// sameOrigin reports whether origin is the hub's: the configured public
// URL, an extra allowed origin, or the origin the request itself was sent
// to (its Host with the scheme it arrived by, as the web layer derives its
// public URL when none is configured). Matching the request's own Host is
// safe: a browser sets Host to the site it talks to and Origin to the page
// that talks, so they agree only for a same-origin page.
func (p *originPolicy) sameOrigin(r *http.Request, origin string) bool {
	n, ok := normalOrigin(origin)
	if !ok {
		return false // "null" (sandboxed frames, file:) and garbage
	}
	if _, ok := p.allowed[n]; ok {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	} else if fp := r.Header.Get("X-Forwarded-Proto"); fp != "" {
		// Set by a TLS-terminating proxy in front; a foreign page cannot
		// set it on a websocket or a form post.
		scheme = strings.ToLower(strings.TrimSpace(fp))
	}
	own, ok := normalOrigin(scheme + "://" + r.Host)
	return ok && own == n
}

// normalOrigin lowers scheme and host and drops the scheme's default port,
// so that https://Hub.example.edu:443 and https://hub.example.edu compare
// equal. Only http and https origins without path, user or query qualify.
func normalOrigin(o string) (string, bool) {
	scheme, host, ok := strings.Cut(o, "://")
	if !ok || host == "" || strings.ContainsAny(host, "/?#@ ") {
		return "", false
	}
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	switch scheme {
	case "http":
		host = strings.TrimSuffix(host, ":80")
	case "https":
		host = strings.TrimSuffix(host, ":443")
	default:
		return "", false
	}
	return scheme + "://" + host, true
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
