package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// serverModel and userModel follow JupyterHub's REST shapes so its clients
// and habits carry over.
type serverModel struct {
	Name         string     `json:"name"`
	Ready        bool       `json:"ready"`
	Pending      *string    `json:"pending"`
	URL          string     `json:"url"`
	ProgressURL  string     `json:"progress_url"`
	Started      *time.Time `json:"started"`
	LastActivity *time.Time `json:"last_activity"`
	State        string     `json:"state"`
	Image        string     `json:"image,omitempty"`
	Error        string     `json:"error,omitempty"`
}

type userModel struct {
	Kind         string                 `json:"kind"`
	Name         string                 `json:"name"`
	Admin        bool                   `json:"admin"`
	Blocked      bool                   `json:"blocked"`
	Allowed      bool                   `json:"allowed"`
	Groups       []string               `json:"groups"`
	Server       *string                `json:"server"`
	Pending      *string                `json:"pending"`
	Created      *time.Time             `json:"created"`
	LastActivity *time.Time             `json:"last_activity"`
	Servers      map[string]serverModel `json:"servers"`
	// swarmhub's additions: the default server's state, start time and
	// image, and whether that image is older than the current one.
	State    string     `json:"state"`
	Started  *time.Time `json:"started"`
	Image    string     `json:"image"`
	Outdated bool       `json:"outdated"`
	Error    string     `json:"error,omitempty"`
	// DiskBytes is the workspace's size on disk as last measured (absent
	// before the first measurement).
	DiskBytes *int64 `json:"disk_bytes,omitempty"`
	// Scopes: only in GET /hub/api/user, the caller's own.
	Scopes []string `json:"scopes,omitempty"`
}

func tptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func sptr(s string) *string { return &s }

func (s *Server) server(ctx context.Context, user string) (store.Server, error) {
	srv, err := s.d.Store.GetServer(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return store.Server{User: user, State: store.StateStopped}, nil
	}
	if srv.State == "" {
		srv.State = store.StateStopped
	}
	return srv, err
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

// makeUserModel joins a user with its server record and its last proxied
// activity; current is the notebook image new starts get.
func makeUserModel(u store.User, srv store.Server, activity time.Time, current string) userModel {
	m := userModel{Kind: "user", Name: u.Name, Admin: u.Admin, Blocked: u.Blocked, Allowed: u.Allowed,
		Groups: []string{}, Created: tptr(u.Created),
		Servers: map[string]serverModel{}, State: store.StateStopped}
	if srv.State != "" {
		m.State = srv.State
	}
	m.Error = srv.Error
	last := latest(u.LastLogin, srv.Ready, activity)
	m.LastActivity = tptr(last)
	switch srv.State {
	case store.StateRunning, store.StateStarting, store.StateStopping:
		m.Image = srv.Image
		m.Started = tptr(srv.Started)
		m.Outdated = srv.Image != "" && current != "" && srv.Image != current
		sm := serverModel{Name: "", Ready: srv.State == store.StateRunning, URL: identity.UserPath(u.Name),
			ProgressURL: "/hub/api/users/" + u.Name + "/server/progress", Started: tptr(srv.Started),
			LastActivity: tptr(last), State: srv.State, Image: srv.Image}
		if srv.State == store.StateStarting {
			sm.Pending = sptr("spawn")
			m.Pending = sptr("spawn")
		}
		if srv.State == store.StateStopping {
			sm.Pending = sptr("stop")
			m.Pending = sptr("stop")
		}
		if srv.State == store.StateRunning {
			m.Server = sptr(sm.URL)
		}
		m.Servers[""] = sm
	}
	return m
}

// JupyterHubAPIVersion is the JupyterHub REST API version swarmhub's
// /hub/api implements (JupyterHub 5's routes, status codes and models).
// Clients such as jupyterhub-idle-culler parse it as a PEP 440 version, so
// swarmhub's own build string goes in the separate "swarmhub" field.
const JupyterHubAPIVersion = "5.2.1"

func (s *Server) apiVersion(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"version": JupyterHubAPIVersion,
		"swarmhub": map[string]string{"version": s.o.Version}})
}

