package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClusterNodeLoss is issue 15 item 4: a worker that hosts servers is
// killed, again and again, and every student on it must be served again
// (their file, through the proxy, exactly one service each). Each round logs
// per second the node's state, the affected students' tasks and every
// proxied request with its answer, then the orchestrator's log lines about
// those students, so that the slow part of a recovery can be read off; the
// figures (kill → node down, kill → served again, served again − node down)
// are FIGURE lines. Servers are kept off the managers, so that a killed
// worker's servers move to the other worker.
func TestClusterNodeLoss(t *testing.T) {
	const rounds = 5
	c := upCluster(t)
	for _, m := range c.managers {
		c.mustSwarm(t, "node", "update", "--label-add", "swarmhub.servers=no", m)
	}
	t.Cleanup(func() {
		for _, m := range c.managers {
			_, _ = c.swarm("node", "update", "--label-rm", "swarmhub.servers", m)
		}
	})
	run := randHex(2)
	const file = "nodeloss.txt"
	var students []*student
	for i := range 6 {
		students = append(students, c.student(t, fmt.Sprintf("n%s%d", run, i), i))
	}
	errs := make(chan error, len(students))
	for _, s := range students {
		go func() { errs <- s.ensureRunning(ctxT(t, 4*time.Minute)) }()
	}
	for range students {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range students {
		code, body := s.api(http.MethodPut, "/user/"+s.user+"/api/contents/"+file,
			map[string]string{"type": "file", "format": "text", "content": "from " + s.user})
		if code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("write file of %s: %d %s", s.user, code, body)
		}
	}

	var all []nodeLossRound
	for r := range rounds {
		place := c.spreadOverWorkers(t, students)
		victim := c.workers[r%len(c.workers)]
		if len(place[victim]) == 0 {
			victim = c.workers[(r+1)%len(c.workers)]
		}
		res := c.loseNode(t, r, victim, place[victim], file)
		if t.Failed() {
			return
		}
		all = append(all, res)
		// Every student, moved or not, is served with their file by exactly
		// one service whose task runs on a live node.
		for _, s := range students {
			if err := s.readFile(ctxT(t, time.Minute), file, "from "+s.user); err != nil {
				t.Fatalf("round %d: %v", r, err)
			}
			services, nodes := c.serverNodes(t, s.user)
			if len(services) != 1 || len(nodes) != 1 || nodes[0] == victim {
				t.Fatalf("round %d: %s has services %v running on %v after losing %s", r, s.user, services, nodes, victim)
			}
		}
		restartNode(t, victim)
		c.waitNodeState(t, victim, "ready", 3*time.Minute)
	}

	var down, worst, over []time.Duration
	for _, r := range all {
		down = append(down, r.down)
		worst = append(worst, r.max())
		over = append(over, r.max()-r.down)
		t.Logf("round %d: %d students on %s, node down %.1f s, served again median %.1f s max %.1f s, max − node down %.1f s",
			r.n, len(r.back), r.victim, r.down.Seconds(), median(r.back).Seconds(), r.max().Seconds(), (r.max() - r.down).Seconds())
	}
	t.Logf("FIGURE node_loss_rounds=%d", len(all))
	t.Logf("FIGURE node_loss_kill_to_node_down_median_seconds=%.1f", median(down).Seconds())
	t.Logf("FIGURE node_loss_kill_to_served_median_seconds=%.1f", median(worst).Seconds())
	t.Logf("FIGURE node_loss_kill_to_served_max_seconds=%.1f", slices.Max(worst).Seconds())
	t.Logf("FIGURE node_loss_served_minus_node_down_median_seconds=%.1f", median(over).Seconds())
	t.Logf("FIGURE node_loss_served_minus_node_down_max_seconds=%.1f", slices.Max(over).Seconds())
}

// nodeLossRound is what one killed worker cost.
type nodeLossRound struct {
	n      int
	victim string
	down   time.Duration   // kill → swarm reports the node down
	back   []time.Duration // kill → each affected student read their file again
}

func (r nodeLossRound) max() time.Duration { return slices.Max(r.back) }

