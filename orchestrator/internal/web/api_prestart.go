package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/prestart"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Prestarts keeps the pre-start schedules and runs a group's starts
// (prestart.Runner satisfies it).
type Prestarts interface {
	List(ctx context.Context) ([]prestart.View, error)
	Get(ctx context.Context, name string) (prestart.View, error)
	Put(ctx context.Context, s prestart.Schedule) error
	Delete(ctx context.Context, name string) error
	Run(ctx context.Context, s prestart.Schedule, lecture time.Time) (prestart.Report, error)
}

func (s *Server) prestartRoutes(api *echo.Group) {
	api.GET("/prestarts", s.apiListPrestarts)
	api.GET("/prestarts/:name", s.apiGetPrestart)
	api.PUT("/prestarts/:name", s.apiPutPrestart)
	api.DELETE("/prestarts/:name", s.apiDeletePrestart)
	api.POST("/groups/:name/servers", s.apiStartGroup)
	api.DELETE("/groups/:name/servers", s.apiStopGroup)
}

func (s *Server) prestarts() (Prestarts, error) {
	if s.d.Prestarts == nil {
		return nil, apiError(http.StatusServiceUnavailable, "pre-starts are not configured on this orchestrator")
	}
	return s.d.Prestarts, nil
}

func prestartError(err error) error {
	var inv *prestart.InvalidError
	switch {
	case errors.As(err, &inv):
		return apiError(http.StatusBadRequest, err.Error())
	case errors.Is(err, prestart.ErrNotFound):
		return apiError(http.StatusNotFound, err.Error())
	}
	return err
}

// apiListPrestarts is GET /prestarts: every schedule with its next run.
func (s *Server) apiListPrestarts(c echo.Context) error {
	p, err := s.prestarts()
	if err != nil {
		return err
	}
	all, err := p.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, all)
}

func (s *Server) apiGetPrestart(c echo.Context) error {
	p, err := s.prestarts()
	if err != nil {
		return err
	}
	v, err := p.Get(c.Request().Context(), c.Param("name"))
	if err != nil {
		return prestartError(err)
	}
	return c.JSON(http.StatusOK, v)
}

// apiPutPrestart is PUT /prestarts/NAME with a schedule's JSON (the name
// in the body, if any, must match the path's).
func (s *Server) apiPutPrestart(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := s.prestarts()
	if err != nil {
		return err
	}
	var sc prestart.Schedule
	if err := bindJSON(c, &sc); err != nil {
		return err
	}
	name := c.Param("name")
	switch {
	case sc.Name == "":
		sc.Name = name
	case sc.Name != name:
		return apiError(http.StatusBadRequest, fmt.Sprintf("the body names schedule %q but the path %q; they must agree", sc.Name, name))
	}
	if sc.Group != "" {
		if err := s.groupExists(ctx, sc.Group); err != nil {
			return err
		}
	}
	if err := p.Put(ctx, sc); err != nil {
		return prestartError(err)
	}
	id, _ := identityOf(c)
	s.event(ctx, "prestart-saved", "", id.Actor(), "pre-start schedule "+sc.Name+" saved")
	v, err := p.Get(ctx, sc.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) apiDeletePrestart(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := s.prestarts()
	if err != nil {
		return err
	}
	if err := p.Delete(ctx, c.Param("name")); err != nil {
		return prestartError(err)
	}
	id, _ := identityOf(c)
	s.event(ctx, "prestart-deleted", "", id.Actor(), "pre-start schedule "+c.Param("name")+" deleted")
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) groupExists(ctx context.Context, name string) error {
	groups, err := s.d.Store.Groups(ctx)
	if err != nil {
		return err
	}
	if _, ok := groups[name]; !ok {
		return apiError(http.StatusBadRequest, fmt.Sprintf("no such group: %q; create it first (dashboard or POST /hub/api/groups/%s)", name, name))
	}
	return nil
}

// startAllTimeout bounds a start-all run that outlives its request.
const startAllTimeout = time.Hour

// apiStartGroup is POST /groups/NAME/servers: start every member's server
// (JupyterHub's admin page "Start All"), paced by ?rate_per_minute= (default
// 60). It answers at once; the run goes on in the background and its
// outcome is an event.
func (s *Server) apiStartGroup(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := s.prestarts()
	if err != nil {
		return err
	}
	name, err := groupParam(c)
	if err != nil {
		return err
	}
	if err := s.groupExists(ctx, name); err != nil {
		if ae := (*apiErr)(nil); errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			return apiError(http.StatusNotFound, ae.Message)
		}
		return err
	}
	rate := 60
	if v := c.QueryParam("rate_per_minute"); v != "" {
		if rate, err = strconv.Atoi(v); err != nil || rate < 1 || rate > 6000 {
			return apiError(http.StatusBadRequest, "rate_per_minute must be a whole number from 1 to 6000")
		}
	}
	id, _ := identityOf(c)
	sc := prestart.Schedule{Name: "start-all", Group: name, RatePerMinute: rate}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), startAllTimeout)
	go func() {
		defer cancel()
		if _, err := p.Run(bg, sc, time.Time{}); err != nil {
			s.log.Warn("start all servers of a group", "group", name, "err", err)
		}
	}()
	s.event(ctx, "group-start-all", "", id.Actor(), fmt.Sprintf("starting every server of group %s, %d a minute", name, rate))
	return c.JSON(http.StatusAccepted, map[string]any{"group": name, "rate_per_minute": rate,
		"message": "the servers start in the background; the outcome appears in /hub/api/events"})
}

