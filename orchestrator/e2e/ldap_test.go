package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

// Issue 3 end to end: the orchestrator in its stack logs students in against
// a real slapd on the host, which containers reach at the docker_gwbridge
// gateway address.

const (
	peopleTemplate = "uid={username},ou=people,dc=example,dc=edu"
	staffTemplate  = "uid={username},ou=staff,dc=example,dc=edu"
	courseGroup    = "cn=data8,ou=groups,dc=example,dc=edu"
	// Shown by the login page when the directory does not answer.
	msgDirectoryDown = "is not answering"
	msgInvalid       = "Invalid username or password"
)

// gwbridgeGateway is the host's address on docker_gwbridge: every container
// on an overlay network can reach the host there.
func gwbridgeGateway(t testing.TB) string {
	t.Helper()
	out := strings.TrimSpace(sh(t, nil, "docker", "network", "inspect", "docker_gwbridge",
		"--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"))
	for _, f := range strings.Fields(out) {
		if ip := net.ParseIP(f); ip != nil && ip.To4() != nil {
			return f
		}
	}
	t.Fatalf("docker_gwbridge has no IPv4 gateway (got %q); is the swarm initialised?", out)
	return ""
}

// startDirectory starts a private slapd (StartTLS and LDAPS with a CA made
// for the test) listening on the gwbridge gateway.
func startDirectory(t *testing.T) *testenv.Slapd {
	t.Helper()
	return testenv.StartSlapd(t, testenv.SlapdOptions{TLS: true, ListenHost: gwbridgeGateway(t)})
}

// withAuth is the e2e test configuration with its auth: block replaced (YAML
// refuses a second auth: key) and scheduled jobs off.
func withAuth(t *testing.T, h *hub, authBlock string) string {
	t.Helper()
	const end = "# swarmhub-e2e: end of auth\n"
	base := testConfig(h, end)
	i := strings.Index(base, "\nauth:\n")
	j := strings.Index(base, end)
	if i < 0 || j < i {
		t.Fatal("testConfig no longer ends with its auth: block followed by the extra text; update withAuth")
	}
	cfg := base[:i+1] + strings.TrimRight(authBlock, "\n") + "\nlifecycle:\n  cull: {enabled: false}\n  archive: {enabled: false}\n"
	// Service names are swarm-wide: without a per-stack template, two suites
	// running side by side fight over jupyter-alice.
	if !strings.Contains(cfg, "service_name:") {
		cfg = strings.Replace(cfg, "\nnotebook:\n", "\nnotebook:\n  service_name: \""+h.instance+"-{username}\"\n", 1)
	}
	return cfg
}

// copyCA puts the directory's CA where the orchestrator reads it.
func copyCA(t *testing.T, h *hub, s *testenv.Slapd) string {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.root, "ldap-ca.pem"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return "/srv/swarmhub/ldap-ca.pem"
}

// ldapGate forwards TCP to the directory until hang is set; then it accepts
// connections and never answers: a black-holed directory on demand.
type ldapGate struct {
	ln     net.Listener
	target string
	hang   atomic.Bool
	hung   atomic.Int64 // connections accepted while hanging

	mu    sync.Mutex
	conns []net.Conn
}

func startGate(t *testing.T, host, target string) *ldapGate {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	g := &ldapGate{ln: ln, target: target}
	go g.serve()
	t.Cleanup(func() { ln.Close(); g.release() })
	return g
}

func (g *ldapGate) port() int { return g.ln.Addr().(*net.TCPAddr).Port }

func (g *ldapGate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		if g.hang.Load() {
			g.hung.Add(1)
			continue // hold it open, read nothing, answer nothing
		}
		go func() {
			up, err := net.DialTimeout("tcp", g.target, 5*time.Second)
			if err != nil {
				c.Close()
				return
			}
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			_, _ = io.Copy(c, up)
			c.Close()
		}()
	}
}

