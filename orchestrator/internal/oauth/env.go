package oauth

import (
	"encoding/json"
	"sort"
	"strings"
)

// SingleUser describes one single-user server for SingleUserEnv.
type SingleUser struct {
	User   string
	Server string // "" for the default server
	// APIToken is the server's own hub API token, also its OAuth secret.
	APIToken string
	// HubAPIURL is the hub's API as the server reaches it, e.g.
	// "http://orchestrator:8000/hub/api".
	HubAPIURL string
	// BaseURL is the hub's public base URL path, "/" normally.
	BaseURL string
	// PublicHost is "" unless servers live on subdomains.
	PublicHost string
	// BindURL is where the server listens, without path, e.g.
	// "http://0.0.0.0:8888"; the service prefix is appended.
	BindURL string
	// AllowedScopes are extra scopes the server may request for its OAuth
	// tokens; the access scopes are always added.
	AllowedScopes []string
	// AdminAccess lets admins reach the server (JUPYTERHUB_ADMIN_ACCESS).
	AdminAccess bool
}

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

// SingleUserEnv is the environment JupyterHub 3's Spawner.get_env gives a
// server, which jupyterhub-singleuser reads; scope lists are JSON as there.
func SingleUserEnv(s SingleUser) map[string]string {
	base := s.BaseURL
	if base == "" {
		base = "/"
	}
	access := AccessScopes(s.User, s.Server)
	accessJSON := jsonList(access)
	allowed := map[string]bool{}
	for _, sc := range append(append([]string{}, s.AllowedScopes...), access...) {
		allowed[sc] = true
	}
	allowedList := make([]string, 0, len(allowed))
	for sc := range allowed {
		allowedList = append(allowedList, sc)
	}
	sort.Strings(allowedList)
	api := strings.TrimSuffix(s.HubAPIURL, "/")
	prefix := ServicePrefix(base, s.User, s.Server)
	env := map[string]string{
		"JUPYTERHUB_API_TOKEN":                   s.APIToken,
		"JPY_API_TOKEN":                          s.APIToken,
		"JUPYTERHUB_CLIENT_ID":                   ClientID(s.User, s.Server),
		"JUPYTERHUB_HOST":                        s.PublicHost,
		"JUPYTERHUB_OAUTH_CALLBACK_URL":          RedirectURI(base, s.User, s.Server),
		"JUPYTERHUB_OAUTH_SCOPES":                accessJSON,
		"JUPYTERHUB_OAUTH_ACCESS_SCOPES":         accessJSON,
		"JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": jsonList(allowedList),
		"JUPYTERHUB_USER":                        s.User,
		"JUPYTERHUB_SERVER_NAME":                 s.Server,
		"JUPYTERHUB_API_URL":                     api,
		"JUPYTERHUB_ACTIVITY_URL":                api + "/users/" + quote(s.User, "@~") + "/activity",
		"JUPYTERHUB_BASE_URL":                    base,
		"JUPYTERHUB_SERVICE_PREFIX":              prefix,
		"JUPYTERHUB_SERVICE_URL":                 strings.TrimSuffix(s.BindURL, "/") + prefix,
	}
	if s.AdminAccess {
		env["JUPYTERHUB_ADMIN_ACCESS"] = "1"
	}
	return env
}

// jsonList encodes like Python's json.dumps: ", " between items.
func jsonList(l []string) string {
	parts := make([]string, len(l))
	for i, s := range l {
		b, _ := json.Marshal(s) // a string always marshals
		parts[i] = string(b)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