// loseNode kills victim (its Docker-in-Docker container), follows the
// affected students until each reads file again and returns the timings.
func (c *cluster) loseNode(t *testing.T, round int, victim string, affected []*student, file string) nodeLossRound {
	t.Helper()
	res := nodeLossRound{n: round, victim: victim}
	var services []string
	for _, s := range affected {
		svcs, _ := c.serverNodes(t, s.user)
		services = append(services, svcs...)
	}
	t.Logf("round %d: killing %s, which runs the servers of %d students", round, victim, len(affected))
	sh(t, nil, "docker", "kill", victim)
	killedAt := time.Now()
	since := func() string { return fmt.Sprintf("+%5.1fs", time.Since(killedAt).Seconds()) }

	// Once a second: the node's state and the affected tasks (desired
	// state running: the old task until swarm gives up on it, then its
	// replacement). Two Docker calls a second, on node1.
	stop := make(chan struct{})
	var mu sync.Mutex
	var downAt time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			node, _ := c.swarm("node", "inspect", "-f", "{{.Status.State}}", victim)
			node = strings.TrimSpace(node)
			mu.Lock()
			if node == "down" && downAt == 0 {
				downAt = time.Since(killedAt)
			}
			mu.Unlock()
			tasks, _ := c.swarm(append([]string{"service", "ps", "--filter", "desired-state=running",
				"--format", "{{.Name}} {{.Node}} {{.CurrentState}}"}, services...)...)
			t.Logf("round %d %s node %s=%s | tasks: %s", round, since(), victim, node,
				strings.Join(strings.Fields(strings.ReplaceAll(tasks, "\n", " ;")), " "))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	// Each affected student reloads like waitFile does (every 0.5 s after
	// an answer); every request is logged with its answer and duration.
	for _, s := range affected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ctxT(t, 4*time.Minute)
			for ctx.Err() == nil {
				began := since()
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				code, body, err := s.call(rctx, http.MethodGet, "/user/"+s.user+"/api/contents/"+file, nil)
				cancel()
				var f struct{ Content string }
				_ = json.Unmarshal(body, &f)
				ok := err == nil && code == http.StatusOK && f.Content == "from "+s.user
				answer := fmt.Sprintf("%d", code)
				switch {
				case err != nil:
					answer = err.Error()
				case !ok:
					answer += " " + strings.TrimSpace(string(body))
				}
				t.Logf("round %d %s %s GET %.1fs → %.120s", round, began, s.user, time.Since(t0).Seconds(), answer)
				if ok {
					mu.Lock()
					res.back = append(res.back, time.Since(killedAt))
					mu.Unlock()
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
			t.Errorf("round %d: %s not served again within 4 minutes of killing %s", round, s.user, victim)
		}()
	}
	// The probes finish first; then the monitor stops, once the node was seen down.
	for {
		mu.Lock()
		done := len(res.back) == len(affected) && downAt != 0
		mu.Unlock()
		if done || t.Failed() || time.Since(killedAt) > 5*time.Minute {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	res.down = downAt
	if t.Failed() {
		return res
	}
	if res.down == 0 {
		t.Fatalf("round %d: swarm never reported %s down", round, victim)
	}
	// What the orchestrator replicas said about these students meanwhile
	// (route changes, failed dials, reconcile).
	logs, _ := c.swarm("service", "logs", "--raw", "--timestamps", "--since", killedAt.UTC().Format(time.RFC3339), c.stack+"_orchestrator")
	for _, line := range strings.Split(logs, "\n") {
		if slices.ContainsFunc(affected, func(s *student) bool { return strings.Contains(line, s.user) }) {
			t.Logf("round %d orchestrator: %.400s", round, line)
		}
	}
	t.Logf("FIGURE node_loss_round%d_kill_to_node_down_seconds=%.1f", round, res.down.Seconds())
	t.Logf("FIGURE node_loss_round%d_kill_to_served_median_seconds=%.1f", round, median(res.back).Seconds())
	t.Logf("FIGURE node_loss_round%d_kill_to_served_max_seconds=%.1f", round, res.max().Seconds())
	t.Logf("FIGURE node_loss_round%d_served_minus_node_down_seconds=%.1f", round, (res.max() - res.down).Seconds())
	return res
}

// restartNode starts a killed node container again. Its dockerd (PID 1)
// left its PID, 1, in its pid file, and would refuse to start beside "a
// running docker"; the same holds for the containerd it supervises. The
// files are emptied first (docker cp works on a stopped container).
func restartNode(t *testing.T, node string) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty.pid")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pidFile := range []string{"/var/run/docker.pid", "/var/run/docker/containerd/containerd.pid"} {
		if out, err := shQuiet(nil, "docker", "cp", empty, node+":"+pidFile); err != nil {
			t.Logf("empty %s in %s: %v %s", pidFile, node, err, out)
		}
	}
	sh(t, nil, "docker", "start", node)
}

// waitNodeState waits until swarm reports node in state (ready, down).
func (c *cluster) waitNodeState(t *testing.T, node, state string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, _ := c.swarm("node", "inspect", "-f", "{{.Status.State}}", node)
		if strings.TrimSpace(out) == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s is %q, not %s, after %s", node, strings.TrimSpace(out), state, timeout)
		}
		time.Sleep(time.Second)
	}
}

// spreadOverWorkers moves servers (stop, then start: swarm places a new
// service on the node with the fewest tasks) until the two workers hold
// about as many each, and returns who runs where.
func (c *cluster) spreadOverWorkers(t *testing.T, students []*student) map[string][]*student {
	t.Helper()
	for try := 0; ; try++ {
		place := map[string][]*student{}
		for _, s := range students {
			_, nodes := c.serverNodes(t, s.user)
			if len(nodes) != 1 {
				t.Fatalf("%s has %d running tasks, want 1", s.user, len(nodes))
			}
			place[nodes[0]] = append(place[nodes[0]], s)
		}
		a, b := c.workers[0], c.workers[1]
		if len(place[a]) < len(place[b]) {
			a, b = b, a
		}
		move := (len(place[a]) - len(place[b])) / 2
		if move == 0 {
			var summary []string
			for n, ss := range place {
				summary = append(summary, fmt.Sprintf("%s:%d", n, len(ss)))
			}
			slices.Sort(summary)
			t.Logf("placement: %s", strings.Join(summary, " "))
			return place
		}
		if try == 5 {
			t.Fatalf("servers stay on %s (%d) rather than %s (%d)", a, len(place[a]), b, len(place[b]))
		}
		moving := place[a][:move]
		for _, s := range moving {
			s.stopServer(s.user)
		}
		errs := make(chan error, len(moving))
		for _, s := range moving {
			go func() { errs <- s.ensureRunning(ctxT(t, 4*time.Minute)) }()
		}
		for range moving {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}