// release closes every connection accepted so far.
func (g *ldapGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// tryLogin submits the real login form and returns the status and page; on
// success it also reads the page's xsrf token like browser.login.
func tryLogin(b *browser, user, pw string) (int, string) {
	b.t.Helper()
	_, page := b.get("/hub/login")
	m := hiddenXSRF.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("login page has no _xsrf field:\n%s", page)
	}
	form := url.Values{"username": {user}, "password": {pw}, "_xsrf": {m[1]}}
	req, _ := http.NewRequest(http.MethodPost, b.base+"/hub/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("POST /hub/login as %q: %v", user, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusFound {
		_, home := b.get("/hub/home")
		if mm := metaXSRF.FindStringSubmatch(home); mm != nil {
			b.xsrf = mm[1]
		}
	}
	return resp.StatusCode, string(body)
}

// mustLogin logs b in and returns the account the hub sees.
func mustLogin(t *testing.T, b *browser, user, pw string) apiUser {
	t.Helper()
	code, body := tryLogin(b, user, pw)
	if code != http.StatusFound {
		t.Fatalf("login as %q: want 302, got %d\n%s", user, code, pageText(body))
	}
	return me(t, b)
}

type apiUser struct {
	Name    string `json:"name"`
	Admin   bool   `json:"admin"`
	Blocked bool   `json:"blocked"`
}

func me(t *testing.T, b *browser) apiUser {
	t.Helper()
	code, body := b.api(http.MethodGet, "/hub/api/user", nil)
	if code != http.StatusOK {
		t.Fatalf("/hub/api/user: %d %s", code, body)
	}
	var u apiUser
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatalf("/hub/api/user: %v: %s", err, body)
	}
	return u
}

// pageText keeps error pages readable in failure messages.
func pageText(body string) string {
	if i := strings.Index(body, `class="error"`); i >= 0 {
		end := min(len(body), i+300)
		return body[i:end]
	}
	if len(body) > 500 {
		return body[:500]
	}
	return body
}

// waitNoService polls until user has no swarm service (generous deadline,
// no timing assertion beyond it).
func waitNoService(t *testing.T, h *hub, user string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for len(h.servicesOf(t, user)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s's service still exists 90s after revocation: %v", user, h.servicesOf(t, user))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// openKernel starts a kernel in owner's server and opens its channels
// websocket through the proxy, as b.
func openKernel(t *testing.T, b *browser, owner string) *websocket.Conn {
	t.Helper()
	code, body := b.api(http.MethodPost, "/user/"+owner+"/api/kernels", map[string]string{"name": "python3"})
	if code != http.StatusCreated {
		t.Fatalf("create kernel: %d %s", code, body)
	}
	var k struct{ ID string }
	_ = json.Unmarshal(body, &k)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(b.base, "http") + "/user/" + owner + "/api/kernels/" + k.ID + "/channels"
	conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: b.wsHeaderFor("/user/" + owner + "/api/kernels/" + k.ID + "/channels")})
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("kernel websocket: %v (status %d)", err, st)
	}
	conn.SetReadLimit(1 << 22)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// readUntilClosed drains conn until it fails; it reports the error, or nil