// apiStopGroup is DELETE /groups/NAME/servers: stop every member's running
// or starting server ("Stop All"); answers with who was stopped.
func (s *Server) apiStopGroup(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := groupParam(c)
	if err != nil {
		return err
	}
	groups, err := s.d.Store.Groups(ctx)
	if err != nil {
		return err
	}
	members, ok := groups[name]
	if !ok {
		return apiError(http.StatusNotFound, fmt.Sprintf("no such group: %q", name))
	}
	id, _ := identityOf(c)
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 8)
		stopped = []string{}
		failed  = map[string]string{}
	)
	for _, u := range members {
		srv, err := s.d.Store.GetServer(ctx, u)
		if errors.Is(err, store.ErrNotFound) || (err == nil && srv.State != store.StateRunning && srv.State != store.StateStarting) {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.d.Servers.Stop(ctx, u, "stopped with group "+name+" by "+id.Actor())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[u] = err.Error()
			} else {
				stopped = append(stopped, u)
			}
		})
	}
	wg.Wait()
	s.event(ctx, "group-stop-all", "", id.Actor(), fmt.Sprintf("stopped %d servers of group %s (%d failed)", len(stopped), name, len(failed)))
	return c.JSON(http.StatusOK, map[string]any{"group": name, "stopped": stopped, "failed": failed})
}

// StartServer starts user's server as an admin's start from the API does
// (current image, instructor environment); blocked users are refused.
// started is false when it already runs or starts. A full spawn queue is
// waited out, not reported as a failure.
func (s *Server) StartServer(ctx context.Context, user string) (started bool, err error) {
	u, err := s.d.Store.GetUser(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("no user %q", user)
	} else if err != nil {
		return false, err
	}
	if u.Blocked {
		return false, fmt.Errorf("%s is blocked", user)
	}
	if srv, err := s.d.Store.GetServer(ctx, user); err == nil && (srv.State == store.StateRunning || srv.State == store.StateStarting) {
		return false, nil
	}
	instr, err := s.instructor(ctx, u)
	if err != nil {
		return false, err
	}
	for {
		// Nobody watches this start: it keeps its place in the start line
		// until its turn (a queued start counts as started).
		_, err = s.d.Servers.Start(ctx, user, spawner.StartOptions{Image: s.currentImage(ctx), Instructor: instr, Unattended: true})
		var busy *spawner.BusyError
		var queued *spawner.QueuedError
		if errors.As(err, &queued) {
			return true, nil
		}
		if !errors.As(err, &busy) {
			return err == nil, err
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-time.After(busy.RetryAfter):
		}
	}
}
