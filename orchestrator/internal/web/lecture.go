package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// StartLine is where starts wait their turn (the spawner's Manager
// satisfies it). Place counts as the user's sign of life in the line.
type StartLine interface {
	Place(ctx context.Context, user string) (spawner.Place, bool, error)
	LineStatus(ctx context.Context) (spawner.LineStatus, error)
}

// CapacityReader reads how many more servers fit (capacity.Reader
// satisfies it).
type CapacityReader interface {
	Report(ctx context.Context) (capacity.Report, error)
}

// linePoll is how often a progress stream of a waiting start asks for its
// place; it must stay well under notebook.line_timeout.
const linePoll = 2 * time.Second

// lineMessage is what a student in line reads.
func lineMessage(p spawner.Place) string {
	if p.Full {
		return fmt.Sprintf("The course's servers are all taken right now. You are number %d in line; your server starts by itself when a place frees. Keep this page open.", p.Position)
	}
	msg := fmt.Sprintf("Many students are starting at once. You are number %d in line", p.Position)
	if p.Wait > 0 {
		msg += fmt.Sprintf("; your start begins in about %s", p.Wait.Round(time.Second))
	}
	return msg + ". Keep this page open."
}

// followLine streams the place of a start waiting in line until it is
// admitted (the record says starting) or is no longer in line. The stream
// is the student's sign of life: closing the page leaves the line.
func (s *Server) followLine(ctx context.Context, name string, send func(progressEvent)) (store.Server, error) {
	var last spawner.Place
	var sent time.Time
	for {
		p, in, err := s.d.Line.Place(ctx, name)
		if err != nil {
			return store.Server{}, err
		}
		if !in || p.Starting {
			srv, err := s.server(ctx, name)
			if err != nil || !in || srv.State == store.StateStarting || srv.State == store.StateRunning {
				return srv, err
			}
		} else if p != last || time.Since(sent) > 15*time.Second {
			// Unchanged places are sent again now and then, so that no
			// proxy on the way closes a quiet stream.
			last, sent = p, time.Now()
			send(progressEvent{Message: lineMessage(p), Position: p.Position, LineLength: p.Length, Full: p.Full, WaitSeconds: int(p.Wait.Seconds())})
		}
		select {
		case <-ctx.Done():
			return store.Server{}, ctx.Err()
		case <-time.After(linePoll):
		}
	}
}

// lineModel is the line as admins read it.
type lineModel struct {
	Waiting  []lineEntryModel `json:"waiting"`
	Starting []string         `json:"starting"`
	Bound    int              `json:"starts_in_flight_bound"`
	// StartsPerNode is the runtime override of notebook.starts_per_node;
	// absent while the configuration applies.
	StartsPerNode *int `json:"starts_per_node,omitempty"`
}

type lineEntryModel struct {
	Name     string    `json:"name"`
	Position int       `json:"position"`
	Joined   time.Time `json:"joined"`
	LastSeen time.Time `json:"last_seen"`
}

func (s *Server) lineModel(ctx context.Context) (lineModel, error) {
	st, err := s.d.Line.LineStatus(ctx)
	if err != nil {
		return lineModel{}, err
	}
	m := lineModel{Waiting: []lineEntryModel{}, Starting: st.Starting, Bound: st.Bound}
	if m.Starting == nil {
		m.Starting = []string{}
	}
	if v, err := s.d.Store.GetSetting(ctx, spawner.SettingStartsPerNode); err == nil {
		if n, err := strconv.Atoi(v); err == nil {
			m.StartsPerNode = &n
		}
	}
	for i, e := range st.Waiting {
		m.Waiting = append(m.Waiting, lineEntryModel{Name: e.User, Position: i + 1, Joined: e.Joined, LastSeen: e.Seen})
	}
	return m, nil
}

