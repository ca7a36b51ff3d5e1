package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWholePath is issue 2's end-to-end check: login, own Jupyter server,
// kernel through the proxy, workspace and exchange kept, isolation, a failed
// spawn, and an orchestrator restart that loses nothing.
func TestWholePath(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "path", "")

	alice := newBrowser(t, h.base)
	bob := newBrowser(t, h.base)
	if code := alice.login("Alice ", password); code != http.StatusFound {
		t.Fatalf("alice login: %d", code)
	}
	if code := bob.login("bob", password); code != http.StatusFound {
		t.Fatalf("bob login: %d", code)
	}
	intruder := newBrowser(t, h.base)
	if code := intruder.login("mallory", password); code == http.StatusFound {
		t.Fatal("a user outside allowed_users logged in")
	}

	// Both start at once: the spawner handles them in parallel.
	done := make(chan struct{})
	go func() { defer close(done); bob.startServer("bob") }()
	alice.startServer("alice")
	<-done

	t.Run("kernel executes 1+1 over the websocket", func(t *testing.T) {
		out, err := alice.runCode("alice", "1+1")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "2" {
			t.Fatalf("1+1 gave %q", out)
		}
	})

	t.Run("workspace survives stop and start", func(t *testing.T) {
		code, body := alice.api(http.MethodPut, "/user/alice/api/contents/kept.txt",
			map[string]string{"type": "file", "format": "text", "content": "still here"})
		if code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("write file: %d %s", code, body)
		}
		alice.stopServer("alice")
		if n := len(h.servicesOf(t, "alice")); n != 0 {
			t.Fatalf("stopped server left %d services", n)
		}
		code, _ = alice.api(http.MethodGet, "/user/alice/api/status", nil)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("API of a stopped server: want 503, got %d", code)
		}
		alice.startServer("alice")
		code, body = alice.api(http.MethodGet, "/user/alice/api/contents/kept.txt", nil)
		var f struct{ Content string }
		_ = json.Unmarshal(body, &f)
		if code != http.StatusOK || f.Content != "still here" {
			t.Fatalf("file after restart: %d %s", code, body)
		}
	})

	t.Run("exchange is shared between students", func(t *testing.T) {
		if _, err := alice.runCode("alice", "open('/home/jovyan/.exchange/from-alice.txt','w').write('hello bob')"); err != nil {
			t.Fatal(err)
		}
		out, err := bob.runCode("bob", "print(open('/home/jovyan/.exchange/from-alice.txt').read())")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "hello bob" {
			t.Fatalf("bob read %q from the exchange", out)
		}
	})

	t.Run("a student cannot reach another's server", func(t *testing.T) {
		code, _ := alice.api(http.MethodGet, "/user/bob/api/status", nil)
		if code != http.StatusForbidden {
			t.Fatalf("alice on /user/bob/api/status: want 403, got %d", code)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.base, "http")+"/user/bob/api/kernels/x/channels",
			&websocket.DialOptions{HTTPHeader: alice.wsHeaderFor("/user/bob/api/kernels/x/channels")})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			st := 0
			if resp != nil {
				st = resp.StatusCode
			}
			t.Fatalf("alice's websocket to bob's server: want 403, got %d (%v)", st, err)
		}
		code, _ = alice.api(http.MethodGet, "/user/bobby/api/status", nil)
		if code != http.StatusForbidden {
			t.Fatalf("prefix match: alice on /user/bobby/: want 403, got %d", code)
		}
	})

	t.Run("a missing image fails the spawn with Docker's text and leaves no service", func(t *testing.T) {
		admin := newBrowser(t, h.base)
		if code := admin.login("admin", password); code != http.StatusFound {
			t.Fatalf("admin login: %d", code)
		}
		code, body := admin.api(http.MethodPost, "/hub/api/users/carol/server", map[string]string{"image": "swarmhub/does-not-exist:nope"})
		if code == http.StatusNotFound {
			// carol has never logged in: add her first through the API.
			admin.api(http.MethodPost, "/hub/api/users", map[string]any{"usernames": []string{"carol"}})
			code, body = admin.api(http.MethodPost, "/hub/api/users/carol/server", map[string]string{"image": "swarmhub/does-not-exist:nope"})
		}
		if code != http.StatusAccepted {
			t.Fatalf("start carol with a missing image: %d %s", code, body)
		}
		last, all := admin.follow("carol", 3*time.Minute)
		if !last.Failed {
			t.Fatalf("want a failed spawn, got %+v", all)
		}
		if !strings.Contains(strings.ToLower(last.Message), "no such image") && !strings.Contains(strings.ToLower(last.Message), "does-not-exist") {
			t.Fatalf("failure message does not carry Docker's error: %q", last.Message)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(h.servicesOf(t, "carol")) != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Second)
		}
		if n := len(h.servicesOf(t, "carol")); n != 0 {
			t.Fatalf("failed spawn left %d services", n)
		}
	})

	t.Run("orchestrator restart keeps servers and sessions", func(t *testing.T) {
		h.killOrchestrator(t)
		time.Sleep(2 * time.Second)
		h.waitHealthy(t, 3*time.Minute)
		for _, b := range []*browser{alice, bob} {
			var code int
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				code, _ = b.api(http.MethodGet, "/user/"+b.user+"/api/status", nil)
				if code == http.StatusOK {
					break
				}
				time.Sleep(time.Second)
			}
			if code != http.StatusOK {
				t.Fatalf("%s's server after the orchestrator restart: %d", b.user, code)
			}
			if n := len(h.servicesOf(t, b.user)); n != 1 {
				t.Fatalf("%s has %d services after the restart, want 1", b.user, n)
			}
		}
		out, err := alice.runCode("alice", "40+2")
		if err != nil || strings.TrimSpace(out) != "42" {
			t.Fatalf("kernel after restart: %q %v", out, err)
		}
	})
}
