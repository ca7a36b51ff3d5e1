package web

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": humanAgo,
	"agop": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return humanAgo(*t)
	},
	"sub":        func(a, b int) int { return a - b },
	"half":       func(a int) int { return a / 2 },
	"initial":    initial,
	"shortImage": shortImage,
	"bytes":      humanBytes,
	"deref":      func(p *int64) int64 { return *p },
	"withTitle": func(data map[string]any, title string) map[string]any {
		out := make(map[string]any, len(data)+1)
		for k, v := range data {
			out[k] = v
		}
		out["Title"] = title
		return out
	},
}).ParseFS(templateFS, "templates/*.html"))

func (s *Server) render(c echo.Context, status int, name string, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	if id, ok := identityOf(c); ok {
		data["Me"] = id
		if a, ok := s.currentAnnouncement(c.Request().Context()); ok {
			data["Announcement"] = a
		}
	}
	data["Version"] = s.o.Version
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, buf.Bytes())
}

func (s *Server) static(c echo.Context) error {
	sub, _ := fs.Sub(staticFS, "static")
	name := strings.TrimPrefix(c.Param("*"), "/")
	b, err := fs.ReadFile(sub, name)
	if err != nil {
		return echo.ErrNotFound
	}
	ct := "application/octet-stream"
	switch {
	case strings.HasSuffix(name, ".css"):
		ct = "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".js"):
		ct = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".svg"):
		ct = "image/svg+xml"
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	return c.Blob(http.StatusOK, ct, b)
}

func (s *Server) root(c echo.Context) error {
	if _, ok := identityOf(c); ok {
		return c.Redirect(http.StatusFound, "/hub/home")
	}
	return c.Redirect(http.StatusFound, "/hub/login")
}

// safeNext keeps next= on this site: a single leading slash, no scheme, no
// host, no backslash tricks. Anything else becomes def.
func safeNext(next, def string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") {
		return def
	}
	if strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsRune(next, '\\') {
		return def
	}
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f {
			return def // control bytes: header splitting, browser quirks
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return def
	}
	return next
}

func (s *Server) cookie(name, value, path string, maxAge int, sameSite http.SameSite) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true,
		Secure: s.o.SecureCookies, SameSite: sameSite}
}

func (s *Server) event(ctx context.Context, kind, user, actor, msg string) {
	if err := s.d.Store.AddEvent(ctx, store.Event{Time: time.Now().UTC(), Kind: kind, User: user, Actor: actor, Message: msg}); err != nil {
		s.log.Warn("recording event", "kind", kind, "err", err)
	}
}

func humanAgo(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return itoa(int(d.Minutes())) + " min ago"
	case d < 48*time.Hour:
		return itoa(int(d.Hours())) + " h ago"
	default:
		return itoa(int(d.Hours()/24)) + " days ago"
	}
}
