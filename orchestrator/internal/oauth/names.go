package oauth

import "strings"

// quote is Python's urllib.parse.quote: escape every byte but ASCII
// letters, digits, "_.-~" and safe.
func quote(s, safe string) string {
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("_.-~", c) >= 0 || strings.IndexByte(safe, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// ServicePrefix is the server's URL path, "/user/NAME/" (or
// "/user/NAME/SERVER/"), JupyterHub's Server.base_url.
func ServicePrefix(baseURL, user, server string) string {
	p := strings.TrimSuffix(baseURL, "/") + "/user/" + quote(user, "@~") + "/"
	if server != "" {
		p += quote(server, "@~") + "/"
	}
	return p
}

// RedirectURI is the client's only redirect_uri, JupyterHub's
// JUPYTERHUB_OAUTH_CALLBACK_URL.
func RedirectURI(baseURL, user, server string) string {
	return ServicePrefix(baseURL, user, server) + "oauth_callback"
}
