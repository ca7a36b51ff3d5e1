package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/dockerapi"
)

// The request limits, tried against the hub as `orchestrator serve` runs it:
// its listener, its http.Server and its routing, on a real Redis. The hub
// body timeout is short here so that the cut can be watched; the tests only
// check that it happens, not how fast.
const limitsBodyTimeout = time.Second

// aliceUpstream is alice's "Jupyter server": it echoes websocket messages
// and reports the size of request bodies, however slowly they arrive.
func aliceUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/ws") {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, msg); err != nil {
					return
				}
			}
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "received %d bytes", n)
	}))
	t.Cleanup(up.Close)
	return up
}

// aliceDocker is the Docker API with one running service: alice's server
// at the upstream's address, which the hub adopts at startup.
func aliceDocker(t *testing.T) string {
	svc := map[string]any{
		"ID": "svc-alice", "CreatedAt": time.Now().UTC(),
		"Spec": map[string]any{
			"Name":   "jupyter-alice",
			"Labels": map[string]string{"swarmhub.user": "alice", "swarmhub.managed": "true", "swarmhub.instance": "swarmhub"},
			"TaskTemplate": map[string]any{"ContainerSpec": map[string]any{
				"Image": "swarmhub/notebook-debian:test", "Env": []string{"JUPYTER_TOKEN=alice-server-token"},
			}},
		},
	}
	task := map[string]any{
		"ID": "task-alice", "ServiceID": "svc-alice", "CreatedAt": time.Now().UTC(),
		"Status":       map[string]any{"State": "running"},
		"DesiredState": "running",
		"NetworksAttachments": []any{map[string]any{
			"Network":   map[string]any{"ID": "net1", "Spec": map[string]any{"Name": "swarmhub-users"}},
			"Addresses": []string{"127.0.0.1/8"},
		}},
	}
	base := dockerapi.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if i := strings.Index(p[1:], "/"); strings.HasPrefix(p, "/v") && i > 0 {
			p = p[i+1:]
		}
		var body any
		switch {
		case p == "/services":
			body = []any{svc}
		case p == "/services/svc-alice" || p == "/services/jupyter-alice":
			body = svc
		case p == "/tasks":
			body = []any{task}
		default:
			base.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
}

type limitsHub struct {
	addr string
	auth string // alice's API token as an Authorization value
}

func startLimitsHub(t *testing.T) limitsHub {
	t.Helper()
	up := aliceUpstream(t)
	_, upPort, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	redisAddr := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, "swarmhub:")
	ctx := context.Background()
	if err := st.PutUser(ctx, store.User{Name: "alice", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	token, _, err := st.CreateToken(ctx, "alice", "limits test")
	if err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	env := stackEnv(t, map[string]string{
		"SWARMHUB_REDIS_ADDRESS":                redisAddr,
		"SWARMHUB_DOCKER_HOST":                  aliceDocker(t),
		"SWARMHUB_LISTEN_ADDRESS":               "127.0.0.1",
		"SWARMHUB_LISTEN_PORT":                  fmt.Sprint(port),
		"SWARMHUB_PUBLIC_URL":                   fmt.Sprintf("http://127.0.0.1:%d", port),
		"SWARMHUB_LISTEN_BODY_READ_TIMEOUT":     limitsBodyTimeout.String(),
		"SWARMHUB_NOTEBOOK_PORT":                upPort,
		"SWARMHUB_STORAGE_MOUNT":                t.TempDir(),
		"SWARMHUB_LOG_FORMAT":                   "text",
		"SWARMHUB_CONFIG_FILE":                  stackConfig,
		"SWARMHUB_LIFECYCLE_RECONCILE_INTERVAL": "1h",
	})
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env, &logs, &logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Errorf("serve did not return after cancel")
		}
	})
	h := limitsHub{addr: fmt.Sprintf("127.0.0.1:%d", port), auth: "token " + token}

	// Ready when alice's server answers through the hub (after the
	// startup reconcile adopted it). Hang guard only.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/user/alice/api/status", nil)
		req.Header.Set("Authorization", h.auth)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(b), "received") {
				return h
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's server never answered through the hub (%v)\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exchange sends raw on a fresh connection and reads one response; nil when
// the hub closed the connection without one.
func (h limitsHub) exchange(t *testing.T, raw string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute)) // hang guard
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestServeRequestLimits(t *testing.T) {
	h := startLimitsHub(t)

	t.Run("64 KiB header is refused", func(t *testing.T) {
		resp := h.exchange(t, "GET /hub/login HTTP/1.1\r\nHost: hub\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\nConnection: close\r\n\r\n")
		if resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %v, want 431", resp)
		}
	})

	t.Run("obs-fold carrying Transfer-Encoding is refused", func(t *testing.T) {
		for _, path := range []string{"/hub/login", "/user/alice/api/contents"} {
			resp := h.exchange(t, "POST "+path+" HTTP/1.1\r\nHost: hub\r\nAuthorization: "+h.auth+"\r\nContent-Length: 5\r\nX-Note: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
			if resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s: got %v, want 400", path, resp)
			}
		}
		// The same request unfolded is served: the guard refuses the fold only.
		resp := h.exchange(t, "POST /user/alice/api/contents HTTP/1.1\r\nHost: hub\r\nAuthorization: "+h.auth+"\r\nContent-Length: 5\r\nX-Note: a\r\nConnection: close\r\n\r\n0\r\n\r\n")
		if resp == nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("unfolded request: got %v, want 200", resp)
		}
	})

	t.Run("50 slow login bodies are cut", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := range 50 {
			wg.Go(func() {
				conn, err := net.Dial("tcp", h.addr)
				if err != nil {
					errs <- err
					return
				}
				defer conn.Close()
				// A form that announces 100 bytes and sends one: only the
				// body timeout can end it.
				if _, err := io.WriteString(conn, "POST /hub/login HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nu"); err != nil {
					errs <- err
					return
				}
				_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute)) // hang guard
				// The hub answers with an error or closes; either ends the read.
				if _, err := io.Copy(io.Discard, conn); err != nil {
					errs <- fmt.Errorf("slow POST %d was still open after 2 minutes: %w", i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("proxied traffic outlives the hub body timeout", func(t *testing.T) {
		// An upload through /user/ whose body takes longer than the hub's
		// body timeout arrives whole.
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
		if _, err := io.WriteString(conn, "PUT /user/alice/api/contents/big HTTP/1.1\r\nHost: hub\r\nAuthorization: "+h.auth+"\r\nContent-Length: 6\r\nConnection: close\r\n\r\nabc"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * limitsBodyTimeout) // past the hub body timeout; not a measurement
		if _, err := io.WriteString(conn, "def"); err != nil {
			t.Fatalf("the proxied upload was cut: %v", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "received 6 bytes" {
			t.Fatalf("slow proxied upload: %d %q", resp.StatusCode, b)
		}

		// A websocket stays open and carries messages past it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		hdr := http.Header{"Authorization": {h.auth}, "Origin": {"http://" + h.addr}}
		ws, _, err := websocket.Dial(ctx, "ws://"+h.addr+"/user/alice/ws", &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		for i := range 2 {
			msg := []byte(fmt.Sprintf("message %d", i))
			if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			_, got, err := ws.Read(ctx)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo %d: %q %v", i, got, err)
			}
			time.Sleep(3 * limitsBodyTimeout) // past the hub body timeout; not a measurement
		}
	})
}

// TestSpecOptionsCarryHardening: the configuration's container hardening
// reaches every server's spec.
func TestSpecOptionsCarryHardening(t *testing.T) {
	cfg := config.Default()
	spec, err := spawner.BuildSpec(spawner.Request{User: "alice", ServiceName: "jupyter-alice", VolumeName: "v", Token: "t", Image: "img"}, specOptions(cfg))
	if err != nil {
		t.Fatal(err)
	}
	cs := spec.TaskTemplate.ContainerSpec
	if cs.Privileges == nil || !cs.Privileges.NoNewPrivileges {
		t.Errorf("privileges %+v, want no_new_privileges", cs.Privileges)
	}
	if want := []string{"CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SYS_CHROOT"}; !slices.Equal(cs.CapabilityDrop, want) {
		t.Errorf("dropped capabilities %v, want %v", cs.CapabilityDrop, want)
	}
	if r := spec.TaskTemplate.Resources; r == nil || r.Limits == nil || r.Limits.Pids != int64(cfg.Notebook.PidsLimit) || r.Limits.Pids == 0 {
		t.Errorf("resources %+v, want the pids limit %d", r, cfg.Notebook.PidsLimit)
	}
}
