package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// activityBody is JupyterHub's POST /users/NAME/activity body, as
// jupyterhub-singleuser and other activity reporters send it.
type activityBody struct {
	LastActivity *string `json:"last_activity"`
	Servers      map[string]struct {
		LastActivity *string `json:"last_activity"`
	} `json:"servers"`
}

// parseActivityTime reads an ISO 8601 time; like JupyterHub, a time without
// a zone is UTC.
func parseActivityTime(field, v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, apiError(http.StatusBadRequest, fmt.Sprintf("%s must be an ISO 8601 timestamp, not %q", field, v))
}

// apiActivity records a user's and their server's last activity into the
// same record the proxy feeds and the culler reads (latest wins). Every
// user has exactly one server, named "".
func (s *Server) apiActivity(c echo.Context) error {
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.d.Store.GetUser(ctx, name); errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, fmt.Sprintf("no such user: %q", name))
	} else if err != nil {
		return err
	}
	var body activityBody
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
	if err := dec.Decode(&body); err != nil {
		return apiError(http.StatusBadRequest, "body must be a JSON object with last_activity and/or servers: "+err.Error())
	}
	var last time.Time
	if body.LastActivity != nil {
		if last, err = parseActivityTime("last_activity", *body.LastActivity); err != nil {
			return err
		}
	}
	if body.LastActivity == nil && len(body.Servers) == 0 {
		return apiError(http.StatusBadRequest, "body must contain at least one of last_activity or servers")
	}
	for srv, info := range body.Servers {
		if srv != "" {
			// JupyterHub answers 400 for a server the user does not have.
			return apiError(http.StatusBadRequest, fmt.Sprintf("no such server %q for user %s", srv, name))
		}
		if info.LastActivity == nil {
			return apiError(http.StatusBadRequest, "servers."+srv+".last_activity is required")
		}
		t, err := parseActivityTime("servers[\""+srv+"\"].last_activity", *info.LastActivity)
		if err != nil {
			return err
		}
		last = latest(last, t)
	}
	if err := s.d.Store.RecordActivity(ctx, map[string]time.Time{name: last}); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
