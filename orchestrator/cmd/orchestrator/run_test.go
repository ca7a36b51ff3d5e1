package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/dockerapi"
)

const stackConfig = "../../../stack/orchestrator.yaml"

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// stackEnv points the stack's Docker secret at a file of the test's: the
// stack file reads the dummy password from /run/secrets.
func stackEnv(t *testing.T, m map[string]string) func(string) string {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "dummy-password")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m == nil {
		m = map[string]string{}
	}
	m["SWARMHUB_AUTH_DUMMY_PASSWORD_FILE"] = secret
	return envMap(m)
}

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"version"}, envMap(nil), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "swarmhub orchestrator "+version+"\n" {
		t.Errorf("version printed %q", got)
	}
}

func TestCheckConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"check-config", stackConfig}, stackEnv(t, nil), &out, &errOut); err != nil {
		t.Fatalf("stack config: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "configuration is valid") {
		t.Errorf("stack config output %q", out.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen:\n  port: -3\nauth:\n  authenticator: nosuch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := run(context.Background(), []string{"check-config", bad}, envMap(nil), &out, &errOut)
	var ee exitError
	if !errors.As(err, &ee) || ee != 1 {
		t.Fatalf("broken config: err %v, want exit 1", err)
	}
	if !strings.Contains(out.String(), "configuration has problems") || !strings.Contains(out.String(), "authenticator") {
		t.Errorf("broken config output %q", out.String())
	}

	err = run(context.Background(), []string{"check-config"}, envMap(nil), &out, &errOut)
	if !errors.As(err, &ee) || ee != 2 {
		t.Errorf("check-config without a file: err %v, want exit 2", err)
	}
}

// syncBuffer is the log sink serve writes to from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestServe starts the hub against a real Redis and a fake Docker API, asks
// it with the healthcheck subcommand, then stops it through ctx.
func TestServe(t *testing.T) {
	port := freePort(t)
	env := stackEnv(t, map[string]string{
		"SWARMHUB_REDIS_ADDRESS":  testenv.StartRedis(t),
		"SWARMHUB_DOCKER_HOST":    dockerapi.Start(t),
		"SWARMHUB_LISTEN_ADDRESS": "127.0.0.1",
		"SWARMHUB_LISTEN_PORT":    fmt.Sprint(port),
		"SWARMHUB_STORAGE_MOUNT":  t.TempDir(),
		"SWARMHUB_LOG_FORMAT":     "text",
		"SWARMHUB_CONFIG_FILE":    stackConfig,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env, &logs, &logs) }()

	// Hang guard only: the hub normally answers within a second.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var errOut bytes.Buffer
		err := run(ctx, []string{"healthcheck"}, env, &errOut, &errOut)
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned before it was healthy: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub never healthy: %v %s\n%s", err, errOut.String(), logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("listen address not logged:\n%s", logs.String())
	}

	// A wrong URL is unhealthy: the check can fail.
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"healthcheck", "--url", fmt.Sprintf("http://127.0.0.1:%d/hub/nosuch", port)}, env, &errOut, &errOut)
	var ee exitError
	if !errors.As(err, &ee) || ee != 1 {
		t.Errorf("healthcheck of a missing page: err %v, want exit 1", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v\n%s", err, logs.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("serve did not return after cancel\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no shutdown logged:\n%s", logs.String())
	}
}

func TestCheckConfigWarnsWhenAllowedUsersExceedCapacity(t *testing.T) {
	// The fake Docker API reports a swarm without nodes: nothing fits.
	var out, errOut bytes.Buffer
	env := stackEnv(t, map[string]string{
		"SWARMHUB_DOCKER_HOST":        dockerapi.Start(t),
		"SWARMHUB_AUTH_ALLOWED_USERS": "alice,bob",
	})
	if err := run(context.Background(), []string{"check-config", stackConfig}, env, &out, &errOut); err != nil {
		t.Fatalf("check-config: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "warning: auth.allowed_users lists 2 users but only 0 servers fit") {
		t.Errorf("check-config output %q, want the capacity warning", out.String())
	}
}
