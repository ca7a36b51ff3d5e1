package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// failureAdvice turns a spawn's error text into what the student can do
// about it. The raw text is shown too, for the course staff.
func failureAdvice(msg string) string {
	s := strings.ToLower(msg)
	has := func(subs ...string) bool {
		for _, x := range subs {
			if strings.Contains(s, x) {
				return true
			}
		}
		return false
	}
	switch {
	case msg == "":
		return ""
	case has("no such image", "pull access denied", "manifest unknown", "image not found"):
		return "The notebook image this hub is set to use is missing. Nothing you can fix: tell the course staff, quoting the message below."
	case has("mount", "no such device", "volume"):
		return "Your files could not be attached to the server (a storage problem). Your files are safe. Try again in a few minutes; if it fails again, tell the course staff."
	case has("oom", "out of memory", "137"):
		return "Your server ran out of memory. Start it again; if a notebook loads very large data, restart its kernel before running it again."
	case has("insufficient resources", "no suitable node"):
		return "The cluster is full right now. Try again in a few minutes."
	case has("did not become ready", "timeout", "timed out"):
		return "Your server took too long to start, probably because many are starting at once. Press Start to try again."
	case has("stopped while starting", "removed while"):
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
	outdated := srv.State == "running" && srv.Image != "" && len(s.o.AllowedImages) > 0 && srv.Image != s.currentImage(ctx)
	return s.render(c, http.StatusOK, "home.html", map[string]any{"Server": srv, "XSRF": id.XSRF,
		"Advice": failureAdvice(srv.Error), "Outdated": outdated})
}
