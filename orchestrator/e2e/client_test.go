package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
)

// browser is an HTTP client that behaves like a student's browser: a cookie
// jar, the login form with its _xsrf field, and the page's xsrf token for
// API calls.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
	xsrf string
	user string
	// accessName is the access cookie's name: accessCookieName, with the
	// __Secure- prefix when the hub serves HTTPS.
	accessName string
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: base, accessName: accessCookieName}
	b.c = &http.Client{Jar: jar, Timeout: 60 * time.Second, Transport: accessTransport{b: b, next: http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return b
}

// accessCookieName is the servers' access cookie over plain HTTP (under
// HTTPS it carries the __Secure- prefix).
const accessCookieName = "swarmhub-session-server"

// accessTransport does for every request under /user/NAME/ what a browser's
// first page load there does: see accessFor.
type accessTransport struct {
	b    *browser
	next http.RoundTripper
}

func (t accessTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, err := r.Cookie(t.b.accessName); err == nil || !strings.HasPrefix(r.URL.Path, "/user/") {
		return t.next.RoundTrip(r)
	}
	c := t.b.accessFor(r.Context(), r.URL.Path)
	if c == nil {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.AddCookie(c)
	return t.next.RoundTrip(r)
}

// accessFor is the access cookie the browser sends to path (under
// /user/NAME/): the one in the jar, else one the hub mints (as after the
// proxy's redirect to /hub/user-cookie). Where the hub mints none (NAME is
// not the student's), it is the student's cookie for their own server:
// the strongest credential they hold, which the proxy must refuse there.
func (b *browser) accessFor(ctx context.Context, path string) *http.Cookie {
	rest, ok := strings.CutPrefix(path, "/user/")
	if !ok {
		return nil
	}
	name, _, _ := strings.Cut(rest, "/")
	if c := b.access(ctx, name); c != nil {
		return c
	}
	if b.user != "" && b.user != name {
		return b.access(ctx, b.user)
	}
	return nil
}

// access returns the jar's access cookie for name's server, asking the hub
// for one first when there is none.
func (b *browser) access(ctx context.Context, name string) *http.Cookie {
	u, _ := url.Parse(b.base + "/user/" + name + "/")
	find := func() *http.Cookie {
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == b.accessName {
				return c
			}
		}
		return nil
	}
	if c := find(); c != nil {
		return c
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/hub/user-cookie?next="+url.QueryEscape(u.Path), nil)
	req.Header.Set("Accept", "text/html")
	if resp, err := b.c.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return find()
}

var (
	hiddenXSRF = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)
	metaXSRF   = regexp.MustCompile(`<meta name="xsrf" content="([^"]+)"`)
)

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// login fills in the real form and returns the final status.
func (b *browser) login(user, password string) int {
	b.t.Helper()
	_, page := b.get("/hub/login")
	m := hiddenXSRF.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("login page has no _xsrf field:\n%s", page)
	}
	form := url.Values{"username": {user}, "password": {password}, "_xsrf": {m[1]}}
	resp, err := b.c.PostForm(b.base+"/hub/login", form)
	if err != nil {
		b.t.Fatalf("POST /hub/login: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return resp.StatusCode
	}
	_, home := b.get("/hub/home")
	mm := metaXSRF.FindStringSubmatch(home)
	if mm == nil {
		b.t.Fatalf("home page has no xsrf meta:\n%s", home)
	}
	b.xsrf = mm[1]
	b.user = strings.ToLower(strings.TrimSpace(user))
	return http.StatusFound
}

// api calls the hub API with the session cookie and xsrf header.
func (b *browser) api(method, path string, body any) (int, []byte) {
	b.t.Helper()
	code, out, err := b.apiErr(method, path, body)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, out
}

// apiErr is api for goroutines other than the test's: it never calls Fatal.
func (b *browser) apiErr(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-XSRFToken", b.xsrfFor(path))
	resp, err := b.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, nil
}

// xsrfFor is the XSRF token for a request to path: the hub's, or on a user
// server that set its own _xsrf cookie (a jupyterhub-singleuser server,
// which authenticates the student by its cookie), that one.
func (b *browser) xsrfFor(path string) string {
	if strings.HasPrefix(path, "/user/") {
		u, _ := url.Parse(b.base + path)
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == "_xsrf" {
				return c.Value
			}
		}
	}
	return b.xsrf
}

