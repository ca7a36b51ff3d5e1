package web

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
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
	"withTitle": func(data map[string]any, title string) map[string]any {
		out := make(map[string]any, len(data)+1)
		for k, v := range data {
			out[k] = v
		}
		out["Title"] = title
		return out
	},
}).ParseFS(templateFS, "templates/*.html"))

const loginXSRFCookie = "swarmhub-login-xsrf"

func (s *Server) render(c echo.Context, status int, name string, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	if id, ok := identityOf(c); ok {
		data["Me"] = id
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

func (s *Server) loginPage(c echo.Context) error {
	next := safeNext(c.QueryParam("next"), "")
	if _, ok := identityOf(c); ok {
		return c.Redirect(http.StatusFound, safeNext(next, "/hub/home"))
	}
	return s.showLogin(c, http.StatusOK, next, "", "")
}

func (s *Server) showLogin(c echo.Context, status int, next, username, msg string) error {
	tok := randomHex(16)
	c.SetCookie(s.cookie(loginXSRFCookie, tok, "/hub/", 3600, http.SameSiteStrictMode))
	return s.render(c, status, "login.html", map[string]any{"XSRF": tok, "Next": next, "Username": username, "Error": msg})
}

// Login outcomes as counted by Deps.Logins.
const (
	loginSuccess        = "success"
	loginBadCredentials = "bad_credentials"
	loginBanned         = "banned"
	loginNotAllowed     = "not_allowed"
	loginUnavailable    = "unavailable"
)

func (s *Server) countLogin(outcome string) {
	if s.d.Logins != nil {
		s.d.Logins.Login(outcome)
	}
}

const msgBadLogin = "Invalid username or password. After several failed attempts, logins for that name are paused for a few minutes."

func clientIP(c echo.Context) string {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return c.Request().RemoteAddr
	}
	return host
}

func (s *Server) loginSubmit(c echo.Context) error {
	ctx := c.Request().Context()
	next := safeNext(c.FormValue("next"), "")
	raw := c.FormValue("username")
	password := c.FormValue("password")
	ck, err := c.Cookie(loginXSRFCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(c.FormValue("_xsrf"))) != 1 {
		return s.showLogin(c, http.StatusForbidden, next, raw, "Your login form expired. Please try again.")
	}
	user, err := s.d.Namer.Canonical(raw)
	if err != nil {
		s.countLogin(loginBadCredentials)
		return s.showLogin(c, http.StatusUnauthorized, next, raw, msgBadLogin)
	}
	ip := clientIP(c)
	if s.d.Regulator != nil {
		if err := s.d.Regulator.Allowed(ctx, user, ip); err != nil {
			if errors.Is(err, auth.ErrBanned) {
				s.countLogin(loginBanned)
				s.event(ctx, "login-failed", user, "", "login refused: too many failures")
				return s.showLogin(c, http.StatusUnauthorized, next, raw, msgBadLogin)
			}
			return s.loginUnavailable(c, next, raw, err)
		}
	}
	res, err := s.d.Auth.Authenticate(ctx, raw, password)
	if err != nil {
		if errors.Is(err, auth.ErrInvalidCredentials) {
			if s.d.Regulator != nil {
				if rerr := s.d.Regulator.Failed(ctx, user, ip); rerr != nil {
					s.log.Warn("login regulation unavailable", "err", rerr)
				}
			}
			s.countLogin(loginBadCredentials)
			s.event(ctx, "login-failed", user, "", "wrong username or password")
			return s.showLogin(c, http.StatusUnauthorized, next, raw, msgBadLogin)
		}
		return s.loginUnavailable(c, next, raw, err)
	}
	user = res.Username
	// One read serves both the admission decision and the record refresh.
	adm, err := s.d.Store.GetAdmission(ctx, user)
	if err != nil {
		return s.loginUnavailable(c, next, raw, err)
	}
	admin, err := s.d.Policy.Admit(res, auth.Admission{Admin: adm.Admin, Blocked: adm.Blocked, Allowed: adm.Allowed})
	if err != nil {
		if errors.Is(err, auth.ErrNotAllowed) || errors.Is(err, auth.ErrBlocked) {
			s.countLogin(loginNotAllowed)
			s.event(ctx, "login-refused", user, "", err.Error())
			return s.showLogin(c, http.StatusForbidden, next, raw,
				"Your account is not allowed on this hub. If you take this course, ask the course staff to add you.")
		}
		return s.loginUnavailable(c, next, raw, err)
	}
	if s.d.Regulator != nil {
		_ = s.d.Regulator.Succeeded(ctx, user, ip)
	}
	if err := s.recordLogin(ctx, user, adm, admin); err != nil {
		return s.loginUnavailable(c, next, raw, err)
	}
	sess, err := s.d.Store.CreateSession(ctx, user, s.o.SessionIdle, s.o.SessionMax)
	if err != nil {
		return s.loginUnavailable(c, next, raw, err)
	}
	c.SetCookie(s.cookie(s.o.CookieName, sess.ID, "/", int(s.o.SessionMax.Seconds()), http.SameSiteLaxMode))
	c.SetCookie(s.cookie(loginXSRFCookie, "", "/hub/", -1, http.SameSiteStrictMode))
	s.countLogin(loginSuccess)
	s.event(ctx, "login", user, user, "logged in")
	return c.Redirect(http.StatusFound, safeNext(next, "/hub/home"))
}

func (s *Server) loginUnavailable(c echo.Context, next, raw string, err error) error {
	s.countLogin(loginUnavailable)
	s.log.Error("login failed on a dependency", "err", err)
	msg := "Login is unavailable right now (the hub cannot reach a service it needs). Please try again in a minute; if it persists, tell the course staff."
	if errors.Is(err, auth.ErrUnavailable) {
		msg = "The university directory (LDAP) is not answering, so nobody can log in right now. Please try again in a few minutes."
	}
	return s.showLogin(c, http.StatusServiceUnavailable, next, raw, msg)
}

// recordLogin creates or refreshes the user's record from the admission the
// login just read.
func (s *Server) recordLogin(ctx context.Context, user string, adm store.Admission, admin bool) error {
	now := time.Now().UTC()
	u := store.User{Name: user, Created: now}
	if adm.Exists {
		u = store.User{Name: user, Blocked: adm.Blocked, Allowed: adm.Allowed, Created: adm.Created}
	}
	u.Admin = admin
	u.LastLogin = now
	return s.d.Store.PutUser(ctx, u)
}

func (s *Server) logout(c echo.Context) error {
	if id, ok := identityOf(c); ok && id.Via == "session" {
		ctx := c.Request().Context()
		if err := s.d.Store.DeleteSession(ctx, id.SessionID); err != nil {
			s.log.Warn("logout: deleting session", "err", err)
		}
		s.sessions.DropSession(id.SessionID)
		s.event(ctx, "logout", id.User, id.User, "logged out")
	}
	c.SetCookie(s.cookie(s.o.CookieName, "", "/", -1, http.SameSiteLaxMode))
	return s.render(c, http.StatusOK, "logout.html", nil)
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

func (s *Server) spawnPendingPage(c echo.Context) error {
	id, _ := identityOf(c)
	name, err := s.d.Namer.Canonical(c.Param("name"))
	if err != nil {
		return apiError(http.StatusBadRequest, err.Error())
	}
	if name != id.User && !id.Admin {
		return apiError(http.StatusForbidden, "you may only start your own server")
	}
	base := identity.UserPath(name)
	next := safeNext(c.QueryParam("next"), base)
	if !strings.HasPrefix(next, base) {
		next = base
	}
	srv, err := s.server(c.Request().Context(), name)
	if err != nil {
		return err
	}
	if srv.State == "running" {
		return c.Redirect(http.StatusFound, next)
	}
	return s.render(c, http.StatusOK, "spawn.html", map[string]any{"Name": name, "Server": srv, "Next": next, "XSRF": id.XSRF})
}

func (s *Server) userRedirect(c echo.Context) error {
	id, ok := identityOf(c)
	if !ok {
		return c.Redirect(http.StatusFound, "/hub/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
	}
	rest := strings.TrimPrefix(c.Param("*"), "/")
	target := identity.UserPath(id.User) + rest
	if q := c.Request().URL.RawQuery; q != "" {
		target += "?" + q
	}
	return c.Redirect(http.StatusFound, safeNext(target, "/hub/home"))
}

func (s *Server) tokenPage(c echo.Context) error {
	id, _ := identityOf(c)
	toks, err := s.d.Store.ListTokens(c.Request().Context(), id.User)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "token.html", map[string]any{"Tokens": toks, "XSRF": id.XSRF})
}

func (s *Server) health(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
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
	status := "ok"
	if !ok {
		status = "degraded"
	}
	code := http.StatusOK
	if !ok && c.QueryParam("strict") != "" {
		code = http.StatusServiceUnavailable
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
