package web

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

func (s *Server) health(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	for name, ch := range s.o.Checks {
		if err := ch.Check(ctx); err != nil {
			checks[name] = "error: " + err.Error()
			ok = false
		} else {
			checks[name] = "ok"
		}
	}
	status := "ok"
	if !ok {
		status = "degraded"
	}
	code := http.StatusOK
	if !ok && c.QueryParam("strict") != "" {
		code = http.StatusServiceUnavailable
	}
	return c.JSON(code, map[string]any{"status": status, "version": s.o.Version, "checks": checks})
}

func (s *Server) metrics(c echo.Context) error {
	if s.o.Metrics == nil {
		return echo.ErrNotFound
	}
	s.o.Metrics.ServeHTTP(c.Response(), c.Request())
	return nil
}
