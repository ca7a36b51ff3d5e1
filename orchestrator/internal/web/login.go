package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

const loginXSRFCookie = "swarmhub-login-xsrf"

func (s *Server) loginPage(c echo.Context) error {
	next := safeNext(c.QueryParam("next"), "")
	if _, ok := identityOf(c); ok {
		return c.Redirect(http.StatusFound, safeNext(next, "/hub/home"))
	}
	return s.showLogin(c, http.StatusOK, next, "", "")
}

func (s *Server) showLogin(c echo.Context, status int, next, username, msg string) error {
	tok := randomHex(16)
	c.SetCookie(s.cookie(s.loginXSRFName(), tok, "/hub/", 3600, http.SameSiteStrictMode))
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

func (s *Server) loginSubmit(c echo.Context) error {
	ctx := c.Request().Context()
	next := safeNext(c.FormValue("next"), "")
	raw := c.FormValue("username")
	password := c.FormValue("password")
	ck, err := c.Cookie(s.loginXSRFName())
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(c.FormValue("_xsrf"))) != 1 {
		return s.showLogin(c, http.StatusForbidden, next, raw, "Your login form expired. Please try again.")
	}
	user, err := s.d.Namer.Canonical(raw)
	if err != nil {
		s.countLogin(loginBadCredentials)
		return s.showLogin(c, http.StatusUnauthorized, next, raw, msgBadLogin)
	}
	ip := clientAddr(c.Request(), s.o.TrustedProxies)
	if s.d.Regulator != nil {
		if err := s.d.Regulator.Allowed(ctx, user, ip); err != nil {
			if errors.Is(err, auth.ErrBanned) {
				s.countLogin(loginBanned)
				s.loginFailed(ctx, user, ip, "login refused: too many failures", true)
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
			s.loginFailed(ctx, user, ip, "wrong username or password", false)
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
	c.SetCookie(s.cookie(s.o.CookieName, sess.ID, "/hub/", int(s.o.SessionMax.Seconds()), http.SameSiteLaxMode))
	c.SetCookie(s.legacySessionCookie())
	c.SetCookie(s.cookie(s.loginXSRFName(), "", "/hub/", -1, http.SameSiteStrictMode))
	s.countLogin(loginSuccess)
	s.event(ctx, "login", user, user, "logged in")
	return c.Redirect(http.StatusFound, safeNext(next, "/hub/home"))
}

// loginXSRFName is the login form's cookie, with the __Secure- prefix
// under HTTPS like the session cookie.
func (s *Server) loginXSRFName() string {
	if s.o.SecureCookies {
		return securePrefix + loginXSRFCookie
	}
	return loginXSRFCookie
}

// legacySessionCookie removes the Path=/ session cookie of releases before
// the hub cookie moved to /hub/, which browsers would otherwise keep sending
// (and, over plain HTTP, send next to the new one) until it expires.
func (s *Server) legacySessionCookie() *http.Cookie {
	return s.cookie(strings.TrimPrefix(s.o.CookieName, securePrefix), "", "/", -1, http.SameSiteLaxMode)
}

// loginFailed records a failed (or, banned, a refused) login as an event,
// unless FailedLogins says it is one of a flood that is only counted.
func (s *Server) loginFailed(ctx context.Context, user, ip, msg string, banned bool) {
	msg += " (from " + ip + ")"
	if s.d.FailedLogins != nil {
		note := s.d.FailedLogins.Note
		if banned {
			note = s.d.FailedLogins.NoteBan
		}
		v, err := note(ctx, user, ip)
		if err != nil {
			s.log.Warn("failed-login counting unavailable", "err", err)
		}
		if !v.Record {
			return
		}
		if v.Message != "" {
			msg = v.Message
		}
	}
	s.event(ctx, "login-failed", user, "", msg)
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
