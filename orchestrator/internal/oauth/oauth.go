// Package oauth is the hub's OAuth2 authorization-code provider for
// single-user servers started with jupyterhub-singleuser, and the
// environment such a server needs.
//
// It follows JupyterHub's provider (oauthlib's WebApplicationServer with
// JupyterHub's request validator) as jupyterhub-singleuser 3.0, the version
// Debian ships, uses it, next to JupyterHub 5's REST API:
//   - each server is a client "jupyterhub-user-NAME" whose secret is the
//     server's API token and whose only redirect_uri is
//     "/user/NAME/oauth_callback", compared exactly;
//   - GET /hub/api/oauth2/authorize (a logged-in user) answers a redirect to
//     redirect_uri?code=…&state=…; state is optional, as in oauthlib, and
//     passed through unchanged (the client checks it at its callback);
//   - codes live 5 minutes and are used once;
//   - POST /hub/api/oauth2/token exchanges a code for an API token of the
//     user limited to the client's scopes (the server's access scopes),
//     valid as long as the hub's login cookie (14 days by default).
//
// The environment such a server gets is built by the spawner
// (spawner.SingleUserEnv), from ClientID, RedirectURI and AccessScopes here.
//
// Errors carry oauthlib's status and error code: invalid_client 401 for bad
// client credentials, invalid_grant 400 for an unknown, used, expired or
// foreign code, invalid_request 400 for a missing parameter or a mismatching
// redirect_uri, unsupported_grant_type 400.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/scopes"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

const (
	// CodeLifetime is JupyterHub's: "oauth has 5 minutes to complete".
	CodeLifetime = 5 * time.Minute
	// DefaultTokenLifetime is JupyterHub's oauth_token_expires_in default,
	// the login cookie's max age (14 days).
	DefaultTokenLifetime = 14 * 24 * time.Hour
	tokenNote            = "oauth"
)

// Store keeps clients, codes and tokens; *store.Store implements it.
type Store interface {
	GetServer(ctx context.Context, user string) (store.Server, error)
	CreateOAuthCode(ctx context.Context, c store.OAuthCode) (string, error)
	LookupOAuthCode(ctx context.Context, code string) (store.OAuthCode, error)
	DeleteOAuthCode(ctx context.Context, code string) (bool, error)
	CreateScopedToken(ctx context.Context, user, note string, scopes []string, expires time.Time) (string, store.Token, error)
}

// Provider answers the authorize and token endpoints.
type Provider struct {
	store         Store
	now           func() time.Time
	tokenLifetime time.Duration
}

// Option configures a Provider.
type Option func(*Provider)

// WithClock replaces time.Now, for tests of code expiry.
func WithClock(now func() time.Time) Option { return func(p *Provider) { p.now = now } }

// WithTokenLifetime sets how long issued access tokens live.
func WithTokenLifetime(d time.Duration) Option { return func(p *Provider) { p.tokenLifetime = d } }

// New returns a Provider on s.
func New(s Store, opts ...Option) *Provider {
	p := &Provider{store: s, now: time.Now, tokenLifetime: DefaultTokenLifetime}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Error is an OAuth error response: write Status and the JSON
// {"error": Code, "error_description": Description}.
type Error struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("oauth %s (%d): %s", e.Code, e.Status, e.Description)
}

func oerr(status int, code, desc string) *Error {
	return &Error{Status: status, Code: code, Description: desc}
}

// ClientID is the OAuth client id of user's server (server "" is the
// default server), as JupyterHub names it.
func ClientID(user, server string) string {
	if server == "" {
		return "jupyterhub-user-" + quote(user, "/")
	}
	return "jupyterhub-user-" + quote(user, "/") + "-" + quote(server, "/")
}

// AccessScopes are the scopes that grant access to user's server, as
// JupyterHub 3's Spawner.oauth_access_scopes lists them.
func AccessScopes(user, server string) []string {
	return []string{"access:servers!server=" + user + "/" + server, "access:servers!user=" + user}
}

// AuthorizeRequest is the query of GET /hub/api/oauth2/authorize.
type AuthorizeRequest struct {
	ResponseType, ClientID, RedirectURI, State string
}

// AuthorizeRequestFrom reads the request's query parameters.
func AuthorizeRequestFrom(q url.Values) AuthorizeRequest {
	return AuthorizeRequest{ResponseType: q.Get("response_type"), ClientID: q.Get("client_id"),
		RedirectURI: q.Get("redirect_uri"), State: q.Get("state")}
}

