package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

func (s *Server) userRedirect(c echo.Context) error {
	// The hub cookie is scoped to /hub/: hand /user-redirect/ over to the
	// hub's own spelling, where the browser sends it.
	if r := c.Request(); strings.HasPrefix(r.URL.Path, "/user-redirect/") {
		return c.Redirect(http.StatusFound, "/hub"+r.URL.RequestURI())
	}
	id, ok := identityOf(c)
	if !ok {
		return c.Redirect(http.StatusFound, "/hub/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
	}
	rest := strings.TrimPrefix(c.Param("*"), "/")
	target := identity.UserPath(id.User) + rest
	if q := c.Request().URL.RawQuery; q != "" {
		target += "?" + q
	}
	return c.Redirect(http.StatusFound, safeNext(target, "/hub/home"))
}
