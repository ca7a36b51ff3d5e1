package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/oauth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/scopes"
)

// OAuthProvider is the hub's OAuth2 provider; *oauth.Provider implements it.
type OAuthProvider interface {
	Authorize(ctx context.Context, user string, held scopes.Set, req oauth.AuthorizeRequest) (string, error)
	Token(ctx context.Context, form url.Values, basicID, basicSecret string) (oauth.TokenResponse, error)
}

// oauthRoutes serves JupyterHub's OAuth endpoints outside the API group:
// like JupyterHub, they authenticate by the login cookie or the client's
// secret, not by scopes, and the token endpoint takes no _xsrf.
func (s *Server) oauthRoutes() {
	if s.d.OAuth == nil {
		return
	}
	s.e.GET("/hub/api/oauth2/authorize", s.oauthAuthorize)
	s.e.POST("/hub/api/oauth2/token", s.oauthToken)
}

// oauthAuthorize sends a logged-in user back to the client with a code; an
// anonymous browser logs in first and comes back here.
func (s *Server) oauthAuthorize(c echo.Context) error {
	id, ok := identityOf(c)
	if !ok {
		return c.Redirect(http.StatusFound, "/hub/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
	}
	if id.Service != "" {
		return apiError(http.StatusForbidden, "a service cannot authorize a server")
	}
	held, _ := heldScopes(c)
	to, err := s.d.OAuth.Authorize(c.Request().Context(), id.User, held, oauth.AuthorizeRequestFrom(c.QueryParams()))
	var oe *oauth.Error
	if errors.As(err, &oe) {
		msg := oe.Code
		if oe.Description != "" {
			msg += ": " + oe.Description
		}
		return apiError(oe.Status, msg)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusFound, to)
}

// oauthToken exchanges a code for an access token; client credentials come
// by HTTP Basic (form-encoded, as RFC 6749 says) or in the form.
func (s *Server) oauthToken(c echo.Context) error {
	r := c.Request()
	if err := r.ParseForm(); err != nil {
		return c.JSON(http.StatusBadRequest, &oauth.Error{Code: "invalid_request", Description: "unreadable form body"})
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		if u, err := url.QueryUnescape(id); err == nil {
			id = u
		}
		if p, err := url.QueryUnescape(secret); err == nil {
			secret = p
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	resp, err := s.d.OAuth.Token(r.Context(), r.PostForm, id, secret)
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return c.JSON(oe.Status, oe)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, resp)
}
