package web

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

// logoutPage asks before logging out: a GET must change nothing, or any
// page could log a student out with <img src="/hub/logout">.
func (s *Server) logoutPage(c echo.Context) error {
	id, ok := identityOf(c)
	if !ok || id.Via != "session" {
		return s.loggedOut(c)
	}
	return s.render(c, http.StatusOK, "logout-confirm.html", map[string]any{"XSRF": id.XSRF})
}

// logout ends the caller's session on every replica; it needs the
// session's _xsrf token like every other state change.
func (s *Server) logout(c echo.Context) error {
	id, ok := identityOf(c)
	if !ok || id.Via != "session" {
		return s.loggedOut(c)
	}
	if !xsrfValid(c, id) {
		return s.render(c, http.StatusForbidden, "logout-confirm.html", map[string]any{"XSRF": id.XSRF,
			"Error": "This logout did not come from this hub's page. Press the button to log out."})
	}
	if err := s.endSession(c.Request().Context(), id); err != nil {
		s.log.Error("logout failed", "err", err)
		return s.render(c, http.StatusServiceUnavailable, "logout-confirm.html", map[string]any{"XSRF": id.XSRF,
			"Error": "The hub cannot reach its database, so you are still logged in. Please try again in a minute."})
	}
	return s.loggedOut(c)
}

func (s *Server) loggedOut(c echo.Context) error {
	c.SetCookie(s.cookie(s.o.CookieName, "", "/hub/", -1, http.SameSiteLaxMode))
	c.SetCookie(s.legacySessionCookie())
	if id, ok := identityOf(c); ok && id.Via == "session" {
		c.SetCookie(s.cookie(s.access.Name, "", serverPath(id.User), -1, http.SameSiteLaxMode))
	}
	return s.render(c, http.StatusOK, "logout.html", nil)
}

// endSession deletes one session and tells every replica (this one
// included) to forget it and close the websockets it opened.
func (s *Server) endSession(ctx context.Context, id Identity) error {
	if err := s.d.Store.DeleteSession(ctx, id.SessionID); err != nil {
		return err
	}
	msg := sessionPrefix + id.SessionHash
	s.DropLocal(msg)
	if err := s.d.Store.PublishRevoke(ctx, msg); err != nil {
		s.log.Warn("logout broadcast", "err", err)
	}
	s.event(ctx, "logout", id.User, id.User, "logged out")
	return nil
}