// Authorize issues a code to user, who holds held, for req and returns the
// URL to redirect the browser to. An *Error is returned (to be shown, not
// redirected) for an unknown client or a redirect_uri other than the
// client's, and 403 if user may not access the client's server. A wrong
// response_type, as oauthlib does, is reported to the client: the returned
// URL then carries error=unsupported_response_type.
func (p *Provider) Authorize(ctx context.Context, user string, held scopes.Set, req AuthorizeRequest) (string, error) {
	if req.ClientID == "" {
		return "", oerr(http.StatusBadRequest, "invalid_request", "Missing client_id parameter.")
	}
	c, err := p.client(ctx, req.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return "", oerr(http.StatusBadRequest, "invalid_request", "Invalid client_id parameter value.")
	}
	if err != nil {
		return "", fmt.Errorf("authorize: %w", err)
	}
	redirect := req.RedirectURI
	if redirect == "" {
		redirect = c.RedirectURI // oauthlib's default redirect URI
	}
	if redirect != c.RedirectURI {
		return "", oerr(http.StatusBadRequest, "invalid_request", "Mismatching redirect URI.")
	}
	if req.ResponseType != "code" {
		code := "unsupported_response_type"
		if req.ResponseType == "" {
			code = "invalid_request"
		}
		return withParams(redirect, "error", code, "state", req.State), nil
	}
	if !scopes.Allows(held, "access:servers", scopes.Target{User: c.User, Server: c.User + "/" + c.Server}) {
		return "", oerr(http.StatusForbidden, "access_denied", "You do not have permission to access "+c.ID+".")
	}
	code, err := p.store.CreateOAuthCode(ctx, store.OAuthCode{ClientID: c.ID, User: user,
		RedirectURI: redirect, Expires: p.now().Add(CodeLifetime)})
	if err != nil {
		return "", fmt.Errorf("authorize %s for %q: %w", c.ID, user, err)
	}
	return withParams(redirect, "code", code, "state", req.State), nil
}

// client is the server a client id names: every active
// jupyterhub-singleuser server is a client (jupyterhub-user-NAME, its hub
// API token the secret) for exactly as long as its record says it runs, so
// nothing is registered at start or forgotten at stop, and a stopped
// server's secret is refused at once. ErrNotFound for any other id.
func (p *Provider) client(ctx context.Context, id string) (store.OAuthClient, error) {
	user, ok := strings.CutPrefix(id, "jupyterhub-user-")
	if !ok || user == "" || ClientID(user, "") != id {
		return store.OAuthClient{}, store.ErrNotFound
	}
	srv, err := p.store.GetServer(ctx, user)
	if err != nil {
		return store.OAuthClient{}, fmt.Errorf("client %s: %w", id, err)
	}
	if !srv.HubToken || srv.Token == "" || (srv.State != store.StateStarting && srv.State != store.StateRunning) {
		return store.OAuthClient{}, store.ErrNotFound
	}
	return store.NewOAuthClient(id, user, "", RedirectURI("/", user, ""), AccessScopes(user, ""), srv.Token), nil
}

// withParams appends non-empty key/value pairs to u's query.
func withParams(u string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + q.Encode()
}

// TokenResponse is the JSON body of a successful token request.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// Token answers POST /hub/api/oauth2/token: form is the request's body,
// basicID/basicSecret its HTTP Basic credentials if any (they win over
// client_id/client_secret in the form, as in oauthlib).
func (p *Provider) Token(ctx context.Context, form url.Values, basicID, basicSecret string) (TokenResponse, error) {
	if gt := form.Get("grant_type"); gt != "authorization_code" {
		if gt == "" {
			return TokenResponse{}, oerr(http.StatusBadRequest, "invalid_request", "Request is missing grant type.")
		}
		return TokenResponse{}, oerr(http.StatusBadRequest, "unsupported_grant_type", "")
	}
	code := form.Get("code")
	if code == "" {
		return TokenResponse{}, oerr(http.StatusBadRequest, "invalid_request", "Missing code parameter.")
	}
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if basicID != "" {
		id, secret = basicID, basicSecret
	}
	c, err := p.client(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return TokenResponse{}, fmt.Errorf("token: %w", err)
	}
	if err != nil || !c.SecretMatches(secret) {
		return TokenResponse{}, oerr(http.StatusUnauthorized, "invalid_client", "")
	}
	grant, err := p.store.LookupOAuthCode(ctx, code)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return TokenResponse{}, fmt.Errorf("token: %w", err)
	}
	if err != nil || grant.ClientID != c.ID || !p.now().Before(grant.Expires) {
		return TokenResponse{}, oerr(http.StatusBadRequest, "invalid_grant", "")
	}
	redirect := form.Get("redirect_uri")
	if redirect == "" || redirect != grant.RedirectURI || redirect != c.RedirectURI {
		// oauthlib checks before consuming the code, so it stays usable.
		return TokenResponse{}, oerr(http.StatusBadRequest, "invalid_request", "Mismatching redirect URI.")
	}
	ok, err := p.store.DeleteOAuthCode(ctx, code)
	if err != nil {
		return TokenResponse{}, fmt.Errorf("token: %w", err)
	}
	if !ok {
		return TokenResponse{}, oerr(http.StatusBadRequest, "invalid_grant", "") // a concurrent redemption won
	}
	sc := slices.Clone(c.Scopes)
	plain, _, err := p.store.CreateScopedToken(ctx, grant.User, tokenNote+" "+c.ID, sc, p.now().Add(p.tokenLifetime))
	if err != nil {
		return TokenResponse{}, fmt.Errorf("token for %q: %w", grant.User, err)
	}
	return TokenResponse{AccessToken: plain, TokenType: "Bearer",
		ExpiresIn: int64(p.tokenLifetime / time.Second), Scope: strings.Join(sc, " ")}, nil
}
