package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (s *Server) tokenPage(c echo.Context) error {
	id, _ := identityOf(c)
	toks, err := s.d.Store.ListTokens(c.Request().Context(), id.User)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "token.html", map[string]any{"Tokens": toks, "XSRF": id.XSRF})
}