// apiMe is GET /user: the caller's model with the scopes it holds.
func (s *Server) apiMe(c echo.Context) error {
	id, _ := identityOf(c)
	if id.Service != "" {
		return c.JSON(http.StatusOK, map[string]any{"kind": "service", "name": id.Service, "scopes": scopesOf(c)})
	}
	m, err := s.loadUser(c.Request().Context(), id.User)
	if err != nil {
		return err
	}
	m.Scopes = scopesOf(c)
	return c.JSON(http.StatusOK, m)
}

func (s *Server) writeUser(c echo.Context, status int, name string) error {
	m, err := s.loadUser(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return c.JSON(status, m)
}

// loadUser joins one user with its server and activity; 404 if absent.
func (s *Server) loadUser(ctx context.Context, name string) (userModel, error) {
	u, err := s.d.Store.GetUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return userModel{}, apiError(http.StatusNotFound, fmt.Sprintf("no user %q; add it with POST /hub/api/users", name))
	} else if err != nil {
		return userModel{}, err
	}
	srv, err := s.server(ctx, name)
	if err != nil {
		return userModel{}, err
	}
	act, err := s.d.Store.Activity(ctx)
	if err != nil {
		return userModel{}, err
	}
	groups, err := s.d.Store.Groups(ctx)
	if err != nil {
		return userModel{}, err
	}
	m := makeUserModel(u, srv, act[name], s.currentImage(ctx))
	if us, ok, err := s.d.Store.UserUsage(ctx, name); err != nil {
		return userModel{}, err
	} else if ok {
		m.DiskBytes = &us.Bytes
	}
	if gs := groupsOf(groups)[name]; gs != nil {
		m.Groups = gs
	}
	return m, nil
}

// apiListUsers is JupyterHub's GET /users: state, offset and limit, plus
// name_filter and sort; the pagination envelope when the client asks for
// application/jupyterhub-pagination+json.
func (s *Server) apiListUsers(c echo.Context) error {
	q, err := parseUserQuery(c, 200, 1000)
	if err != nil {
		return err
	}
	snap, err := s.loadUsers(c.Request().Context())
	if err != nil {
		return err
	}
	page, total := selectUsers(snap.Users, q)
	return s.writePage(c, page, q.Offset, q.Limit, total)
}

// writePage answers a list as JupyterHub's paginated_model when the client
// asks for application/jupyterhub-pagination+json, else as a bare list.
// next.url is absolute and keeps every query parameter but offset and limit.
func (s *Server) writePage(c echo.Context, items any, offset, limit, total int) error {
	if !strings.Contains(c.Request().Header.Get("Accept"), "application/jupyterhub-pagination+json") {
		return c.JSON(http.StatusOK, items)
	}
	var next any
	if offset+limit < total {
		v := c.Request().URL.Query()
		v.Set("offset", strconv.Itoa(offset+limit))
		v.Set("limit", strconv.Itoa(limit))
		next = map[string]any{"offset": offset + limit, "limit": limit,
			"url": strings.TrimSuffix(s.publicURL(c), "/") + c.Request().URL.Path + "?" + v.Encode()}
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items,
		"_pagination": map[string]any{"offset": offset, "limit": limit, "total": total, "next": next}})
}

func intParam(c echo.Context, name string, def int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, apiError(http.StatusBadRequest, name+" must be a non-negative integer")
	}
	return n, nil
}

type addUsersBody struct {
	Usernames []string `json:"usernames"`
	Admin     bool     `json:"admin"`
}

func bindJSON(c echo.Context, v any) error {
	r := c.Request()
	if r.ContentLength == 0 {
		return nil
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, "request body is not the JSON this endpoint takes: "+err.Error())
	}
	return nil
}