type progress struct {
	Progress int    `json:"progress"`
	Message  string `json:"message"`
	Ready    bool   `json:"ready"`
	Failed   bool   `json:"failed"`
	URL      string `json:"url"`
}

// follow reads the progress stream until ready or failed.
func (b *browser) follow(user string, timeout time.Duration) (progress, []progress) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var all []progress
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/hub/api/users/"+user+"/server/progress", nil)
		resp, err := b.c.Do(req)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "data: ") {
				continue
			}
			var p progress
			if err := json.Unmarshal([]byte(line[6:]), &p); err != nil {
				b.t.Fatalf("bad progress event %q: %v", line, err)
			}
			all = append(all, p)
			if p.Ready || p.Failed {
				resp.Body.Close()
				return p, all
			}
		}
		resp.Body.Close()
	}
	b.t.Fatalf("no ready/failed progress event for %s within %s; got %+v", user, timeout, all)
	return progress{}, nil
}

// startServer starts the user's server and waits for it to be ready.
func (b *browser) startServer(user string) {
	b.t.Helper()
	for i := 0; ; i++ {
		code, body := b.api(http.MethodPost, "/hub/api/users/"+user+"/server", nil)
		if code == http.StatusTooManyRequests && i < 60 {
			time.Sleep(2 * time.Second)
			continue
		}
		if code != http.StatusAccepted && code != http.StatusCreated {
			b.t.Fatalf("start %s: %d %s", user, code, body)
		}
		break
	}
	last, all := b.follow(user, 3*time.Minute)
	if !last.Ready {
		b.t.Fatalf("server of %s failed to start: %+v (all: %+v)", user, last, all)
	}
}

func (b *browser) stopServer(user string) {
	b.t.Helper()
	code, body := b.api(http.MethodDelete, "/hub/api/users/"+user+"/server", nil)
	if code != http.StatusNoContent {
		b.t.Fatalf("stop %s: %d %s", user, code, body)
	}
}

// wsHeaderFor carries the cookies a browser sends to a websocket at path
// (the server's access cookie, and a jupyterhub-singleuser server's own
// login cookie), plus Origin.
func (b *browser) wsHeaderFor(path string) http.Header {
	u, _ := url.Parse(b.base + path)
	h := http.Header{}
	var parts []string
	has := false
	for _, c := range b.c.Jar.Cookies(u) {
		has = has || c.Name == b.accessName
		parts = append(parts, c.Name+"="+c.Value)
	}
	if !has {
		if c := b.accessFor(context.Background(), u.Path); c != nil {
			parts = append(parts, c.Name+"="+c.Value)
		}
	}
	h.Set("Cookie", strings.Join(parts, "; "))
	h.Set("Origin", b.base)
	return h
}

// runCode starts a kernel in owner's server (through the proxy, as b) and
// executes code over the kernel websocket; it returns text/plain results and
// stdout joined.
func (b *browser) runCode(owner, code string) (string, error) {
	return b.runCodeFor(owner, code, 90*time.Second)
}

// runCodeFor runs code in a fresh kernel and waits up to timeout for it to
// finish; the kernel is deleted when it returns.
func (b *browser) runCodeFor(owner, code string, timeout time.Duration) (string, error) {
	srv := kernelclient.Server{URL: b.base + "/user/" + owner, Client: b.c, Header: http.Header{"X-XSRFToken": {b.xsrfFor("/user/" + owner + "/api/kernels")}}}
	id, err := srv.StartKernel(context.Background())
	if err != nil {
		return "", err
	}
	defer srv.DeleteKernel(context.Background(), id)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := kernelclient.Dial(ctx, srv.ChannelsURL(id), b.wsHeaderFor("/user/"+owner+"/api/kernels/"+id+"/channels"))
	if err != nil {
		return "", err
	}
	defer conn.CloseNow()
	return kernelclient.Execute(ctx, conn, kernelclient.Request{Code: code, Username: b.user})
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
