package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/prepull"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// settingImage is the Redis setting that holds the current notebook image.
const settingImage = "notebook_image"

// defaultImage is the configured notebook.image (the first allowed image).
func (s *Server) defaultImage() string {
	if len(s.o.AllowedImages) == 0 {
		return ""
	}
	return s.o.AllowedImages[0]
}

// currentImage is the image new starts get: the admin's choice when it is
// still allowed by the configuration, else the configured default. A Redis
// error falls back to the default rather than failing a start.
func (s *Server) currentImage(ctx context.Context) string {
	v, err := s.d.Store.GetSetting(ctx, settingImage)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("reading the current image; using the configured default", "err", err)
		}
		return s.defaultImage()
	}
	if !s.imageAllowed(v) {
		return s.defaultImage()
	}
	return v
}

// ImageNodes keeps the notebook image on every node (prepull.Puller
// satisfies it).
type ImageNodes interface {
	Ensure(ctx context.Context, image string) error
	Status(ctx context.Context) ([]prepull.NodeStatus, error)
}

type imageInfo struct {
	Image   string   `json:"image"`
	Default string   `json:"default"`
	Allowed []string `json:"allowed"`
	// Nodes is the current image's state on each node that may run a
	// server (present, pulling, failed with the reason, unknown).
	Nodes      []prepull.NodeStatus `json:"nodes,omitempty"`
	NodesError string               `json:"nodes_error,omitempty"`
}

// CurrentImage is the image new starts get (see currentImage).
func (s *Server) CurrentImage(ctx context.Context) string { return s.currentImage(ctx) }

func (s *Server) imageInfo(ctx context.Context) imageInfo {
	allowed := append([]string{}, s.o.AllowedImages...)
	info := imageInfo{Image: s.currentImage(ctx), Default: s.defaultImage(), Allowed: allowed}
	if s.d.Images != nil {
		nodes, err := s.d.Images.Status(ctx)
		switch {
		case errors.Is(err, prepull.ErrNoService):
			info.NodesError = "pre-pulling has not started yet; it starts within a minute of the orchestrator"
		case err != nil:
			info.NodesError = "the nodes cannot be read right now: " + err.Error()
		}
		info.Nodes = nodes
	}
	return info
}

func (s *Server) apiGetImage(c echo.Context) error {
	return c.JSON(http.StatusOK, s.imageInfo(c.Request().Context()))
}

// apiSetImage is PUT /hub/api/image {"image": "..."}: the image every new
// start gets from now on. Running servers keep theirs and show as outdated.
func (s *Server) apiSetImage(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	var body struct {
		Image string `json:"image"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	body.Image = strings.TrimSpace(body.Image)
	if len(s.o.AllowedImages) == 0 {
		return apiError(http.StatusConflict, "notebook.allowed_images is empty in the configuration; add the images admins may choose there first")
	}
	if body.Image == "" {
		return apiError(http.StatusBadRequest, `give the image: {"image": "`+s.defaultImage()+`"}`)
	}
	if !s.imageAllowed(body.Image) {
		return apiError(http.StatusBadRequest, fmt.Sprintf("image %q is not in notebook.allowed_images (%s); add it to the configuration first",
			body.Image, strings.Join(s.o.AllowedImages, ", ")))
	}
	before := s.currentImage(ctx)
	if err := s.d.Store.SetSetting(ctx, settingImage, body.Image); err != nil {
		return err
	}
	if before != body.Image {
		s.event(ctx, "image-changed", "", id.Actor(), fmt.Sprintf("notebook image %s -> %s", before, body.Image))
		if s.d.Images != nil {
			// Every node starts pulling now; the periodic job would within
			// a minute.
			if err := s.d.Images.Ensure(ctx, body.Image); err != nil {
				s.log.Warn("pre-pull of the new image", "image", body.Image, "err", err)
			}
		}
	}
	return c.JSON(http.StatusOK, s.imageInfo(ctx))
}

type restartReport struct {
	Image     string            `json:"image"`
	Idle      string            `json:"idle"`
	Restarted []string          `json:"restarted"`
	Busy      []string          `json:"skipped_active"`
	Failed    map[string]string `json:"failed"`
}

// apiRestartOutdated stops and starts again, on the current image, every
// running server on another image that has been idle at least ?idle= (a Go
// duration, default 10m). Idle counts from the later of the last proxied
// activity and the server becoming ready.
func (s *Server) apiRestartOutdated(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	idle := 10 * time.Minute
	if v := c.QueryParam("idle"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return apiError(http.StatusBadRequest, fmt.Sprintf("idle=%q is not a duration like 10m or 1h30m", v))
		}
		idle = d
	}
	image := s.currentImage(ctx)
	servers, err := s.d.Store.ListServers(ctx)
	if err != nil {
		return err
	}
	act, err := s.d.Store.Activity(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	rep := restartReport{Image: image, Idle: idle.String(), Restarted: []string{}, Busy: []string{}, Failed: map[string]string{}}
	for _, srv := range servers {
		if srv.State != store.StateRunning || srv.Image == "" || srv.Image == image {
			continue
		}
		if now.Sub(latest(srv.Ready, act[srv.User])) < idle {
			rep.Busy = append(rep.Busy, srv.User)
			continue
		}
		if err := s.restart(ctx, srv.User, image, id.Actor()); err != nil {
			rep.Failed[srv.User] = err.Error()
			continue
		}
		rep.Restarted = append(rep.Restarted, srv.User)
	}
	sort.Strings(rep.Busy)
	s.event(ctx, "image-restart", "", id.Actor(), fmt.Sprintf("restarted %d outdated servers on %s (%d still active, %d failed)",
		len(rep.Restarted), image, len(rep.Busy), len(rep.Failed)))
	return c.JSON(http.StatusOK, rep)
}

func (s *Server) restart(ctx context.Context, user, image, actor string) error {
	u, err := s.d.Store.GetUser(ctx, user)
	if err != nil {
		return fmt.Errorf("read user: %w", err)
	}
	if err := s.d.Servers.Stop(ctx, user, "restarted on "+image+" by "+actor); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if u.Blocked {
		return nil
	}
	instr, err := s.instructor(ctx, u)
	if err != nil {
		return fmt.Errorf("instructor group: %w", err)
	}
	// Nobody watches this start: it keeps its place in line until its turn.
	_, err = s.d.Servers.Start(ctx, user, spawner.StartOptions{Image: image, Instructor: instr, Unattended: true})
	var busy *spawner.BusyError
	var queued *spawner.QueuedError
	if errors.As(err, &queued) {
		return nil
	}
	if errors.As(err, &busy) {
		return fmt.Errorf("stopped, but the start was refused because many servers are starting; it starts on the user's next visit")
	}
	if err != nil {
		return fmt.Errorf("stopped, but starting again failed: %w", err)
	}
	return nil
}