// startOptions are the user_options swarmhub understands.
type startOptions struct {
	Image string `json:"image"`
}

// bindUserOptions reads a start's body as JupyterHub's user_options: any
// JSON object, whose options swarmhub does not know are ignored (as a
// spawner ignores them); anything but an object is a 400.
func bindUserOptions(c echo.Context) (startOptions, error) {
	var opts startOptions
	var raw map[string]json.RawMessage
	err := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20)).Decode(&raw)
	if errors.Is(err, io.EOF) {
		return opts, nil // no body: no options
	}
	if err != nil || raw == nil {
		return opts, apiError(http.StatusBadRequest, "user_options must be a JSON object")
	}
	if img, ok := raw["image"]; ok {
		if err := json.Unmarshal(img, &opts.Image); err != nil {
			return opts, apiError(http.StatusBadRequest, "user_options.image must be a string")
		}
	}
	return opts, nil
}

func (s *Server) apiAddUsers(c echo.Context) error {
	var body addUsersBody
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	created, err := s.addUsers(c, body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, created)
}

func (s *Server) apiAddOneUser(c echo.Context) error {
	var body struct {
		Admin bool `json:"admin"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	created, err := s.addUsers(c, addUsersBody{Usernames: []string{c.Param("name")}, Admin: body.Admin})
	if err != nil {
		return err
	}
	// JupyterHub answers the single-user form with the one user model.
	return c.JSON(http.StatusCreated, created[0])
}

// addUsers adds or re-allows the named users and returns the models of
// those it changed; a 409 when it changed none.
func (s *Server) addUsers(c echo.Context, body addUsersBody) ([]userModel, error) {
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	if len(body.Usernames) == 0 {
		return nil, apiError(http.StatusBadRequest, `give at least one name: {"usernames": ["alice", "bob"]}`)
	}
	var bad []string
	names := make([]string, 0, len(body.Usernames))
	for _, raw := range body.Usernames {
		n, err := s.d.Namer.Canonical(raw)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q: %v", raw, err))
			continue
		}
		names = append(names, n)
	}
	if len(bad) > 0 {
		return nil, apiError(http.StatusBadRequest, "nothing was added; fix these names first: "+strings.Join(bad, "; "))
	}
	created := []userModel{}
	for _, n := range names {
		u, err := s.d.Store.GetUser(ctx, n)
		if err == nil && u.Allowed && u.Admin == (u.Admin || body.Admin) {
			continue
		}
		if errors.Is(err, store.ErrNotFound) {
			u = store.User{Name: n, Created: time.Now().UTC()}
		} else if err != nil {
			return nil, err
		}
		u.Allowed = true
		u.Admin = u.Admin || body.Admin
		if err := s.d.Store.PutUser(ctx, u); err != nil {
			return nil, err
		}
		s.event(ctx, "user-added", n, id.Actor(), fmt.Sprintf("added (admin=%v)", u.Admin))
		created = append(created, makeUserModel(u, store.Server{}, time.Time{}, ""))
	}
	if len(created) == 0 {
		return nil, apiError(http.StatusConflict, "all of these users exist already")
	}
	return created, nil
}

func (s *Server) apiPatchUser(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	var body struct {
		Admin   *bool `json:"admin"`
		Blocked *bool `json:"blocked"`
		Allowed *bool `json:"allowed"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	u, err := s.d.Store.GetUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, fmt.Sprintf("no user %q", name))
	} else if err != nil {
		return err
	}
	if body.Admin != nil {
		if !*body.Admin && name == id.User {
			return apiError(http.StatusBadRequest, "you cannot remove your own admin rights; ask another admin")
		}
		u.Admin = *body.Admin
	}
	// Taking a user off the allow list ends their sessions, as blocking
	// does: whatever still admits them (admin, an allowed group, allow_all)
	// is decided again at their next login.
	disallowNow := false
	if body.Allowed != nil {
		disallowNow = !*body.Allowed && u.Allowed
		u.Allowed = *body.Allowed
	}
	blockNow := false
	if body.Blocked != nil {
		if *body.Blocked && name == id.User {
			return apiError(http.StatusBadRequest, "you cannot block yourself")
		}
		blockNow = *body.Blocked && !u.Blocked
		u.Blocked = *body.Blocked
	}
	if err := s.d.Store.PutUser(ctx, u); err != nil {
		return err
	}
	s.event(ctx, "user-changed", name, id.Actor(), fmt.Sprintf("admin=%v blocked=%v allowed=%v", u.Admin, u.Blocked, u.Allowed))
	if blockNow || disallowNow || body.Admin != nil {
		// Cached identities carry the admin flag: drop them either way.
		if err := s.Revoke(ctx, name); err != nil && (blockNow || disallowNow) {
			return err
		}
	}
	if blockNow {
		if err := s.d.Servers.Stop(ctx, name, "user blocked by "+id.Actor()); err != nil {
			return fmt.Errorf("blocked %s but stopping their server failed: %w", name, err)
		}
	}
	return s.writeUser(c, http.StatusOK, name)
}

