package web

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/scopes"
)

// healthTTL is how long one run of the dependency checks answers
// /hub/health: anonymous callers (load balancers, anyone on the internet)
// must not be able to turn requests into LDAP binds and Redis round trips.
const healthTTL = 5 * time.Second

// healthTimeout bounds one run of the checks.
const healthTimeout = 3 * time.Second

// healthCache holds the last run of the checks; at most one run is in
// flight, and every request that finds the result expired waits for it.
type healthCache struct {
	mu      sync.Mutex
	checks  map[string]string
	ok      bool
	at      time.Time
	running chan struct{} // closed when the run in flight ends
}

// healthResult runs the checks when the cached result is older than
// healthTTL, once for all the requests that ask meanwhile.
func (s *Server) healthResult(ctx context.Context) (ok bool, checks map[string]string) {
	h := &s.healthC
	h.mu.Lock()
	if !h.at.IsZero() && s.now().Sub(h.at) < healthTTL {
		defer h.mu.Unlock()
		return h.ok, h.checks
	}
	done := h.running
	if done == nil {
		done = make(chan struct{})
		h.running = done
		go s.runHealthChecks(done)
	}
	h.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return false, map[string]string{"health": "error: " + ctx.Err().Error()}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok, h.checks
}

// runHealthChecks is detached from the request that started it, so a
// client that hangs up does not fail the run for the others waiting.
func (s *Server) runHealthChecks(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
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
	h := &s.healthC
	h.mu.Lock()
	h.ok, h.checks, h.at, h.running = ok, checks, s.now(), nil
	h.mu.Unlock()
	close(done)
}

// health answers ok or degraded to everyone (503 with ?strict), and which
// dependency failed only to callers holding read:hub (admins).
func (s *Server) health(c echo.Context) error {
	ok, checks := s.healthResult(c.Request().Context())
	status := "ok"
	if !ok {
		status = "degraded"
	}
	code := http.StatusOK
	if !ok && c.QueryParam("strict") != "" {
		code = http.StatusServiceUnavailable
	}
	held, authenticated := heldScopes(c)
	if !authenticated || !scopes.Allows(held, "read:hub", scopes.Target{}) {
		return c.JSON(code, map[string]any{"status": status})
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
