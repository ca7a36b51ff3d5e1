package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// cluster is the local multi-node swarm of scripts/cluster-up: three
// managers and two workers, each a Docker-in-Docker container on this
// machine, with swarmhub deployed inside.
type cluster struct {
	dir      string
	stack    string
	instance string
	storage  string
	password string
	managers []string
	workers  []string
	replicas []string          // host:port of each orchestrator replica
	ips      map[string]string // node name -> address on the cluster network
}

func clusterDir() string {
	if d := os.Getenv("SWARMHUB_CLUSTER_DIR"); d != "" {
		return d
	}
	return "/srv/swarmhub-cluster"
}

// upCluster runs scripts/cluster-up, or with SWARMHUB_CLUSTER_REUSE=1 uses
// the running cluster; cleanup removes it (a reused one is repaired instead:
// killed nodes started, drained ones made active).
func upCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Getenv("SWARMHUB_E2E_CLUSTER") == "" {
		t.Skip("the multi-node cluster test builds five Docker-in-Docker nodes: set SWARMHUB_E2E_CLUSTER=1 (SWARMHUB_CLUSTER_REUSE=1 to use a running `go tool task cluster-up`)")
	}
	envFile := filepath.Join(clusterDir(), "cluster.env")
	reuse := os.Getenv("SWARMHUB_CLUSTER_REUSE") == "1"
	if _, err := os.Stat(envFile); err != nil || !reuse {
		start := time.Now()
		cmd := exec.Command("bash", "scripts/cluster-up")
		cmd.Dir = repoRoot()
		out, err := cmd.CombinedOutput()
		t.Cleanup(func() {
			if out, err := exec.Command("bash", filepath.Join(repoRoot(), "scripts/cluster-down")).CombinedOutput(); err != nil {
				t.Errorf("cluster-down: %v\n%s", err, out)
			}
		})
		if err != nil {
			t.Fatalf("cluster-up: %v\n%s", err, out)
		}
		t.Logf("FIGURE cluster_up_seconds=%.0f", time.Since(start).Seconds())
		reuse = false
	}
	env := readClusterEnv(t)
	c := &cluster{dir: clusterDir(), stack: env["SWARMHUB_CLUSTER_STACK"], instance: env["SWARMHUB_CLUSTER_INSTANCE"],
		storage: env["SWARMHUB_CLUSTER_STORAGE"], password: env["SWARMHUB_CLUSTER_PASSWORD"],
		managers: strings.Fields(env["SWARMHUB_CLUSTER_MANAGERS"]), workers: strings.Fields(env["SWARMHUB_CLUSTER_WORKERS"]),
		replicas: strings.Fields(env["SWARMHUB_CLUSTER_REPLICAS"]), ips: map[string]string{}}
	for _, n := range append(slices.Clone(c.managers), c.workers...) {
		c.ips[n] = env["SWARMHUB_CLUSTER_IP_"+strings.ReplaceAll(n, "-", "_")]
	}
	if len(c.replicas) < 2 || len(c.workers) < 2 {
		t.Fatalf("the cluster needs two replicas and two workers; cluster.env says %v and %v", c.replicas, c.workers)
	}
	if reuse {
		t.Cleanup(func() { c.repair(t) })
	}
	return c
}

