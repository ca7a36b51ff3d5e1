package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func (s *Server) spawnPendingPage(c echo.Context) error {
	id, _ := identityOf(c)
	name, err := s.d.Namer.Canonical(c.Param("name"))
	if err != nil {
		return apiError(http.StatusBadRequest, err.Error())
	}
	if name != id.User && !id.Admin {
		return apiError(http.StatusForbidden, "you may only start your own server")
	}
	base := identity.UserPath(name)
	next := safeNext(c.QueryParam("next"), base)
	if !strings.HasPrefix(next, base) {
		next = base
	}
	srv, err := s.server(c.Request().Context(), name)
	if err != nil {
		return err
	}
	if srv.State == store.StateRunning {
		return c.Redirect(http.StatusFound, next)
	}
	return s.render(c, http.StatusOK, "spawn.html", map[string]any{"Name": name, "Server": srv, "Next": next, "XSRF": id.XSRF})
}
