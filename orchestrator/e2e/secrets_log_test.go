package e2e_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// serverToken reads JUPYTER_TOKEN from the spec of user's service.
func (h *hub) serverToken(t testing.TB, user string) string {
	t.Helper()
	return h.serviceEnv(t, user, "JUPYTER_TOKEN")
}

// serviceEnv is the value of key in the env of user's one server service.
func (h *hub) serviceEnv(t testing.TB, user, key string) string {
	t.Helper()
	ids := h.servicesOf(t, user)
	if len(ids) != 1 {
		t.Fatalf("%s has %d services, want 1", user, len(ids))
	}
	out := sh(t, nil, "docker", "service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}", ids[0])
	var env []string
	if err := json.Unmarshal([]byte(out), &env); err != nil {
		t.Fatalf("service env %q: %v", out, err)
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok && v != "" {
			return v
		}
	}
	t.Fatalf("no %s in the service spec of %s", key, user)
	return ""
}

// sessionCookie returns the browser's hub session cookie value.
func (b *browser) sessionCookie() string {
	u, _ := url.Parse(b.base + "/hub/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "swarmhub-session" {
			return c.Value
		}
	}
	b.t.Fatal("no swarmhub-session cookie in the jar")
	return ""
}

// getWith sends a GET with extra headers and returns the status.
func (b *browser) getWith(path string, hdr map[string]string) int {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSecretsNeverReachTheLog runs a whole session with debug logging on
// (login, a failed login, an API token, a server start, proxied requests
// carrying tokens in headers and in the query) and then greps the
// orchestrator's service log for every secret it used.
func TestSecretsNeverReachTheLog(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "secrets", "")

	wrong := "wrong-password-" + randHex(8)
	if code := newBrowser(t, h.base).login("alice", wrong); code == http.StatusFound {
		t.Fatal("a wrong password logged in")
	}
	alice := newBrowser(t, h.base)
	if code := alice.login("alice", password); code != http.StatusFound {
		t.Fatalf("alice login: %d", code)
	}
	admin := newBrowser(t, h.base)
	if code := admin.login("admin", password); code != http.StatusFound {
		t.Fatalf("admin login: %d", code)
	}
	code, body := alice.api(http.MethodPost, "/hub/api/users/alice/tokens", map[string]string{"note": "secrets test"})
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, body)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		t.Fatalf("token answer %s: %v", body, err)
	}

	// The admin picks the small test image; alice follows the progress.
	code, body = admin.api(http.MethodPost, "/hub/api/users/alice/server", map[string]string{"image": "swarmhub/tinynotebook:" + imageTag()})
	if code != http.StatusAccepted && code != http.StatusCreated {
		t.Fatalf("start alice: %d %s", code, body)
	}
	if last, all := alice.follow("alice", 3*time.Minute); !last.Ready {
		t.Fatalf("alice's server did not start: %+v", all)
	}
	serverTok := h.serverToken(t, "alice")

	anon := newBrowser(t, h.base)
	requests := []struct {
		who  *browser
		path string
		hdr  map[string]string
	}{
		{alice, "/user/alice/api/status", nil},
		{alice, "/user/alice/api/status?token=" + tok.Token, nil},
		{alice, "/user/alice/api/status?token=" + serverTok, nil},
		{anon, "/user/alice/api/status?token=" + tok.Token, nil},
		{anon, "/user/alice/api/status", map[string]string{"Authorization": "token " + tok.Token}},
		{anon, "/user/alice/api/contents?token=" + serverTok, map[string]string{"Authorization": "token " + serverTok}},
		{anon, "/hub/api/user", map[string]string{"Authorization": "token " + tok.Token}},
		{anon, "/hub/api/user?token=" + tok.Token, nil},
		{anon, "/hub/login?next=/user/alice/tree%3Ftoken%3D" + tok.Token, map[string]string{"Accept": "text/html"}},
		{admin, "/user/alice/api/status?token=" + serverTok, nil},
	}
	for _, r := range requests {
		r.who.getWith(r.path, r.hdr)
	}
	alice.api(http.MethodPost, "/user/alice/api/contents?token="+tok.Token, map[string]string{"type": "notebook"})

	logs := sh(t, nil, "docker", "service", "logs", "--raw", h.name+"_orchestrator")
	if !strings.Contains(logs, `"path":"/hub/login"`) {
		t.Fatalf("the orchestrator log does not show the requests made; is it the right log?\n%s", tail(logs, 40))
	}
	secrets := map[string]string{
		"the shared password":        password,
		"the wrong password":         wrong,
		"alice's API token":          tok.Token,
		"alice's session cookie":     alice.sessionCookie(),
		"the admin's session cookie": admin.sessionCookie(),
		"alice's server token":       serverTok,
		"alice's page xsrf token":    alice.xsrf,
	}
	for what, secret := range secrets {
		if strings.Contains(logs, secret) {
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, secret) {
					t.Errorf("%s appears in the orchestrator log: %s", what, strings.ReplaceAll(line, secret, "<"+what+">"))
					break
				}
			}
		}
	}
	t.Logf("FIGURE secrets_log_lines_checked=%d", strings.Count(logs, "\n"))
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestStudentCodeCannotReachRedis runs code in a student's notebook that
// tries to talk to the stack's Redis by its service name. Redis holds every
// session id and every server token in plain text, so a student who reaches
// it can become any user, or an admin; it must not be reachable from user
// servers.
func TestStudentCodeCannotReachRedis(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "redis-reach", "")
	alice := newBrowser(t, h.base)
	if code := alice.login("alice", password); code != http.StatusFound {
		t.Fatalf("alice login: %d", code)
	}
	alice.startServer("alice") // the default image has Python and a kernel
	out, err := alice.runCode("alice", `
import socket
try:
    s = socket.create_connection(("redis", 6379), timeout=5)
    s.sendall(b"PING\r\n")
    print("REPLY", s.recv(64))
except Exception as e:
    print("REFUSED", type(e).__name__)
`)
	if err != nil {
		t.Fatalf("running code in alice's kernel: %v (output %q)", err, out)
	}
	if strings.Contains(out, "REPLY") {
		t.Fatalf("student code reached the hub's Redis from its notebook: %s", strings.TrimSpace(out))
	}
	if !strings.Contains(out, "REFUSED") {
		t.Fatalf("unexpected output %q", out)
	}
}