// readClusterEnv reads what cluster-up wrote about the cluster.
func readClusterEnv(t testing.TB) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(clusterDir(), "cluster.env"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

// repair undoes what the test did to a reused cluster's nodes.
func (c *cluster) repair(t *testing.T) {
	for _, n := range c.workers {
		_, _ = shQuiet(nil, "docker", "start", n)
	}
	time.Sleep(5 * time.Second)
	for _, n := range c.workers {
		_, _ = c.swarm("node", "update", "--availability", "active", n)
	}
}

// swarm runs a docker command against the cluster (on node1, a manager the
// test never takes down).
func (c *cluster) swarm(args ...string) (string, error) {
	return shQuiet(nil, "docker", append([]string{"exec", c.managers[0], "docker"}, args...)...)
}

func (c *cluster) mustSwarm(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.swarm(args...)
	if err != nil {
		t.Fatalf("docker %s on %s: %v\n%s", strings.Join(args, " "), c.managers[0], err, out)
	}
	return out
}

// serverNodes lists the nodes running a task of user's service (desired
// state running, observed running).
func (c *cluster) serverNodes(t testing.TB, user string) (services []string, nodes []string) {
	t.Helper()
	services = strings.Fields(c.mustSwarm(t, "service", "ls", "-q", "--filter", "label=swarmhub.user="+user,
		"--filter", "label=swarmhub.instance="+c.instance))
	for _, s := range services {
		out, _ := c.swarm("service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}", s)
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[1] == "Running" {
				nodes = append(nodes, f[0])
			}
		}
	}
	return services, nodes
}

// student is a browser behind a load balancer: it talks to one replica and
// moves to the next after a connection error, carrying its cookies along.
type student struct {
	*browser
	cl  *cluster
	cur int
	mu  sync.Mutex
}

func (c *cluster) student(t *testing.T, name string, replica int) *student {
	t.Helper()
	s := &student{cl: c, cur: replica % len(c.replicas)}
	s.browser = newBrowser(t, "http://"+c.replicas[s.cur])
	var code int
	for range 5 {
		if code = s.login(name, c.password); code == http.StatusFound {
			return s
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s login through %s: %d", name, s.base, code)
	return nil
}

// failover moves to the next replica, as a load balancer does when a
// backend stops accepting connections.
func (s *student) failover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldBase := s.base
	s.cur = (s.cur + 1) % len(s.cl.replicas)
	s.base = "http://" + s.cl.replicas[s.cur]
	hc := s.browser.c
	// The hub cookie lives on /hub/, the access cookie on /user/NAME/.
	for _, path := range []string{"/hub/", "/user/" + s.user + "/"} {
		old, _ := url.Parse(oldBase + path)
		nu, _ := url.Parse(s.base + path)
		cs := hc.Jar.Cookies(old)
		for _, c := range cs {
			c.Path = path
		}
		hc.Jar.SetCookies(nu, cs)
	}
	hc.CloseIdleConnections()
}

// call is apiErr with failover: connection errors move to the next replica
// and retry, until ctx ends.
func (s *student) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	for {
		code, out, err := s.apiErr(method, path, body)
		if err == nil {
			return code, out, nil
		}
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("%s %s: %w (last: %v)", method, path, ctx.Err(), err)
		}
		s.failover()
		time.Sleep(200 * time.Millisecond)
	}
}

// ensureRunning starts the student's server and returns once it is ready:
// it re-sends the start request after a connection error or when progress
// stalls (a replica that died mid-spawn leaves nobody following it).
func (s *student) ensureRunning(ctx context.Context) error {
	for ctx.Err() == nil {
		code, body, err := s.call(ctx, http.MethodPost, "/hub/api/users/"+s.user+"/server", nil)
		switch {
		case err != nil:
			return err
		case code == http.StatusCreated:
			return nil
		case code == http.StatusTooManyRequests:
			time.Sleep(2 * time.Second)
			continue
		case code != http.StatusAccepted:
			return fmt.Errorf("start %s: %d %s", s.user, code, body)
		}
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		p, err := s.followOnce(fctx)
		cancel()
		switch {
		case err == nil && p.Ready:
			return nil
		case err == nil && p.Failed:
			return fmt.Errorf("spawn of %s failed: %s", s.user, p.Message)
		case err != nil && fctx.Err() == nil:
			s.failover()
		}
	}
	return fmt.Errorf("server of %s not running: %w", s.user, ctx.Err())
}

