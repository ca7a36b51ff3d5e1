package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisStartDeadline bounds how long a fresh redis-server may take to answer
// PING; it is a start-up guard, not a measurement.
const redisStartDeadline = 20 * time.Second

// StartRedis starts a private, non-persistent redis-server on a free
// 127.0.0.1 port in a temporary directory and returns its address. The server
// is killed when the test ends.
func StartRedis(t testing.TB) (addr string) {
	t.Helper()
	bin := requireBinary(t, "redis-server")
	var lastErr error
	// A port found free can be taken before redis-server binds it; retry.
	for attempt := 0; attempt < 5; attempt++ {
		addr, err := startRedis(t, bin)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return ""
}

func startRedis(t testing.TB, bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	out := &syncBuffer{}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", t.TempDir(),
		"--logfile", "",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("running %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	ctx, cancel := context.WithTimeout(context.Background(), redisStartDeadline)
	defer cancel()
	for {
		if pingRedis(ctx, addr) == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err // let stop() see it
			return "", fmt.Errorf("redis-server on %s exited (%v): %s", addr, err, strings.TrimSpace(out.String()))
		case <-ctx.Done():
			stop()
			return "", fmt.Errorf("redis-server on %s did not answer PING within %s: %s", addr, redisStartDeadline, strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Cleanup(stop)
	return addr, nil
}

// RedisClient returns a client connected to a fresh private Redis server,
// closed when the test ends.
func RedisClient(t testing.TB) *redis.Client {
	t.Helper()
	addr := StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), redisStartDeadline)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping redis at %s: %v", addr, err)
	}
	return rdb
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func pingRedis(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// syncBuffer collects the server's output for error messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
