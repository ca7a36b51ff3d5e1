package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

// suiteHotPath counts Redis commands and the orchestrator's Docker calls
// during N proxied requests, beside an idle window of the same length (the
// background: health checks, reconcile, activity flushes).
func (e *env) suiteHotPath(ctx context.Context) ([]table, error) {
	s, err := e.ensureServer(ctx, "pxtiny", "")
	if err != nil {
		return nil, err
	}
	if err := s.serverAccess(ctx, "pxtiny"); err != nil {
		return nil, err
	}
	tg := proxyTarget{user: "pxtiny", s: s}
	httpLoad(ctx, 4, 300*time.Millisecond, 0, tg.proxiedReq("/api/status")) // warm the caches
	s0, err := e.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	lr := httpLoad(ctx, 16, 10*time.Minute, int64(e.o.HotRequests), tg.proxiedReq("/api/status"))
	s1, err := e.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	loadDur := s1.at.Sub(s0.at)
	// At least one health check (every 10 s) and a little more, so that
	// the background rate is seen; it is scaled to the load's duration.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(max(loadDur, 12*time.Second)):
	}
	s2, err := e.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	loadR, loadD := calls(s0, s1)
	idleR, idleD := calls(s1, s2)
	scale := loadDur.Seconds() / s2.at.Sub(s1.at).Seconds()
	n := float64(lr.Requests + lr.Errors)
	perReq := func(load, idle map[string]int64) string {
		v := (float64(total(load)) - float64(total(idle))*scale) / n
		if v < 0 {
			v = 0
		}
		return fmt.Sprintf("%.4f", v)
	}
	t := table{Title: fmt.Sprintf("Hot path: calls per proxied request in steady state (%d requests, 16 connections, %.1f s)", lr.Requests+lr.Errors, loadDur.Seconds()),
		Head: []string{"", "during the requests", "idle window (scaled to the same length)", "per request (net of idle)", "what (during the requests)"}}
	scaled := func(m map[string]int64) string { return fmt.Sprintf("%.1f", float64(total(m))*scale) }
	t.add("Redis commands", fmt.Sprint(total(loadR)), scaled(idleR), perReq(loadR, idleR), top(loadR, 6))
	if e.counts != nil {
		t.add("Docker API calls (orchestrator)", fmt.Sprint(total(loadD)), scaled(idleD), perReq(loadD, idleD), top(loadD, 6))
	} else {
		t.add("Docker API calls (orchestrator)", "not measured", "", "", "the bench's Docker host is not the counting proxy")
	}
	t.Notes = append(t.Notes, fmt.Sprintf("Idle window: %.1f s right after the requests, its counts scaled by %.3f.", s2.at.Sub(s1.at).Seconds(), scale),
		"Redis: INFO commandstats of the stack's Redis before and after (the bench's own INFO calls left out). Docker: the counting proxy in front of the engine's socket, which the bench stack's orchestrator uses as docker.host. The idle column is what the orchestrator does anyway (health checks every 10 s, reconcile every 30 s, activity flushes every 5 s), so the net figure is what requests add.",
		fmt.Sprintf("In the idle window: Redis %s; Docker %s.", top(idleR, 6), top(idleD, 6)))
	if lr.Errors > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("%d requests failed; first: %s", lr.Errors, lr.FirstErr))
	}
	return []table{t}, nil
}

// suiteMemory: orchestrator memory with many users and running servers.
func (e *env) suiteMemory(ctx context.Context) ([]table, error) {
	t := table{Title: "Memory: orchestrator container", Head: []string{"state", "memory (as docker stats shows it)", "anonymous (rss)", "Go heap in use", "goroutines"}}
	row := func(state string) error {
		shown, anon, err := e.orchestratorMemory(ctx)
		if err != nil {
			return err
		}
		heap, gor := e.goMetrics(ctx)
		t.add(state, mib(shown), mib(anon), heap, gor)
		return nil
	}
	if err := row("before (as this suite starts)"); err != nil {
		return nil, err
	}

	t0 := time.Now()
	added, err := e.addUsers(ctx, e.o.MemUsers)
	if err != nil {
		return nil, err
	}
	addDur := time.Since(t0)
	if err := row(fmt.Sprintf("after registering %d users", e.o.MemUsers)); err != nil {
		return nil, err
	}

	running, err := e.runningServers(ctx)
	if err != nil {
		return nil, err
	}
	var wave stormResult
	if need := e.o.MemServers - running; need > 0 {
		var todo []string
		for _, u := range names("st", 1, e.o.MemServers+len(e.started)) {
			if !e.started[u] && len(todo) < need {
				todo = append(todo, u)
			}
		}
		e.logf("memory: starting %d more servers (%d running)", len(todo), running)
		if wave, err = e.orchestratorStorm(ctx, todo, ""); err != nil {
			return nil, err
		}
	}
	if running, err = e.runningServers(ctx); err != nil {
		return nil, err
	}
	// One proxied request per running server of this run, so every session
	// and address is cached, as in a lecture.
	e.touchAll(ctx)
	if err := row(fmt.Sprintf("%d users, %d running servers, each proxied once", e.o.MemUsers, running)); err != nil {
		return nil, err
	}
	t.Notes = append(t.Notes, fmt.Sprintf("Users registered through POST /hub/api/users in batches of 1000: %d new in %s.", added, addDur.Round(time.Millisecond)))
	if wave.N > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("Second wave to reach %d servers: %d starts at once, all ready after %s (p50 %s, p95 %s), %d failed, %d answers 429, %d 5xx.",
			e.o.MemServers, wave.N, secs(wave.AllReady), secs(wave.TTR.P50), secs(wave.TTR.P95), wave.Failed, wave.Counters.TooMany, wave.Counters.ServerErr))
		for _, er := range wave.Errs {
			t.Notes = append(t.Notes, "Error: "+er)
		}
	}
	t.Notes = append(t.Notes, "Memory from the container's cgroup through the Docker API (usage minus inactive page cache, as docker stats computes it); Go heap and goroutines from /hub/metrics when it is exposed.")
	return []table{t}, nil
}

