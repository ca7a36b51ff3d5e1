package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/scopes"
	"github.com/swarmhub/swarmhub/orchestrator/internal/sessioncache"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Service is a configured API client that is no user (JupyterHub's
// services), e.g. jupyterhub-idle-culler: its token holds Scopes.
type Service struct {
	Name   string
	Token  string
	Scopes []string
}

// serviceTokens matches a presented token against the configured services'
// by SHA-256, so that the comparison time says nothing about the tokens.
type serviceTokens []serviceToken

type serviceToken struct {
	sum [sha256.Size]byte
	svc Service
}

func newServiceTokens(svcs []Service) serviceTokens {
	out := make(serviceTokens, 0, len(svcs))
	for _, s := range svcs {
		if s.Token != "" {
			out = append(out, serviceToken{sum: sha256.Sum256([]byte(s.Token)), svc: s})
		}
	}
	return out
}

func (t serviceTokens) identify(r *http.Request) (Identity, bool) {
	if len(t) == 0 {
		return Identity{}, false
	}
	tok := sessioncache.TokenFromHeader(r)
	if tok == "" {
		return Identity{}, false
	}
	sum := sha256.Sum256([]byte(tok))
	for _, st := range t {
		if subtle.ConstantTimeCompare(sum[:], st.sum[:]) == 1 {
			return Identity{Service: st.svc.Name, Via: "token", Scopes: st.svc.Scopes}, true
		}
	}
	return Identity{}, false
}

const ctxHeld = "swarmhub.scopes"

// roleScopes are the raw scopes of a person's role.
func roleScopes(admin bool) []string {
	if admin {
		return scopes.Roles["admin"]
	}
	return scopes.Roles["user"]
}

// heldScopes is what the caller may do: a session has its role's scopes, a
// token the intersection of its scopes with its owner's role, a service
// its configured scopes. ok is false for an anonymous caller.
func heldScopes(c echo.Context) (scopes.Set, bool) {
	if h, ok := c.Get(ctxHeld).(scopes.Set); ok {
		return h, true
	}
	id, ok := identityOf(c)
	if !ok {
		return scopes.Set{}, false
	}
	var held scopes.Set
	switch {
	case id.Service != "":
		held = scopes.Expand(id.Scopes, scopes.Owner{Name: id.Service, Service: true})
	case id.Via == "token":
		held = scopes.ForToken(roleScopes(id.Admin), scopes.Owner{Name: id.User}, id.Scopes, nil)
	default:
		held = scopes.Expand(roleScopes(id.Admin), scopes.Owner{Name: id.User})
	}
	c.Set(ctxHeld, held)
	return held, true
}

// scopesOf lists the caller's scopes as GET /hub/api/user reports them.
func scopesOf(c echo.Context) []string {
	held, _ := heldScopes(c)
	if s := held.Strings(); s != nil {
		return s
	}
	return []string{}
}

// publicAPI are routes swarmhub answers to everyone; JupyterHub wants
// read:hub for /info, but it only tells the version.
var publicAPI = map[string]bool{"GET /info": true}

// requireScopes lets a /hub/api request through only if the caller's
// scopes permit its route (scopes.RouteTable), as JupyterHub's handlers
// check them. A route missing from the table is refused, except the
// group's catch-all, which answers 404.
func (s *Server) requireScopes(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		method := c.Request().Method
		rel := strings.TrimPrefix(c.Path(), "/hub/api")
		if publicAPI[method+" "+rel] {
			return next(c)
		}
		route, listed := scopes.Lookup(method, rel)
		if !listed {
			if rel == "/*" || rel == "" {
				return next(c) // no such route: echo's 404
			}
			return apiError(http.StatusForbidden, "this API route has no scope rule")
		}
		name := c.Param("name")
		if route.Resource == scopes.UserRes || route.Resource == scopes.ServerRes {
			n, err := s.d.Namer.Canonical(name)
			if err != nil {
				return apiError(http.StatusBadRequest, err.Error())
			}
			name = n
			c.Set(ctxName, name)
		}
		held, authenticated := heldScopes(c)
		if !route.Permits(held, authenticated, name, nil) {
			if !authenticated {
				return apiError(http.StatusForbidden, "Missing or invalid credentials.")
			}
			return apiError(http.StatusForbidden, fmt.Sprintf("Action is not authorized with current scopes; requires any of [%s]", strings.Join(route.Needs, ", ")))
		}
		return next(c)
	}
}

// checkTokenScopes refuses, as JupyterHub does, a token request for scopes
// unknown (400) or not held by the token's owner (403).
func (s *Server) checkTokenScopes(ctx context.Context, owner string, requested []string) error {
	if len(requested) == 0 {
		return nil
	}
	u, err := s.d.Store.GetUser(ctx, owner)
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, fmt.Sprintf("no user %q", owner))
	} else if err != nil {
		return err
	}
	o := scopes.Owner{Name: owner}
	held := scopes.Expand(roleScopes(u.Admin), o)
	for _, r := range requested {
		if !scopes.Known(r) {
			return apiError(http.StatusBadRequest, fmt.Sprintf("no such scope: %q", r))
		}
		want := scopes.Expand([]string{r}, o)
		if !slices.Equal(scopes.Intersect(want, held, nil).Strings(), want.Strings()) {
			return apiError(http.StatusForbidden, fmt.Sprintf("Not assigning requested scopes %s not held by %s", r, owner))
		}
	}
	return nil
}

// ServerAccess says whether id may open its own server (own) and every
// user's server (all) through the proxy: a session or an unscoped token by
// its role, a scoped token only with access:servers (an OAuth token of
// jupyterhub-singleuser has it; a token made for reading users has not).
// The scopes come cached with the identity, so this costs no Redis call.
func ServerAccess(id Identity) (own, all bool) {
	if id.User == "" {
		return false, false
	}
	if id.Via != "token" || id.Scopes == nil {
		return true, id.Admin
	}
	held := scopes.ForToken(roleScopes(id.Admin), scopes.Owner{Name: id.User}, id.Scopes, nil)
	f, any := held["access:servers"]
	return scopes.Allows(held, "access:servers", scopes.Target{User: id.User, Server: id.User + "/"}), any && f == nil
}
