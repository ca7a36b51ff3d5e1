package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// settingAnnouncement is the Redis setting holding the announcement (JSON).
const settingAnnouncement = "announcement"

// announceTTL bounds how long a replica shows a changed announcement late.
const announceTTL = 5 * time.Second

// maxAnnouncement bounds the message (characters).
const maxAnnouncement = 1000

// announcement is the message every logged-in page shows until it expires
// ("the hub restarts at 18:00").
type announcement struct {
	Message string    `json:"message"`
	Expires time.Time `json:"expires,omitzero"`
	SetBy   string    `json:"set_by,omitempty"`
	SetAt   time.Time `json:"set_at,omitzero"`
}

type cachedAnnouncement struct {
	a       announcement
	fetched time.Time
}

// currentAnnouncement returns the announcement if one is set and not
// expired. A Redis error shows none (and is logged): a banner is not worth
// failing a page for.
func (s *Server) currentAnnouncement(ctx context.Context) (announcement, bool) {
	now := s.now()
	c := s.announce.Load()
	if c == nil || now.Sub(c.fetched) > announceTTL || now.Before(c.fetched) {
		a, err := s.readAnnouncement(ctx)
		if err != nil {
			s.log.Warn("reading the announcement", "err", err)
		}
		c = &cachedAnnouncement{a: a, fetched: now}
		s.announce.Store(c)
	}
	if c.a.Message == "" || (!c.a.Expires.IsZero() && !now.Before(c.a.Expires)) {
		return announcement{}, false
	}
	return c.a, true
}

func (s *Server) readAnnouncement(ctx context.Context) (announcement, error) {
	v, err := s.d.Store.GetSetting(ctx, settingAnnouncement)
	if errors.Is(err, store.ErrNotFound) {
		return announcement{}, nil
	}
	if err != nil {
		return announcement{}, err
	}
	var a announcement
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		return announcement{}, fmt.Errorf("stored announcement is not JSON: %w", err)
	}
	return a, nil
}

// apiGetAnnouncement is GET /hub/api/announcement for anyone logged in:
// {"message": ""} when there is none.
func (s *Server) apiGetAnnouncement(c echo.Context) error {
	a, ok := s.currentAnnouncement(c.Request().Context())
	if !ok {
		return c.JSON(http.StatusOK, announcement{})
	}
	return c.JSON(http.StatusOK, a)
}

// apiSetAnnouncement is PUT /hub/api/announcement {"message": "...",
// "expires": RFC 3339 | "expires_in": "2h"} (no expiry: until removed).
func (s *Server) apiSetAnnouncement(c echo.Context) error {
	ctx := c.Request().Context()
	var body struct {
		Message   string `json:"message"`
		Expires   string `json:"expires"`
		ExpiresIn string `json:"expires_in"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	msg := strings.TrimSpace(body.Message)
	switch {
	case msg == "":
		return apiError(http.StatusBadRequest, `give the message: {"message": "The hub restarts at 18:00", "expires_in": "3h"}; DELETE /hub/api/announcement removes it`)
	case utf8.RuneCountInString(msg) > maxAnnouncement:
		return apiError(http.StatusBadRequest, fmt.Sprintf("the message has %d characters; keep it under %d", utf8.RuneCountInString(msg), maxAnnouncement))
	case body.Expires != "" && body.ExpiresIn != "":
		return apiError(http.StatusBadRequest, "give expires or expires_in, not both")
	}
	now := s.now()
	id, _ := identityOf(c)
	a := announcement{Message: msg, SetBy: id.Actor(), SetAt: now.UTC()}
	if body.Expires != "" {
		t, err := time.Parse(time.RFC3339, body.Expires)
		if err != nil {
			return apiError(http.StatusBadRequest, fmt.Sprintf("expires=%q is not an RFC 3339 time such as 2026-12-04T18:00:00+01:00", body.Expires))
		}
		a.Expires = t
	}
	if body.ExpiresIn != "" {
		d, err := time.ParseDuration(body.ExpiresIn)
		if err != nil || d <= 0 {
			return apiError(http.StatusBadRequest, fmt.Sprintf("expires_in=%q is not a positive duration such as 90m or 3h", body.ExpiresIn))
		}
		a.Expires = now.Add(d).UTC()
	}
	if !a.Expires.IsZero() && !a.Expires.After(now) {
		return apiError(http.StatusBadRequest, "the expiry is in the past")
	}
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := s.d.Store.SetSetting(ctx, settingAnnouncement, string(doc)); err != nil {
		return err
	}
	s.announce.Store(nil)
	s.event(ctx, "announcement", "", id.Actor(), "announcement set: "+msg)
	return c.JSON(http.StatusOK, a)
}

func (s *Server) apiDeleteAnnouncement(c echo.Context) error {
	ctx := c.Request().Context()
	if err := s.d.Store.SetSetting(ctx, settingAnnouncement, ""); err != nil {
		return err
	}
	s.announce.Store(nil)
	id, _ := identityOf(c)
	s.event(ctx, "announcement", "", id.Actor(), "announcement removed")
	return c.NoContent(http.StatusNoContent)
}
