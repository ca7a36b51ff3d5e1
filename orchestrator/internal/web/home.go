package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawnfail"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// failureAdvice turns a spawn's error text into what the student can do
// about it. The raw text is shown too, for the course staff.
func failureAdvice(msg string) string {
	if msg == "" {
		return ""
	}
	switch spawnfail.Classify(msg) {
	case spawnfail.Image:
		return "The notebook image this hub is set to use is missing. Nothing you can fix: tell the course staff, quoting the message below."
	case spawnfail.Mount:
		return "Your files could not be attached to the server (a storage problem). Your files are safe. Try again in a few minutes; if it fails again, tell the course staff."
	case spawnfail.OOM:
		return "Your server ran out of memory. Start it again; if a notebook loads very large data, restart its kernel before running it again."
	case spawnfail.Resources:
		return "The cluster is full right now. Try again in a few minutes."
	case spawnfail.Timeout:
		return "Your server took too long to start, probably because many are starting at once. Press Start to try again."
	case spawnfail.Stopped:
		return "The start was cancelled (the server was stopped meanwhile). Press Start to try again."
	}
	return "Press Start to try again; if it fails again, tell the course staff and quote the message below."
}

func (s *Server) homePage(c echo.Context) error {
	id, _ := identityOf(c)
	ctx := c.Request().Context()
	srv, err := s.server(ctx, id.User)
	if err != nil {
		return err
	}
	outdated := srv.State == store.StateRunning && srv.Image != "" && len(s.o.AllowedImages) > 0 && srv.Image != s.currentImage(ctx)
	data := map[string]any{"Server": srv, "XSRF": id.XSRF, "Advice": failureAdvice(srv.Error), "Outdated": outdated}
	// The size is measured in the background; a page view only reads it.
	if u, ok, err := s.d.Store.UserUsage(ctx, id.User); err != nil {
		s.log.Warn("home: reading disk usage", "user", id.User, "err", err)
	} else if ok {
		data["Usage"] = u
		if s.o.DiskSoftLimit > 0 {
			data["SoftLimit"] = s.o.DiskSoftLimit
			data["OverLimit"] = u.Bytes > s.o.DiskSoftLimit
		}
	}
	return s.render(c, http.StatusOK, "home.html", data)
}
