package web

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func (s *Server) apiListTokens(c echo.Context) error {
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	toks, err := s.d.Store.ListTokens(c.Request().Context(), name)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(toks))
	for _, t := range toks {
		out = append(out, tokenModel(t))
	}
	return c.JSON(http.StatusOK, map[string]any{"api_tokens": out})
}

// tokenModel is JupyterHub's token model, with the same keys POST returns,
// so a script finds its token by "id".
func tokenModel(t store.Token) map[string]any {
	return map[string]any{"kind": "api_token", "id": t.ID, "user": t.User, "note": t.Note,
		"created": tptr(t.Created), "last_activity": tptr(t.LastUsed), "expires_at": tptr(t.Expires)}
}

// apiGetToken is GET /users/NAME/tokens/ID: one token's model, 404 if the
// user has no such token.
func (s *Server) apiGetToken(c echo.Context) error {
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	toks, err := s.d.Store.ListTokens(c.Request().Context(), name)
	if err != nil {
		return err
	}
	for _, t := range toks {
		if t.ID == c.Param("id") {
			return c.JSON(http.StatusOK, tokenModel(t))
		}
	}
	return apiError(http.StatusNotFound, fmt.Sprintf("no token %q for user %s", c.Param("id"), name))
}

// maxTokenSeconds bounds expires_in (ten years).
const maxTokenSeconds = 10 * 365 * 24 * 3600

func (s *Server) apiCreateToken(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	var body struct {
		Note      string   `json:"note"`
		ExpiresIn int      `json:"expires_in"`
		Scopes    []string `json:"scopes"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	if len(body.Note) > 200 {
		return apiError(http.StatusBadRequest, "note is longer than 200 characters")
	}
	// JupyterHub's meaning: seconds until the token stops working, 0 or
	// absent for never.
	if body.ExpiresIn < 0 || body.ExpiresIn > maxTokenSeconds {
		return apiError(http.StatusBadRequest, fmt.Sprintf("expires_in is seconds until the token expires: 1 to %d, or 0 for a token that does not expire", maxTokenSeconds))
	}
	var expires time.Time
	if body.ExpiresIn > 0 {
		expires = s.now().Add(time.Duration(body.ExpiresIn) * time.Second)
	}
	if err := s.checkTokenScopes(ctx, name, body.Scopes); err != nil {
		return err
	}
	var plain string
	var tok store.Token
	if len(body.Scopes) > 0 {
		plain, tok, err = s.d.Store.CreateScopedToken(ctx, name, body.Note, body.Scopes, expires)
	} else {
		plain, tok, err = s.d.Store.CreateTokenExpiring(ctx, name, body.Note, expires)
	}
	if err != nil {
		return err
	}
	msg := "API token " + tok.ID
	if !expires.IsZero() {
		msg += ", expires " + expires.UTC().Format(time.RFC3339)
	}
	s.event(ctx, "token-created", name, id.Actor(), msg)
	return c.JSON(http.StatusCreated, map[string]any{"token": plain, "id": tok.ID, "note": tok.Note,
		"user": name, "created": tok.Created, "expires_at": tptr(tok.Expires)})
}

func (s *Server) apiDeleteToken(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	if err := s.d.Store.DeleteToken(ctx, name, c.Param("id")); errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "no such token")
	} else if err != nil {
		return err
	}
	// Cached token identities of this user must go on every replica.
	s.sessions.DropUser(name)
	if err := s.d.Store.PublishRevoke(ctx, cachePrefix+name); err != nil {
		s.log.Warn("token revocation broadcast", "err", err)
	}
	s.event(ctx, "token-deleted", name, id.Actor(), "API token "+c.Param("id"))
	return c.NoContent(http.StatusNoContent)
}
