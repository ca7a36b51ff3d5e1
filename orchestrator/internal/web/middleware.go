package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
)

const (
	ctxIdentity = "swarmhub.identity"
	ctxName     = "swarmhub.name"
	ctxReqID    = "swarmhub.reqid"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = randomHex(8)
		}
		c.Set(ctxReqID, id)
		c.Response().Header().Set("X-Request-Id", id)
		return next(c)
	}
}

// limitBodies bounds what a hub request may send: forms are small, API
// bodies are JSON lists of names. A larger body fails to parse with a 4xx
// instead of costing memory. (/user/ traffic never passes here.)
func (s *Server) limitBodies(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body != nil && r.Body != http.NoBody {
			limit := int64(1 << 20)
			if r.URL.Path == "/hub/login" {
				limit = 64 << 10
			}
			if r.ContentLength > limit {
				return apiError(http.StatusRequestEntityTooLarge, "request body too large")
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		}
		return next(c)
	}
}

func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic in handler", "panic", fmt.Sprint(p), "path", c.Request().URL.Path, "request_id", c.Get(ctxReqID))
				err = echo.NewHTTPError(http.StatusInternalServerError, "internal error")
			}
		}()
		return next(c)
	}
}

// accessLog writes one structured line per hub request: no query strings
// (they can carry tokens), no headers, no cookies.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		r := c.Request()
		lvl := slog.LevelInfo
		if r.URL.Path == "/hub/health" || r.URL.Path == "/hub/metrics" || strings.HasPrefix(r.URL.Path, "/hub/static/") {
			lvl = slog.LevelDebug
		}
		attrs := []any{"request_id", c.Get(ctxReqID), "method", r.Method, "path", r.URL.Path,
			"status", c.Response().Status, "duration_ms", time.Since(start).Milliseconds()}
		if id, ok := c.Get(ctxIdentity).(Identity); ok {
			attrs = append(attrs, "user", id.User)
			if id.Service != "" {
				attrs = append(attrs, "service", id.Service)
			}
		}
		s.log.Log(r.Context(), lvl, "http request", attrs...)
		return nil
	}
}

func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		if s.o.TLS {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}

// identify attaches the caller's identity, if any, to the context.
func (s *Server) identify(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if id, ok := s.services.identify(c.Request()); ok {
			c.Set(ctxIdentity, id)
		} else if id, ok := s.sessions.Identify(c.Request()); ok {
			c.Set(ctxIdentity, id)
		}
		return next(c)
	}
}

func identityOf(c echo.Context) (Identity, bool) {
	id, ok := c.Get(ctxIdentity).(Identity)
	return id, ok
}

// requireLogin sends anonymous page visitors to the login form; a
// service, which is no user, has no pages.
func (s *Server) requireLogin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, ok := identityOf(c)
		if !ok {
			return c.Redirect(http.StatusFound, "/hub/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		}
		if id.Service != "" {
			return apiError(http.StatusForbidden, "a service has no pages; use the API")
		}
		return next(c)
	}
}

// apiAuth answers 403 for API calls without a session or a valid token
// (JupyterHub's status: clients treat 401 as "log in again"), except the
// version endpoint.
func (s *Server) apiAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := strings.TrimSuffix(c.Request().URL.Path, "/")
		if p == "/hub/api" || p == "/hub/api/info" {
			return next(c)
		}
		if _, ok := identityOf(c); !ok {
			return apiError(http.StatusForbidden, "not logged in: log in at /hub/login or send 'Authorization: token <token>'")
		}
		return next(c)
	}
}

// csrf requires the session's _xsrf token on every state-changing request
// authenticated by cookie. Token-authenticated requests cannot be forged by
// a browser, so they pass.
func (s *Server) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		id, ok := identityOf(c)
		if !ok || id.Via != "session" {
			return next(c)
		}
		if !xsrfValid(c, id) {
			return apiError(http.StatusForbidden, "missing or wrong _xsrf token: send the X-XSRFToken header from the page, or use an API token")
		}
		return next(c)
	}
}

// xsrfValid reports whether the request carries id's session _xsrf token
// (header, or form field of a form post).
func xsrfValid(c echo.Context, id Identity) bool {
	r := c.Request()
	got := r.Header.Get("X-XSRFToken")
	if got == "" {
		got = r.Header.Get("X-CSRF-Token")
	}
	if got == "" && isFormPost(r) {
		got = c.FormValue("_xsrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(id.XSRF)) == 1
}

func isFormPost(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, ok := identityOf(c)
		if !ok {
			return apiError(http.StatusForbidden, "not logged in")
		}
		if !id.Admin {
			return apiError(http.StatusForbidden, "this needs an admin account")
		}
		return next(c)
	}
}

// canonicalParam is :name as requireScopes canonicalised it, or
// canonicalised here.
func (s *Server) canonicalParam(c echo.Context) (string, error) {
	if n, ok := c.Get(ctxName).(string); ok {
		return n, nil
	}
	name, err := s.d.Namer.Canonical(c.Param("name"))
	if err != nil {
		return "", apiError(http.StatusBadRequest, err.Error())
	}
	return name, nil
}

// isUnavailable recognises a dependency that cannot be reached (Redis or
// Docker down, refused or timing out), as opposed to a bug: those deserve a
// 503 that says "try again", not a 500.
func isUnavailable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// apiErr is an error with a status and a message safe to show.
type apiErr struct {
	Status  int
	Message string
	Retry   time.Duration
}

func (e *apiErr) Error() string { return e.Message }

func apiError(status int, msg string) error { return &apiErr{Status: status, Message: msg} }

// httpError renders every error: JSON for the API and non-HTML clients, a
// small page for browsers. Internal errors are logged, never shown.
func (s *Server) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "internal error; the admins can find details in the orchestrator log"
	var ae *apiErr
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		status, msg = ae.Status, ae.Message
		if ae.Retry > 0 {
			c.Response().Header().Set("Retry-After", fmt.Sprint(int(ae.Retry.Seconds()+0.999)))
		}
	case errors.As(err, &he):
		status = he.Code
		msg = fmt.Sprint(he.Message)
		if status == http.StatusNotFound {
			msg = "no such page or API route"
		}
	case isUnavailable(err):
		status = http.StatusServiceUnavailable
		msg = "the hub cannot reach a service it needs (its database or the Docker engine); your files and running server are safe. Try again in a minute"
		c.Response().Header().Set("Retry-After", "10")
		s.log.Error("dependency unavailable", "request_id", c.Get(ctxReqID), "path", c.Request().URL.Path, "err", err)
	default:
		s.log.Error("request failed", "request_id", c.Get(ctxReqID), "path", c.Request().URL.Path, "err", err)
	}
	r := c.Request()
	if strings.HasPrefix(r.URL.Path, "/hub/api") || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		_ = c.JSON(status, map[string]any{"status": status, "message": msg})
		return
	}
	_ = s.render(c, status, "error.html", map[string]any{"Status": status, "Message": msg})
}