func (s *Server) apiLine(c echo.Context) error {
	if s.d.Line == nil {
		return apiError(http.StatusNotFound, "this hub has no start line")
	}
	m, err := s.lineModel(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

// apiSetLine sets or clears (null) the runtime override of
// notebook.starts_per_node, e.g. to let everyone start at once.
func (s *Server) apiSetLine(c echo.Context) error {
	if s.d.Line == nil {
		return apiError(http.StatusNotFound, "this hub has no start line")
	}
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	var body struct {
		StartsPerNode *int `json:"starts_per_node"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	v, what := "", "the configured value"
	if n := body.StartsPerNode; n != nil {
		if *n < capacity.AutoStarts {
			return apiError(http.StatusBadRequest, fmt.Sprintf("starts_per_node %d must be -1 (each node's CPU count), 0 (no bound) or positive", *n))
		}
		v = strconv.Itoa(*n)
		what = v
	}
	if err := s.d.Store.SetSetting(ctx, spawner.SettingStartsPerNode, v); err != nil {
		return err
	}
	s.event(ctx, "settings", "", id.Actor(), "starts per node: "+what)
	m, err := s.lineModel(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

// capacityModel is the capacity as admins read it, with the warning the
// dashboard shows.
type capacityModel struct {
	capacity.Report
	Running int    `json:"running"`
	Allowed int    `json:"allowed_users"`
	Warning string `json:"warning,omitempty"`
}

func (s *Server) capacityModel(ctx context.Context, counts userCounts) (capacityModel, error) {
	rep, err := s.d.Capacity.Report(ctx)
	if err != nil {
		return capacityModel{}, err
	}
	m := capacityModel{Report: rep, Running: counts.Running, Allowed: counts.Users - counts.Blocked}
	if rep.Fit != capacity.Unlimited && m.Allowed > m.Running+rep.Fit {
		m.Warning = fmt.Sprintf("%d users may start a server but only %d fit (%d running, %d more); the rest wait in line until a server stops", m.Allowed, m.Running+rep.Fit, m.Running, rep.Fit)
	}
	return m, nil
}

func (s *Server) apiCapacity(c echo.Context) error {
	if s.d.Capacity == nil {
		return apiError(http.StatusNotFound, "this hub does not read the cluster's capacity")
	}
	ctx := c.Request().Context()
	snap, err := s.loadUsers(ctx)
	if err != nil {
		return err
	}
	m, err := s.capacityModel(ctx, snap.Counts)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "cannot read the capacity from Docker: "+err.Error())
	}
	return c.JSON(http.StatusOK, m)
}

// lectureView is the dashboard's capacity and line card.
type lectureView struct {
	Capacity *capacityModel
	Line     *lineModel
	Error    string
}

func (s *Server) lectureView(ctx context.Context, counts userCounts) *lectureView {
	if s.d.Capacity == nil && s.d.Line == nil {
		return nil
	}
	v := &lectureView{}
	if s.d.Capacity != nil {
		m, err := s.capacityModel(ctx, counts)
		if err != nil {
			v.Error = "The capacity cannot be read from Docker right now: " + err.Error()
		} else {
			v.Capacity = &m
		}
	}
	if s.d.Line != nil {
		if m, err := s.lineModel(ctx); err == nil {
			v.Line = &m
		} else {
			s.log.Warn("dashboard: reading the start line", "err", err)
		}
	}
	return v
}

// queuedUserModel answers a start that waits in line: JupyterHub's user
// model with the start pending, plus where it stands.
type queuedUserModel struct {
	userModel
	Line    spawner.Place `json:"start_line"`
	Message string        `json:"message"`
}

// inLine is m with its default server shown as a pending spawn that waits
// in line at p: what a JupyterHub client polling the user expects while
// the start has not begun.
func inLine(m userModel, p spawner.Place) queuedUserModel {
	m.State = store.StateStarting
	m.Pending = sptr("spawn")
	m.Server = nil
	m.Servers[""] = serverModel{Pending: sptr("spawn"), URL: identity.UserPath(m.Name),
		ProgressURL: "/hub/api/users/" + m.Name + "/server/progress", State: store.StateStarting}
	return queuedUserModel{userModel: m, Line: p, Message: lineMessage(p)}
}

// apiGetUser is GET /users/NAME; a start waiting in line shows as pending,
// and the request counts as a sign of life for it.
func (s *Server) apiGetUser(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	m, err := s.loadUser(ctx, name)
	if err != nil {
		return err
	}
	if s.d.Line != nil && m.State != store.StateStarting && m.State != store.StateRunning && m.State != store.StateStopping {
		if p, in, err := s.d.Line.Place(ctx, name); err == nil && in {
			return c.JSON(http.StatusOK, inLine(m, p))
		}
	}
	return c.JSON(http.StatusOK, m)
}