func (e *env) addUsers(ctx context.Context, n int) (int, error) {
	added := 0
	for from := 1; from <= n; from += 1000 {
		batch := names("mu", from, min(from+999, n))
		resp, body, err := e.admin.api(ctx, http.MethodPost, "/hub/api/users", map[string]any{"usernames": batch})
		if err != nil {
			return added, fmt.Errorf("add users: %w", err)
		}
		switch resp.StatusCode {
		case http.StatusCreated:
			added += len(batch)
		case http.StatusConflict:
		default:
			return added, fmt.Errorf("add users: %s %s", resp.Status, trim(body))
		}
	}
	return added, nil
}

// runningServers counts this instance's services with a running task.
func (e *env) runningServers(ctx context.Context) (int, error) {
	tasks, err := e.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("desired-state", "running"))})
	if err != nil {
		return 0, err
	}
	svcs, err := e.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", spawner.LabelInstance+"="+e.cfg.Instance), filters.Arg("label", spawner.LabelManaged+"=true"))})
	if err != nil {
		return 0, err
	}
	ours := map[string]bool{}
	for _, s := range svcs {
		ours[s.ID] = true
	}
	n := 0
	for _, t := range tasks {
		if ours[t.ServiceID] && t.Status.State == swarm.TaskStateRunning {
			n++
		}
	}
	return n, nil
}

func (e *env) touchAll(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for u := range e.started {
		s := e.users[u]
		if s == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(s *session, u string) {
			defer wg.Done()
			defer func() { <-sem }()
			_, _ = s.proxiedStatus(ctx, u)
		}(s, u)
	}
	wg.Wait()
}

// goMetrics reads the Go heap and goroutines from /hub/metrics, if exposed.
func (e *env) goMetrics(ctx context.Context) (heap, goroutines string) {
	resp, body, err := e.admin.api(ctx, http.MethodGet, "/hub/metrics", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "not exposed", "not exposed"
	}
	heap, goroutines = "n/a", "n/a"
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		var v float64
		fmt.Sscan(f[1], &v)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			heap = mib(uint64(v))
		case "go_goroutines":
			goroutines = fmt.Sprintf("%.0f", v)
		}
	}
	return heap, goroutines
}

// suiteCull times one cull cycle over the running servers (issue 4) and
// counts its Redis and Docker calls.
func (e *env) suiteCull(ctx context.Context) ([]table, error) {
	running, err := e.runningServers(ctx)
	if err != nil {
		return nil, err
	}
	t := table{Title: fmt.Sprintf("Cull cycle over %d running servers (issue 4)", running),
		Head: []string{"", "value"}}
	s0, err := e.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	resp, body, err := e.admin.api(ctx, http.MethodPost, "/hub/api/cull", nil)
	d := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("POST /hub/api/cull: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusServiceUnavailable {
		t.add("POST /hub/api/cull", "not available in this orchestrator ("+resp.Status+"): not measured")
		return []table{t}, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /hub/api/cull: %s %s", resp.Status, trim(body))
	}
	s1, err := e.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	r, dk := calls(s0, s1)
	t.add("duration of POST /hub/api/cull (synchronous run)", ms(d))
	t.add("Redis commands", fmt.Sprintf("%d (%s)", total(r), top(r, 6)))
	if e.counts != nil {
		t.add("Docker API calls", fmt.Sprintf("%d (%s)", total(dk), top(dk, 6)))
	}
	rep := trim(body)
	t.Notes = append(t.Notes, "Report: `"+strings.ReplaceAll(rep, "|", "\\|")+"`",
		"Nothing is idle long enough to be culled (timeout from the configuration), so this is the cost of checking every server: its /api/status through the overlay and the activity records. Counts include the background work of the orchestrator during the run.")
	return []table{t}, nil
}
