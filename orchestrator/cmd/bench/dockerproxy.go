package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// The counting proxy stands between a Docker client and the engine's socket
// and counts every API call by endpoint. dockerd offers no per-client
// counters (its debug log would need a daemon restart), so the bench stack's
// orchestrator is configured with docker.host pointing at orchestrator.sock,
// and the bench's own client (bare baselines, stats) uses bench.sock: both
// sides of every comparison pay the same extra unix-socket hop.
const (
	orchestratorSock = "orchestrator.sock"
	benchSock        = "bench.sock"
	countsPath       = "/_bench/counts"
)

// callCounts is endpoint -> calls, per socket.
type callCounts map[string]map[string]int64

type counter struct {
	mu sync.Mutex
	c  callCounts
}

func (c *counter) add(sock, endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c[sock] == nil {
		c.c[sock] = map[string]int64{}
	}
	c.c[sock][endpoint]++
}

func (c *counter) snapshot() callCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := callCounts{}
	for s, m := range c.c {
		out[s] = map[string]int64{}
		for k, v := range m {
			out[s][k] = v
		}
	}
	return out
}

var apiVersion = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

// collectionVerbs are second path segments that name an action, not an
// object (kept as they are, so /services/create is not /services/{id}).
var collectionVerbs = map[string]bool{"create": true, "prune": true, "json": true, "load": true, "search": true, "init": true, "join": true, "leave": true, "update": true, "unlock": true, "unlockkey": true}

// endpoint reduces a request to METHOD and a path pattern without IDs, e.g.
// "GET /tasks", "POST /services/create", "GET /services/{id}".
func endpoint(method, path string) string {
	p := apiVersion.ReplaceAllString(path, "/")
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) >= 2 && !collectionVerbs[segs[1]] {
		segs[1] = "{id}"
	}
	if len(segs) > 3 {
		segs = segs[:3]
	}
	return method + " /" + strings.Join(segs, "/")
}

func serveDockerProxy(ctx context.Context, dir, upstream string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	cnt := &counter{c: callCounts{}}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", upstream)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	errc := make(chan error, 2)
	var servers []*http.Server
	for _, name := range []string{orchestratorSock, benchSock} {
		path := filepath.Join(dir, name)
		_ = os.Remove(path)
		ln, err := net.Listen("unix", path)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", path, err)
		}
		_ = os.Chmod(path, 0o666)
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme = "http"
				pr.Out.URL.Host = "docker"
				pr.Out.Host = "docker"
			},
			Transport:     tr,
			FlushInterval: -1, // events and logs stream
		}
		sock := name
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == countsPath {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(cnt.snapshot())
				return
			}
			cnt.add(sock, endpoint(r.Method, r.URL.Path))
			rp.ServeHTTP(w, r)
		})
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
		log.Info("counting Docker API calls", "socket", path, "upstream", upstream)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	return nil
}

// dockerCounts reads the counting proxy's totals through the bench's socket.
func dockerCounts(ctx context.Context, c *http.Client) (callCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+countsPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading Docker call counts from the counting proxy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("counting proxy answered %s: is the Docker host the bench's counting proxy (bench.sock)?", resp.Status)
	}
	var out callCounts
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decoding Docker call counts: %w", err)
	}
	return out, nil
}

// delta is after minus before for one socket.
func (after callCounts) delta(before callCounts, sock string) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after[sock] {
		if d := v - before[sock][k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// top formats the largest entries of m as "k×n, ...".
func top(m map[string]int64, n int) string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	var parts []string
	for i, e := range all {
		if i == n {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", e.k, e.v))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