// when the connection was still open at the deadline.
func readUntilClosed(conn *websocket.Conn, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// tokenGet calls path with "Authorization: token X" and no cookies.
func tokenCall(t *testing.T, h *hub, method, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, h.base+path, nil)
	req.Header.Set("Authorization", "token "+token)
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s with a token: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestLDAPBindTemplates: bind-template mode over StartTLS with the test CA,
// two templates (students, staff), username_map onto the admin account, and
// everything issue 3 asks of a running hub: case variants, refusals,
// regulation, tokens, a black-holed directory, and add/block/delete at
// runtime.
func TestLDAPBindTemplates(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := startDirectory(t)
	gw := gwbridgeGateway(t)
	gate := startGate(t, gw, net.JoinHostPort(dir.Host, fmt.Sprint(dir.Port)))
	h := deployWith(t, "ldap-bind", func(h *hub) string {
		ca := copyCA(t, h, dir)
		return withAuth(t, h, fmt.Sprintf(`auth:
  authenticator: ldap
  admin_users: [data8]
  allowed_users: [alice, bob, mixedcase]
  username_map: {boninho: data8, abedjan: data8}
  admin_access: true
  regulation: {max_failures: 3, window: 2m, ban: 5m}
  ldap:
    server_address: %s
    server_port: %d
    tls: starttls
    ca_file: %s
    bind_dn_templates: [%q, %q]
    dial_timeout: 3s
    operation_timeout: 6s
`, gw, gate.port(), ca, peopleTemplate, staffTemplate))
	})

	admin := newBrowser(t, h.base)
	alice := newBrowser(t, h.base)

	t.Run("student logs in through the form", func(t *testing.T) {
		if u := mustLogin(t, alice, "alice", "alice-pw"); u.Name != "alice" || u.Admin {
			t.Fatalf("alice logged in as %+v", u)
		}
	})

	// Alice's server starts in the background while the login cases run.
	started := make(chan struct{})
	go func() {
		defer close(started)
		alice.startServer("alice")
	}()

	t.Run("username_map puts instructors onto the admin account", func(t *testing.T) {
		if u := mustLogin(t, admin, "boninho", "boninho-pw"); u.Name != "data8" || !u.Admin {
			t.Fatalf("boninho logged in as %+v, want data8 (admin)", u)
		}
		other := newBrowser(t, h.base)
		if u := mustLogin(t, other, " Abedjan ", "abedjan-pw"); u.Name != "data8" || !u.Admin {
			t.Fatalf("abedjan logged in as %+v, want data8 (admin)", u)
		}
		if code, body := other.api(http.MethodGet, "/hub/api/users", nil); code != http.StatusOK {
			t.Fatalf("the mapped admin cannot list users: %d %s", code, body)
		}
	})

	variants := []*browser{alice}
	t.Run("uppercase and whitespace variants are one user", func(t *testing.T) {
		for _, raw := range []string{"ALICE", " Alice ", "aLiCe"} {
			b := newBrowser(t, h.base)
			if u := mustLogin(t, b, raw, "alice-pw"); u.Name != "alice" {
				t.Fatalf("%q logged in as %q, want alice", raw, u.Name)
			}
			variants = append(variants, b)
		}
		for _, raw := range []string{"MixedCase", "mixedcase", "MIXEDCASE "} {
			if u := mustLogin(t, newBrowser(t, h.base), raw, "mixed-pw"); u.Name != "mixedcase" {
				t.Fatalf("%q logged in as %q, want mixedcase", raw, u.Name)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		cases := []struct {
			name, user, pw string
			want           int
			text           string
		}{
			{"wrong password", "mixedcase", "not-the-password", http.StatusUnauthorized, msgInvalid},
			{"unknown user", "nosuchstudent", "whatever-pw", http.StatusUnauthorized, msgInvalid},
			{"empty password", "alice", "", http.StatusUnauthorized, msgInvalid},
			{"in the directory but not allowed", "dup", "dup-pw", http.StatusForbidden, "not allowed"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				code, body := tryLogin(newBrowser(t, h.base), tc.user, tc.pw)
				if code != tc.want || !strings.Contains(body, tc.text) {
					t.Fatalf("want %d with %q, got %d: %s", tc.want, tc.text, code, pageText(body))
				}
			})
		}
	})

	t.Run("fourth attempt is refused even with the right password; case variants share the counter", func(t *testing.T) {
		mustLogin(t, newBrowser(t, h.base), "bob", "bob-pw") // the password is right, and a success resets the count
		for _, raw := range []string{"Bob", "BOB", " bob "} {
			if code, body := tryLogin(newBrowser(t, h.base), raw, "wrong-pw"); code != http.StatusUnauthorized {
				t.Fatalf("wrong password as %q: want 401, got %d: %s", raw, code, pageText(body))
			}
		}
		code, body := tryLogin(newBrowser(t, h.base), "bob", "bob-pw")
		if code != http.StatusUnauthorized || !strings.Contains(body, msgInvalid) {
			t.Fatalf("fourth attempt with the right password: want 401 with the generic message, got %d: %s", code, pageText(body))
		}
		// The server side shows why: a refusal for the ban, not a bad password.
		code, evs := admin.api(http.MethodGet, "/hub/api/events?limit=20", nil)
		if code != http.StatusOK || !strings.Contains(string(evs), "too many failures") {
			t.Fatalf("no ban event for bob: %d %s", code, evs)
		}
	})

	<-started
	if t.Failed() {
		return
	}

	t.Run("API tokens", func(t *testing.T) {
		code, body := alice.api(http.MethodPost, "/hub/api/users/alice/tokens", map[string]string{"note": "grading script"})
		if code != http.StatusCreated {
			t.Fatalf("create token: %d %s", code, body)
		}
		var created struct{ Token, ID string }
		_ = json.Unmarshal(body, &created)
		if len(created.Token) < 32 || created.ID == "" {
			t.Fatalf("create token returned %s", body)
		}
		if code, body := tokenCall(t, h, http.MethodGet, "/hub/api/user", created.Token); code != http.StatusOK || !strings.Contains(string(body), `"name":"alice"`) {
			t.Fatalf("token on /hub/api/user: %d %s", code, body)
		}
		if code, body := tokenCall(t, h, http.MethodGet, "/user/alice/api/status", created.Token); code != http.StatusOK {
			t.Fatalf("token through the proxy: %d %s", code, body)
		}
		for _, p := range []string{"/hub/api/users", "/hub/api/users/bob", "/hub/api/users/bob/tokens", "/user/bob/api/status"} {
			if code, _ := tokenCall(t, h, http.MethodGet, p, created.Token); code != http.StatusForbidden {
				t.Fatalf("a student's token on %s: want 403, got %d", p, code)
			}
		}
		code, body = alice.api(http.MethodGet, "/hub/api/users/alice/tokens", nil)
		if code != http.StatusOK || !strings.Contains(string(body), created.ID) || strings.Contains(string(body), created.Token) {
			t.Fatalf("token list (must name the id, never the token): %d %s", code, body)
		}
		if code, body := alice.api(http.MethodDelete, "/hub/api/users/alice/tokens/"+created.ID, nil); code != http.StatusNoContent {
			t.Fatalf("revoke token: %d %s", code, body)
		}
		// At once, with no wait: the hub and the proxy refuse it.
		if code, _ := tokenCall(t, h, http.MethodGet, "/user/alice/api/status", created.Token); code != http.StatusUnauthorized {
			t.Fatalf("revoked token through the proxy: want 401, got %d", code)
		}
		// The hub API answers a bad token 403, as JupyterHub does.
		if code, _ := tokenCall(t, h, http.MethodGet, "/hub/api/user", created.Token); code != http.StatusForbidden {
			t.Fatalf("revoked token on the hub: want 403, got %d", code)
		}

		code, body = admin.api(http.MethodPost, "/hub/api/users/data8/tokens", map[string]string{"note": "admin script"})
		if code != http.StatusCreated {
			t.Fatalf("admin token: %d %s", code, body)
		}
		var adm struct{ Token string }
		_ = json.Unmarshal(body, &adm)
		if code, body := tokenCall(t, h, http.MethodGet, "/hub/api/users", adm.Token); code != http.StatusOK || !strings.Contains(string(body), `"alice"`) {
			t.Fatalf("admin token on /hub/api/users: %d %s", code, body)
		}
		if code, _ := tokenCall(t, h, http.MethodGet, "/user/alice/api/status", adm.Token); code != http.StatusOK {
			t.Fatalf("admin token on alice's server (admin_access on): want 200, got %d", code)
		}
	})

	t.Run("black-holed directory: login fails clearly, everything else keeps answering", func(t *testing.T) {
		gate.hang.Store(true)
		defer func() { gate.hang.Store(false); gate.release() }()
		before := gate.hung.Load()

		type result struct {
			code int
			body string
			took time.Duration
		}
		done := make(chan result, 1)
		victim := newBrowser(t, h.base)
		victim.c.Timeout = 45 * time.Second // far above dial_timeout + operation_timeout
		go func() {
			start := time.Now()
			code, body := tryLogin(victim, "mixedcase", "mixed-pw")
			done <- result{code, body, time.Since(start)}
		}()
		// Wait until the login is stuck in the directory.
		for deadline := time.Now().Add(30 * time.Second); gate.hung.Load() == before; {
			if time.Now().After(deadline) {
				t.Fatal("the login never reached the black-holed directory")
			}
			time.Sleep(20 * time.Millisecond)
		}
		resp, err := http.Get(h.base + "/hub/api/")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("/hub/api/ during the hang: %v %v", resp, err)
		}
		resp.Body.Close()
		if code, body := alice.api(http.MethodGet, "/user/alice/api/status", nil); code != http.StatusOK {
			t.Fatalf("alice's proxied request during the hang: %d %s", code, body)
		}
		if code, _ := alice.api(http.MethodGet, "/hub/api/user", nil); code != http.StatusOK {
			t.Fatalf("alice's hub API call during the hang: %d", code)
		}
		select {
		case r := <-done:
			t.Fatalf("the login returned (%d after %s) before the other requests were checked; they were not shown to run during the hang", r.code, r.took)
		default:
		}
		r := <-done
		t.Logf("login against the black hole failed after %s (dial_timeout 3s, operation_timeout 6s)", r.took.Round(time.Millisecond))
		if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, msgDirectoryDown) {
			t.Fatalf("want 503 with %q, got %d: %s", msgDirectoryDown, r.code, pageText(r.body))
		}
		gate.hang.Store(false)
		gate.release()
		mustLogin(t, newBrowser(t, h.base), "mixedcase", "mixed-pw")
	})

	t.Run("add and delete at runtime", func(t *testing.T) {
		dup := newBrowser(t, h.base)
		if code, _ := tryLogin(dup, "dup", "dup-pw"); code != http.StatusForbidden {
			t.Fatalf("dup before being added: want 403, got %d", code)
		}
		code, body := admin.api(http.MethodPost, "/hub/api/users", map[string]any{"usernames": []string{" DUP "}, "admin": false})
		if code != http.StatusCreated {
			t.Fatalf("add dup: %d %s", code, body)
		}
		if u := mustLogin(t, dup, "dup", "dup-pw"); u.Name != "dup" {
			t.Fatalf("dup logged in as %+v", u)
		}
		code, body = admin.api(http.MethodPost, "/hub/api/users/dup/server", map[string]string{"image": "swarmhub/tinynotebook:" + imageTag()})
		if code != http.StatusAccepted && code != http.StatusCreated {
			t.Fatalf("start dup's server: %d %s", code, body)
		}
		if last, all := admin.follow("dup", 3*time.Minute); !last.Ready {
			t.Fatalf("dup's server did not start: %+v", all)
		}
		if code, _ := dup.api(http.MethodGet, "/user/dup/api/status", nil); code != http.StatusOK {
			t.Fatalf("dup's server through the proxy: %d", code)
		}

		if code, body := admin.api(http.MethodDelete, "/hub/api/users/dup", nil); code != http.StatusNoContent {
			t.Fatalf("delete dup: %d %s", code, body)
		}
		if code, _ := dup.api(http.MethodGet, "/hub/api/user", nil); code != http.StatusForbidden {
			t.Fatalf("deleted user's session on the hub API: want 403, got %d", code)
		}
		if code, _ := dup.api(http.MethodGet, "/user/dup/api/status", nil); code != http.StatusUnauthorized {
			t.Fatalf("deleted user's proxied request: want 401, got %d", code)
		}
		waitNoService(t, h, "dup")
		if code, _ := tryLogin(newBrowser(t, h.base), "dup", "dup-pw"); code != http.StatusForbidden {
			t.Fatalf("deleted user logged in again: %d", code)
		}
		if _, body := admin.api(http.MethodGet, "/hub/api/users", nil); strings.Contains(string(body), `"name":"dup"`) {
			t.Fatalf("dup still listed after delete: %s", body)
		}
	})

	t.Run("blocking ends sessions, websockets and the server at once", func(t *testing.T) {
		ws := openKernel(t, alice, "alice")
		if n := len(h.servicesOf(t, "alice")); n != 1 {
			t.Fatalf("alice has %d services before the block", n)
		}
		code, body := admin.api(http.MethodPatch, "/hub/api/users/alice", map[string]bool{"blocked": true})
		if code != http.StatusOK {
			t.Fatalf("block alice: %d %s", code, body)
		}
		if err := readUntilClosed(ws, 30*time.Second); err == nil {
			t.Fatal("alice's kernel websocket is still open 30s after the block")
		} else {
			t.Logf("kernel websocket closed: %v", err)
		}
		// Every session of every spelling goes on its next request.
		for i, b := range variants {
			resp, _ := b.get("/hub/home")
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/hub/login") {
				t.Errorf("session %d after the block: /hub/home gave %d %q, want a redirect to /hub/login", i, resp.StatusCode, resp.Header.Get("Location"))
			}
			if code, _ := b.api(http.MethodGet, "/user/alice/api/status", nil); code != http.StatusUnauthorized {
				t.Errorf("session %d after the block: proxied request gave %d, want 401", i, code)
			}
		}
		waitNoService(t, h, "alice")
		if code, body := tryLogin(newBrowser(t, h.base), "Alice", "alice-pw"); code != http.StatusForbidden {
			t.Fatalf("blocked user logged in again: %d %s", code, pageText(body))
		}
	})
}