// followOnce reads one progress stream until ready or failed.
func (s *student) followOnce(ctx context.Context) (progress, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/hub/api/users/"+s.user+"/server/progress", nil)
	hc := *s.browser.c
	hc.Timeout = 0 // the stream lasts; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return progress{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var p progress
		if err := json.Unmarshal([]byte(line[6:]), &p); err != nil {
			return progress{}, fmt.Errorf("bad progress event %q: %w", line, err)
		}
		if p.Ready || p.Failed {
			return p, nil
		}
	}
	if err := sc.Err(); err != nil {
		return progress{}, err
	}
	return progress{}, fmt.Errorf("progress stream of %s ended", s.user)
}

// readFile reads a workspace file through the proxy; ok when it has want.
func (s *student) readFile(ctx context.Context, name, want string) error {
	code, body, err := s.call(ctx, http.MethodGet, "/user/"+s.user+"/api/contents/"+name, nil)
	if err != nil {
		return err
	}
	var f struct{ Content string }
	_ = json.Unmarshal(body, &f)
	if code != http.StatusOK || f.Content != want {
		return fmt.Errorf("%s/%s: %d %.200s", s.user, name, code, body)
	}
	return nil
}

// waitFile polls readFile like a student reloading the page; it returns
// when the file answers (the time it did) or the error at the deadline.
func (s *student) waitFile(ctx context.Context, name, want string) (time.Time, error) {
	var last error
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		last = s.readFile(rctx, name, want)
		cancel()
		if last == nil {
			return time.Now(), nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// TestCluster is issue 8 on a real multi-node swarm: servers spread over
// the workers and come back, with their files and the same URL, after one
// worker is drained and the other killed; an orchestrator replica dies in a
// spawn storm and every student still gets exactly one server; a rolling
// update of the orchestrator drops no server; the culler, with both
// replicas running, stops each idle server once.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := upCluster(t)
	run := randHex(2)
	name := func(group string, i int) string { return fmt.Sprintf("c%s%s%d", run, group, i) }

	var six []*student
	for i := range 6 {
		six = append(six, c.student(t, name("a", i), i))
	}

	t.Run("six servers spread over both workers", func(t *testing.T) {
		errs := make(chan error, len(six))
		for _, s := range six {
			go func() { errs <- s.ensureRunning(ctxT(t, 4*time.Minute)) }()
		}
		for range six {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		perNode := map[string][]string{}
		for _, s := range six {
			_, nodes := c.serverNodes(t, s.user)
			if len(nodes) != 1 {
				t.Fatalf("%s has %d running tasks, want 1", s.user, len(nodes))
			}
			perNode[nodes[0]] = append(perNode[nodes[0]], s.user)
		}
		t.Logf("placement: %v", perNode)
		for _, w := range c.workers {
			if len(perNode[w]) == 0 {
				t.Fatalf("no server on worker %s: %v", w, perNode)
			}
		}
		for _, s := range six {
			code, body := s.api(http.MethodPut, "/user/"+s.user+"/api/contents/cluster.txt",
				map[string]string{"type": "file", "format": "text", "content": "from " + s.user})
			if code != http.StatusCreated && code != http.StatusOK {
				t.Fatalf("write file of %s: %d %s", s.user, code, body)
			}
		}
	})
	if t.Failed() {
		return
	}

	drained, killed := c.workers[0], c.workers[1]
	on := func(node string) []*student {
		var out []*student
		for _, s := range six {
			if _, nodes := c.serverNodes(t, s.user); slices.Contains(nodes, node) {
				out = append(out, s)
			}
		}
		return out
	}

	t.Run("logout on one replica closes the session's websockets on the other", func(t *testing.T) {
		logoutClosesWebsocketsOnEveryReplica(t, c)
	})

	t.Run("drain one worker, kill the other: every server comes back", func(t *testing.T) {
		moved := on(drained)
		c.mustSwarm(t, "node", "update", "--availability", "drain", drained)
		for _, s := range moved {
			if _, err := s.waitFile(ctxT(t, 3*time.Minute), "cluster.txt", "from "+s.user); err != nil {
				t.Fatalf("%s after draining %s: %v", s.user, drained, err)
			}
		}
		affected := on(killed)
		if len(affected) == 0 {
			t.Fatalf("no server on %s to lose", killed)
		}
		sh(t, nil, "docker", "kill", killed)
		killedAt := time.Now()
		// Where the time goes: swarm first has to declare the node down.
		downDone := make(chan struct{})
		defer func() { <-downDone }()
		go func() {
			defer close(downDone)
			for time.Since(killedAt) < 3*time.Minute {
				if out, _ := c.swarm("node", "inspect", "-f", "{{.Status.State}}", killed); strings.TrimSpace(out) == "down" {
					t.Logf("FIGURE worker_kill_to_node_down_seconds=%.1f", time.Since(killedAt).Seconds())
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
		}()
		var mu sync.Mutex
		var back []time.Duration
		var wg sync.WaitGroup
		for _, s := range affected {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at, err := s.waitFile(ctxT(t, 4*time.Minute), "cluster.txt", "from "+s.user)
				if err != nil {
					t.Errorf("%s after killing %s: %v", s.user, killed, err)
					return
				}
				mu.Lock()
				back = append(back, at.Sub(killedAt))
				mu.Unlock()
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		slices.Sort(back)
		t.Logf("FIGURE worker_kill_to_answer_median_seconds=%.1f", median(back).Seconds())
		t.Logf("FIGURE worker_kill_to_answer_max_seconds=%.1f", back[len(back)-1].Seconds())
		t.Logf("FIGURE worker_kill_affected_students=%d", len(back))

		for _, s := range six {
			if err := s.readFile(ctxT(t, time.Minute), "cluster.txt", "from "+s.user); err != nil {
				t.Fatal(err)
			}
			services, nodes := c.serverNodes(t, s.user)
			if len(services) != 1 || len(nodes) != 1 || nodes[0] == drained || nodes[0] == killed {
				t.Fatalf("%s: services %v on nodes %v after losing both workers", s.user, services, nodes)
			}
			var out string
			var err error
			for range 3 { // a kernel may need a moment on a freshly moved server
				if out, err = s.runCode(s.user, "1+1"); err == nil {
					break
				}
				time.Sleep(2 * time.Second)
			}
			if err != nil || strings.TrimSpace(out) != "2" {
				t.Fatalf("%s's kernel after the move: %q %v", s.user, out, err)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("a replica dies in a spawn storm: every student gets exactly one server", func(t *testing.T) {
		victim := c.replicas[1]
		survivor := c.replicas[0]
		victimNode := ""
		for n, ip := range c.ips {
			if strings.HasPrefix(victim, ip+":") {
				victimNode = n
			}
		}
		// A student with a running server, served by the victim, measures
		// how long their next request takes to succeed.
		probe := six[1]
		for probe.base != "http://"+victim {
			probe.failover()
		}
		var storm []*student
		for i := range 10 {
			storm = append(storm, c.student(t, name("b", i), i))
		}
		errs := make(chan error, len(storm))
		for _, s := range storm {
			go func() { errs <- s.ensureRunning(ctxT(t, 5*time.Minute)) }()
		}
		// Kill once the storm has created a few services.
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			out, _ := c.swarm("service", "ls", "-q", "--filter", "label=swarmhub.instance="+c.instance)
			if len(strings.Fields(out)) >= len(six)+3 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		ids, err := shQuiet(nil, "docker", "exec", victimNode, "docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+c.stack+"_orchestrator")
		if err != nil || len(strings.Fields(ids)) != 1 {
			t.Fatalf("orchestrator container on %s: %q %v", victimNode, ids, err)
		}
		sh(t, nil, "docker", "exec", victimNode, "docker", "kill", strings.TrimSpace(ids))
		killedAt := time.Now()
		if _, err := probe.waitFile(ctxT(t, time.Minute), "cluster.txt", "from "+probe.user); err != nil {
			t.Fatalf("%s after the replica died: %v", probe.user, err)
		}
		t.Logf("FIGURE replica_kill_to_next_success_seconds=%.2f", time.Since(killedAt).Seconds())

		for range storm {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			return
		}
		for _, s := range storm {
			services, nodes := c.serverNodes(t, s.user)
			if len(services) != 1 || len(nodes) != 1 {
				t.Fatalf("%s has services %v with running tasks on %v, want exactly one", s.user, services, nodes)
			}
			// Through the surviving replica, whichever one the student used.
			for s.base != "http://"+survivor {
				s.failover()
			}
			code, body, err := s.call(ctxT(t, time.Minute), http.MethodGet, "/user/"+s.user+"/api/status", nil)
			if err != nil || code != http.StatusOK {
				t.Fatalf("%s's server through %s: %d %s %v", s.user, survivor, code, body, err)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("rolling update drops no server; the culler stops each idle one once", func(t *testing.T) {
		before := c.taskIDs(t)
		// Both replicas back (the killed one restarted) before the update.
		cmd := exec.Command("bash", "scripts/cluster-up", "--redeploy")
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "SWARMHUB_CLUSTER_CULL_TIMEOUT=30s", "SWARMHUB_CLUSTER_CULL_SCHEDULE=@every 5s")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("redeploy with culling: %v\n%s", err, out)
		}
		// The update rolled both replicas (new config); no server task was
		// replaced. Culling may have started already: compare only what is left.
		after := c.taskIDs(t)
		for svc, task := range after {
			if before[svc] != "" && before[svc] != task {
				t.Fatalf("service %s got a new task during the orchestrator update (%s -> %s)", svc, before[svc], task)
			}
		}
		// A restarted replica may have moved to another manager.
		c.replicas = strings.Fields(readClusterEnv(t)["SWARMHUB_CLUSTER_REPLICAS"])
		if len(c.replicas) != 2 {
			t.Fatalf("want two replicas after the update, have %v", c.replicas)
		}
		admin := c.student(t, "admin", 0)
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			out, _ := c.swarm("service", "ls", "-q", "--filter", "label=swarmhub.instance="+c.instance)
			if len(strings.Fields(out)) == 0 {
				break
			}
			time.Sleep(2 * time.Second)
		}
		if out, _ := c.swarm("service", "ls", "--filter", "label=swarmhub.instance="+c.instance); len(strings.Split(strings.TrimSpace(out), "\n")) > 1 {
			t.Fatalf("idle servers left after 3 minutes of culling:\n%s", out)
		}
		time.Sleep(12 * time.Second) // more cull periods for a second replica to misbehave
		code, body, err := admin.call(ctxT(t, time.Minute), http.MethodGet, "/hub/api/events?limit=500", nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("events: %d %v", code, err)
		}
		var evs struct{ Events []event }
		_ = json.Unmarshal(body, &evs)
		users := map[string]bool{}
		for _, e := range evs.Events {
			if e.Kind == "cull" && strings.HasPrefix(e.User, "c"+run) {
				users[e.User] = true
			}
		}
		var wrong []string
		for u := range users {
			if n := countEvents(evs.Events, "cull", u); n != 1 {
				wrong = append(wrong, fmt.Sprintf("%s: %d", u, n))
			}
		}
		sort.Strings(wrong)
		if len(users) != 16 || len(wrong) > 0 {
			t.Fatalf("want one cull event for each of 16 servers; %d users culled, wrong counts: %v", len(users), wrong)
		}
	})
	t.Logf("FIGURE cluster_test_seconds=%.0f", time.Since(start).Seconds())
}

// taskIDs maps each user service to its running task.
func (c *cluster) taskIDs(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, svc := range strings.Fields(c.mustSwarm(t, "service", "ls", "-q", "--filter", "label=swarmhub.instance="+c.instance)) {
		ps, _ := c.swarm("service", "ps", "-q", "--filter", "desired-state=running", svc)
		out[svc] = strings.TrimSpace(ps)
	}
	return out
}
