package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// session is one logged-in browser: its own cookie jar and xsrf token.
type session struct {
	base string
	user string
	c    *http.Client
	xsrf string
}

var (
	hiddenXSRF = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)
	metaXSRF   = regexp.MustCompile(`<meta name="xsrf" content="([^"]+)"`)
)

// login fills in the hub's login form like a browser.
func (e *env) login(ctx context.Context, user string) (*session, error) {
	if s := e.users[user]; s != nil {
		return s, nil
	}
	jar, _ := cookiejar.New(nil)
	s := &session{base: e.hub, user: user, c: &http.Client{Jar: jar, Transport: e.tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	page, err := s.page(ctx, "/hub/login")
	if err != nil {
		return nil, err
	}
	m := hiddenXSRF.FindStringSubmatch(page)
	if m == nil {
		return nil, errors.New("the login page has no _xsrf field")
	}
	password := e.cfg.Auth.Dummy.Password
	if e.o.Password != "" {
		password = e.o.Password
	}
	form := url.Values{"username": {user}, "password": {password}, "_xsrf": {m[1]}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/hub/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("login as %s: %w", user, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("login as %s: %s (is auth.allow_all on?)", user, resp.Status)
	}
	home, err := s.page(ctx, "/hub/home")
	if err != nil {
		return nil, err
	}
	mm := metaXSRF.FindStringSubmatch(home)
	if mm == nil {
		return nil, errors.New("the home page has no xsrf meta tag")
	}
	s.xsrf = mm[1]
	e.users[user] = s
	return s, nil
}

// loginMany logs users in, a few at a time (logins are not what is measured).
func (e *env) loginMany(ctx context.Context, users []string) ([]*session, error) {
	out := make([]*session, len(users))
	var todo []int
	for i, u := range users {
		if s := e.users[u]; s != nil {
			out[i] = s
		} else {
			todo = append(todo, i)
		}
	}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	results := make([]*session, len(users))
	for _, i := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := e.loginDetached(ctx, users[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			results[i] = s
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	for _, i := range todo {
		out[i] = results[i]
		e.users[users[i]] = results[i]
	}
	return out, nil
}

// loginDetached is login without touching e.users (safe from goroutines).
func (e *env) loginDetached(ctx context.Context, user string) (*session, error) {
	sub := &env{o: e.o, hub: e.hub, cfg: e.cfg, tr: e.tr, users: map[string]*session{}}
	return sub.login(ctx, user)
}

func (s *session) page(ctx context.Context, path string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := s.c.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), err
}

// api calls the hub API with the session cookie and the xsrf header.
func (s *session) api(ctx context.Context, method, path string, body any) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-XSRFToken", s.xsrf)
	resp, err := s.c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp, out, err
}

// serverAccess makes sure the jar holds the access cookie for user's
// server, which a browser gets on its first page load there (the proxy sends
// it to /hub/user-cookie, which sets the cookie and sends it back).
func (s *session) serverAccess(ctx context.Context, user string) error {
	path := "/user/" + user + "/"
	if s.cookie(path, accessCookieName) != "" {
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/hub/user-cookie?next="+url.QueryEscape(path), nil)
	req.Header.Set("Accept", "text/html")
	resp, err := s.c.Do(req)
	if err != nil {
		return fmt.Errorf("access cookie for %s: %w", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if s.cookie(path, accessCookieName) == "" {
		return fmt.Errorf("access cookie for %s: the hub answered %s and set none", path, resp.Status)
	}
	return nil
}

// accessCookieName is the servers' access cookie over plain HTTP.
const accessCookieName = "swarmhub-session-server"

// cookiesFor is the Cookie header a browser would send to path, which
// includes a user server's own cookies under /user/NAME/.
func (s *session) cookiesFor(path string) string {
	u, _ := url.Parse(s.base + path)
	var parts []string
	for _, c := range s.c.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// startCounters are what a start request met on its way.
type startCounters struct {
	TooMany   int // 429 answers (then retried after Retry-After)
	ServerErr int // 5xx answers
	Timeouts  int // requests that got no answer in time
}

// requestStart asks the hub to start user's server (as s, which is the user
// or an admin choosing the image) and retries after every 429 as a browser
// would, honouring Retry-After.
func (s *session) requestStart(ctx context.Context, user, image string, c *startCounters) error {
	var body any
	if image != "" {
		body = map[string]string{"image": image}
	}
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, out, err := s.api(rctx, http.MethodPost, "/hub/api/users/"+user+"/server", body)
		cancel()
		switch {
		case err != nil && errors.Is(err, context.DeadlineExceeded):
			c.Timeouts++
			if attempt > 5 {
				return fmt.Errorf("start %s: no answer in 30 s, %d times", user, attempt+1)
			}
			continue
		case err != nil:
			return fmt.Errorf("start %s: %w", user, err)
		case resp.StatusCode == http.StatusTooManyRequests:
			c.TooMany++
			wait := time.Second
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
				wait = time.Duration(n) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			continue
		case resp.StatusCode >= 500:
			c.ServerErr++
			return fmt.Errorf("start %s: %s %s", user, resp.Status, trim(out))
		case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusCreated:
			return nil
		default:
			return fmt.Errorf("start %s: %s %s", user, resp.Status, trim(out))
		}
	}
}

type progressEvent struct {
	Progress int    `json:"progress"`
	Message  string `json:"message"`
	Ready    bool   `json:"ready"`
	Failed   bool   `json:"failed"`
}

// waitReady follows the progress stream (as the spawn-pending page does)
// until the server is ready or the spawn failed.
func (s *session) waitReady(ctx context.Context, user string) error {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/hub/api/users/"+user+"/server/progress", nil)
		c := *s.c
		c.Timeout = 0 // the stream lasts as long as the spawn
		resp, err := c.Do(req)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var p progressEvent
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				resp.Body.Close()
				return fmt.Errorf("bad progress event %q: %w", line, err)
			}
			if p.Ready {
				resp.Body.Close()
				return nil
			}
			if p.Failed {
				resp.Body.Close()
				return fmt.Errorf("spawn of %s failed: %s", user, p.Message)
			}
		}
		resp.Body.Close()
	}
	return ctx.Err()
}

// proxiedStatus fetches /user/NAME/api/status through the hub.
func (s *session) proxiedStatus(ctx context.Context, user string) (int, error) {
	if err := s.serverAccess(ctx, user); err != nil {
		return 0, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/user/"+user+"/api/status", nil)
	resp, err := s.c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