// TestLDAPLookupDN: lookup-DN mode with the service account, the username
// taken from the entry's uid, and the course group admitting students who
// are not on the allow list.
func TestLDAPLookupDN(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := startDirectory(t)
	h := deployWith(t, "ldap-lookup", func(h *hub) string {
		return withAuth(t, h, fmt.Sprintf(`auth:
  authenticator: ldap
  admin_users: [data8]
  allowed_users: [alice]
  username_map: {boninho: data8}
  ldap:
    server_address: %s
    server_port: %d
    tls: none
    lookup_dn: true
    bind_dn: %q
    bind_password: %q
    user_search_base: %q
    user_attribute: uid
    search_filter: "(objectClass=inetOrgPerson)"
    lookup_dn_user_dn_attribute: uid
    allowed_groups: [%q]
    dial_timeout: 3s
    operation_timeout: 6s
`, dir.Host, dir.Port, dir.AdminDN, dir.AdminPassword, dir.BaseDN, courseGroup))
	})

	cases := []struct {
		name, user, pw string
		want           string // account name, "" = refused
		admin          bool
		code           int
	}{
		{"listed student", "alice", "alice-pw", "alice", false, http.StatusFound},
		{"group member whose DN has special characters", "jsmith", "jsmith-pw", "jsmith", false, http.StatusFound},
		{"group member with an uppercase uid", "MixedCase", "mixed-pw", "mixedcase", false, http.StatusFound},
		{"uppercase and spaces", "  MIXEDCASE ", "mixed-pw", "mixedcase", false, http.StatusFound},
		{"instructor mapped onto the admin account", "Boninho", "boninho-pw", "data8", true, http.StatusFound},
		{"not listed and not in the group", "bob", "bob-pw", "", false, http.StatusForbidden},
		{"wrong password", "alice", "nope-nope", "", false, http.StatusUnauthorized},
		{"unknown user", "nosuchstudent", "whatever", "", false, http.StatusUnauthorized},
		{"injection", "*)(uid=*", "alice-pw", "", false, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, h.base)
			code, body := tryLogin(b, tc.user, tc.pw)
			if code != tc.code {
				t.Fatalf("login %q: want %d, got %d: %s", tc.user, tc.code, code, pageText(body))
			}
			if tc.want == "" {
				return
			}
			if u := me(t, b); u.Name != tc.want || u.Admin != tc.admin {
				t.Fatalf("login %q: got %+v, want %s admin=%v", tc.user, u, tc.want, tc.admin)
			}
		})
	}
	t.Run("two entries for one name are refused", func(t *testing.T) {
		if code, body := tryLogin(newBrowser(t, h.base), "dup", "dup-pw"); code == http.StatusFound {
			t.Fatalf("an ambiguous name logged in: %s", pageText(body))
		}
	})
}