func (s *Server) apiDeleteUser(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	if name == id.User {
		return apiError(http.StatusBadRequest, "you cannot delete your own account")
	}
	if _, err := s.d.Store.GetUser(ctx, name); errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, fmt.Sprintf("no user %q", name))
	} else if err != nil {
		return err
	}
	if c.QueryParam("remove_data") == "true" && s.o.RemoveData == nil {
		return apiError(http.StatusNotImplemented, "remove_data needs the archive backend, which is not configured; delete without it")
	}
	if err := s.Revoke(ctx, name); err != nil {
		return err
	}
	if err := s.d.Servers.Stop(ctx, name, "user deleted by "+id.Actor()); err != nil {
		return fmt.Errorf("stopping %s's server: %w", name, err)
	}
	if c.QueryParam("remove_data") == "true" {
		if err := s.o.RemoveData(ctx, name); err != nil {
			return fmt.Errorf("archiving and removing %s's workspace: %w", name, err)
		}
	}
	toks, _ := s.d.Store.ListTokens(ctx, name)
	for _, t := range toks {
		_ = s.d.Store.DeleteToken(ctx, name, t.ID)
	}
	if err := s.d.Store.DeleteUser(ctx, name); err != nil {
		return err
	}
	if err := s.leaveGroups(ctx, name); err != nil {
		return err
	}
	s.event(ctx, "user-deleted", name, id.Actor(), "deleted (remove_data="+c.QueryParam("remove_data")+")")
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) apiStartServer(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	u, err := s.d.Store.GetUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, fmt.Sprintf("no user %q", name))
	} else if err != nil {
		return err
	}
	if u.Blocked {
		return apiError(http.StatusForbidden, name+" is blocked; an admin must unblock the account first")
	}
	body, err := bindUserOptions(c)
	if err != nil {
		return err
	}
	if body.Image != "" {
		if id, _ := identityOf(c); !id.Admin {
			return apiError(http.StatusForbidden, "only admins choose the image of a server")
		}
		if !s.imageAllowed(body.Image) {
			return apiError(http.StatusBadRequest, fmt.Sprintf("image %q is not in notebook.allowed_images (%s)", body.Image, strings.Join(s.o.AllowedImages, ", ")))
		}
	}
	if body.Image == "" {
		body.Image = s.currentImage(ctx)
	}
	instr, err := s.instructor(ctx, u)
	if err != nil {
		return err
	}
	srv, err := s.d.Servers.Start(ctx, name, spawner.StartOptions{Image: body.Image, Instructor: instr})
	var busy *spawner.BusyError
	var queued *spawner.QueuedError
	switch {
	case errors.As(err, &busy):
		return &apiErr{Status: http.StatusTooManyRequests, Retry: busy.RetryAfter,
			Message: "many servers are starting right now; yours will start when you retry in a few seconds"}
	case errors.As(err, &queued):
		// Accepted: the start is pending, and begins by itself in its turn
		// while its progress stream is followed.
		return c.JSON(http.StatusAccepted, inLine(makeUserModel(u, srv, time.Time{}, s.currentImage(ctx)), queued.Place))
	case err != nil:
		return err
	}
	m := makeUserModel(u, srv, time.Time{}, s.currentImage(ctx))
	if srv.State == store.StateRunning {
		return c.JSON(http.StatusCreated, m)
	}
	return c.JSON(http.StatusAccepted, m)
}

