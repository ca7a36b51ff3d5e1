package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (s *Server) logout(c echo.Context) error {
	if id, ok := identityOf(c); ok && id.Via == "session" {
		ctx := c.Request().Context()
		if err := s.d.Store.DeleteSession(ctx, id.SessionID); err != nil {
			s.log.Warn("logout: deleting session", "err", err)
		}
		s.sessions.DropSession(id.SessionID)
		s.event(ctx, "logout", id.User, id.User, "logged out")
	}
	c.SetCookie(s.cookie(s.o.CookieName, "", "/hub/", -1, http.SameSiteLaxMode))
	c.SetCookie(s.legacySessionCookie())
	if id, ok := identityOf(c); ok && id.Via == "session" {
		c.SetCookie(s.cookie(s.access.Name, "", serverPath(id.User), -1, http.SameSiteLaxMode))
	}
	return s.render(c, http.StatusOK, "logout.html", nil)
}