func (s *Server) apiStopServer(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	if err := s.d.Servers.Stop(ctx, name, "stopped by "+id.Actor()); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// progressEvent is JupyterHub's progress event shape.
// swarmhub adds the place of a start waiting in line.
type progressEvent struct {
	Progress int    `json:"progress"`
	Message  string `json:"message"`
	Ready    bool   `json:"ready,omitempty"`
	Failed   bool   `json:"failed,omitempty"`
	URL      string `json:"url,omitempty"`

	Position    int  `json:"position,omitempty"` // from 1 at the head of the line
	LineLength  int  `json:"line_length,omitempty"`
	Full        bool `json:"full,omitempty"`         // no node can take another server
	WaitSeconds int  `json:"wait_seconds,omitempty"` // estimate; absent when unknown
}

// apiProgress streams spawn progress as server-sent events. Any replica can
// serve it: the events live in a Redis stream.
func (s *Server) apiProgress(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(ev progressEvent) {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w, "data: %s\n\n", b)
		w.Flush()
	}
	url := identity.UserPath(name)
	srv, err := s.server(ctx, name)
	if err != nil {
		send(progressEvent{Progress: 100, Failed: true, Message: "cannot read the server state right now; reload the page"})
		return nil
	}
	if srv.State != store.StateStarting && srv.State != store.StateRunning && s.d.Line != nil {
		if srv, err = s.followLine(ctx, name, send); err != nil {
			if ctx.Err() == nil {
				send(progressEvent{Progress: 100, Failed: true, Message: "lost contact with the hub's state store; reload the page"})
			}
			return nil
		}
	}
	if srv.State == store.StateRunning {
		send(progressEvent{Progress: 100, Ready: true, Message: "Server ready", URL: url})
		return nil
	}
	if srv.State != store.StateStarting {
		msg := "Server is not running; press Start."
		if srv.Error != "" {
			msg = "Server failed to start: " + srv.Error
		}
		send(progressEvent{Progress: 100, Failed: true, Message: msg})
		return nil
	}
	last := ""
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) {
		evs, err := s.d.Store.ReadProgress(ctx, name, last, 5*time.Second)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			send(progressEvent{Progress: 100, Failed: true, Message: "lost contact with the hub's state store; reload the page"})
			return nil
		}
		if len(evs) == 0 {
			fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
			continue
		}
		for _, p := range evs {
			last = p.ID
			ev := progressEvent{Progress: p.Progress, Message: p.Message, Ready: p.Ready, Failed: p.Failed, URL: p.URL}
			if ev.Ready && ev.URL == "" {
				ev.URL = url
			}
			send(ev)
			if p.Ready || p.Failed {
				return nil
			}
		}
	}
	return nil
}

func (s *Server) apiEvents(c echo.Context) error {
	limit, err := intParam(c, "limit", 50)
	if err != nil {
		return err
	}
	if limit > 500 {
		limit = 500
	}
	evs, err := s.d.Store.Events(c.Request().Context(), c.QueryParam("before"), limit)
	if err != nil {
		return err
	}
	next := ""
	if len(evs) == limit && limit > 0 {
		next = evs[len(evs)-1].ID
	}
	return c.JSON(http.StatusOK, map[string]any{"events": evs, "next_before": next})
}

func (s *Server) imageAllowed(img string) bool {
	for _, a := range s.o.AllowedImages {
		if a == img {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
