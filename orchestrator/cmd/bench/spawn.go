package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

const (
	probeInterval = 250 * time.Millisecond // the spawner's default task poll
	// floorInterval is the bare floor's poll: task state and /api/status
	// every 10 ms, so that the floor is not quantised by its own poll.
	floorInterval = 10 * time.Millisecond
)

// bareSpawn is the baseline: the spec the spawner would build, created
// straight through the Docker API, then the task's address polled from the
// API and its /api/status probed every poll once the task runs, as
// ENVIRONMENT.md describes.
func (e *env) bareSpawn(ctx context.Context, user, image string, poll time.Duration) (time.Duration, error) {
	t0 := time.Now()
	if err := e.ensureWorkspace(user); err != nil {
		return 0, err
	}
	tok := make([]byte, 32)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	opts := e.specOptions(bareInstance)
	spec, err := spawner.BuildSpec(spawner.Request{
		User: user, ServiceName: "swarmhub-bench-bare-" + user, VolumeName: "swarmhub-bench-bare-user-" + user,
		Token: token, Image: image,
	}, opts)
	if err != nil {
		return 0, err
	}
	// A jupyterhub-singleuser server would ask the hub about its token, which
	// the hub does not know here: probe it without, as the spawner does.
	probeToken := token
	if opts.Contract(image) == spawner.ContractSingleUser {
		probeToken = ""
	}
	resp, err := e.docker.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{})
	if err != nil {
		return 0, fmt.Errorf("create baseline service for %s: %w", user, err)
	}
	prober := &spawner.HTTPProber{}
	wctx, cancel := context.WithTimeout(ctx, e.cfg.Notebook.StartTimeout)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	lastErr := "no task yet"
	for {
		tasks, err := e.docker.TaskList(wctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", resp.ID))})
		if err == nil && len(tasks) > 0 {
			t := tasks[0]
			for _, c := range tasks[1:] {
				if c.CreatedAt.After(t.CreatedAt) {
					t = c
				}
			}
			switch t.Status.State {
			case swarm.TaskStateFailed, swarm.TaskStateRejected:
				return 0, fmt.Errorf("baseline task of %s %s: %s", user, t.Status.State, t.Status.Err)
			case swarm.TaskStateRunning:
				if ip := attachmentIP(t, e.cfg.Notebook.Network); ip != "" {
					perr := prober.Probe(wctx, fmt.Sprintf("%s:%d", ip, e.port()), user, probeToken)
					if perr == nil {
						return time.Since(t0), nil
					}
					lastErr = perr.Error()
				}
			default:
				lastErr = "task " + string(t.Status.State)
			}
		} else if err != nil {
			lastErr = err.Error()
		}
		select {
		case <-wctx.Done():
			return 0, fmt.Errorf("baseline server of %s not ready within %s: %s", user, e.cfg.Notebook.StartTimeout, lastErr)
		case <-tick.C:
		}
	}
}

// stormResult is one storm: n users starting at the same moment.
type stormResult struct {
	N, Ready, Failed int
	NotProxied       int // ready, but the first proxied request failed
	Counters         startCounters
	AllReady         time.Duration
	TTR              dist
	Errs             []string
	Redis, Docker    map[string]int64 // calls during the storm (nil: not counted)
}

// orchestratorStorm has every user press start at the same moment (after
// logging in, which is not timed), retrying after each 429, then follow
// their progress stream until ready. image "" is the default image;
// another is chosen by the admin on each user's behalf.
func (e *env) orchestratorStorm(ctx context.Context, users []string, image string) (stormResult, error) {
	sess, err := e.loginMany(ctx, users)
	if err != nil {
		return stormResult{}, err
	}
	res := stormResult{N: len(users)}
	var mu sync.Mutex
	var ttr []time.Duration
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(1)
		go func(s *session, u string) {
			defer wg.Done()
			<-gate
			t0 := time.Now()
			var c startCounters
			starter := s
			if image != "" {
				starter = e.admin
			}
			err := starter.requestStart(ctx, u, image, &c)
			if err == nil {
				wctx, cancel := context.WithTimeout(ctx, e.cfg.Notebook.StartTimeout+time.Minute)
				err = s.waitReady(wctx, u)
				cancel()
			}
			d := time.Since(t0)
			code := 0
			if err == nil {
				code, _ = s.proxiedStatus(ctx, u)
			}
			mu.Lock()
			defer mu.Unlock()
			res.Counters.TooMany += c.TooMany
			res.Counters.ServerErr += c.ServerErr
			res.Counters.Timeouts += c.Timeouts
			if err != nil {
				res.Failed++
				if len(res.Errs) < 3 {
					res.Errs = append(res.Errs, err.Error())
				}
				return
			}
			e.started[u] = true
			res.Ready++
			ttr = append(ttr, d)
			if code != 200 {
				res.NotProxied++
			}
		}(sess[i], u)
	}
	before, serr := e.snapshot(ctx)
	start := time.Now()
	close(gate)
	wg.Wait()
	res.AllReady = time.Since(start)
	res.TTR = summarize(ttr)
	if after, err := e.snapshot(ctx); err == nil && serr == nil {
		res.Redis, res.Docker = calls(before, after)
	}
	return res, nil
}

// bareStorm is the baseline of a storm: the same number of bare spawns,
// at most conc at once.
func (e *env) bareStorm(ctx context.Context, users []string, image string, conc int) stormResult {
	res := stormResult{N: len(users)}
	var mu sync.Mutex
	var ttr []time.Duration
	gate := make(chan struct{})
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var start time.Time
	for _, u := range users {
		wg.Add(1)
		go func(u string) {
			defer wg.Done()
			<-gate
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := e.bareSpawn(ctx, u, image, probeInterval)
			d := time.Since(start) // from the common start, like the storm's users
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				if len(res.Errs) < 3 {
					res.Errs = append(res.Errs, err.Error())
				}
				return
			}
			res.Ready++
			ttr = append(ttr, d)
		}(u)
	}
	var before callCounts
	if e.counts != nil {
		before, _ = dockerCounts(ctx, e.counts)
	}
	start = time.Now()
	close(gate)
	wg.Wait()
	res.AllReady = time.Since(start)
	res.TTR = summarize(ttr)
	if e.counts != nil && before != nil {
		if after, err := dockerCounts(ctx, e.counts); err == nil {
			res.Docker = after.delta(before, benchSock)
		}
	}
	return res
}

func stormTable(title string, o, b stormResult, limit int, notes ...string) table {
	t := table{Title: title, Head: []string{"", "all ready", "p50 time to ready", "p95", "max", "ready", "failures", "429s", "5xx", "timeouts"}}
	row := func(name string, r stormResult, withCounters bool) {
		c := []string{name, secs(r.AllReady), secs(r.TTR.P50), secs(r.TTR.P95), secs(r.TTR.Max),
			fmt.Sprintf("%d/%d", r.Ready, r.N), fmt.Sprint(r.Failed)}
		if withCounters {
			c = append(c, fmt.Sprint(r.Counters.TooMany), fmt.Sprint(r.Counters.ServerErr), fmt.Sprint(r.Counters.Timeouts))
		} else {
			c = append(c, "–", "–", "–")
		}
		t.add(c...)
	}
	row("swarmhub (start → progress stream says ready)", o, true)
	row("bare docker service create + task-IP poll", b, false)
	t.add("ratio swarmhub / bare", ratio(o.AllReady.Seconds(), b.AllReady.Seconds()),
		ratio(o.TTR.P50.Seconds(), b.TTR.P50.Seconds()), ratio(o.TTR.P95.Seconds(), b.TTR.P95.Seconds()),
		ratio(o.TTR.Max.Seconds(), b.TTR.Max.Seconds()))
	t.Notes = append(t.Notes, fmt.Sprintf("All %d start requests are released at the same instant; time to ready counts from then, including waits after a 429 (Retry-After is honoured). notebook.concurrent_spawn_limit is %d; the baseline runs all %d at once without a limit. Ready-but-not-proxied: %d.", o.N, limit, b.N, o.NotProxied))
	if o.Docker != nil && o.N > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("Calls per spawn: swarmhub %.1f Docker (%s) and %.1f Redis (%s); baseline %.1f Docker (%s). Counted during the whole storm, background included.",
			float64(total(o.Docker))/float64(o.N), top(o.Docker, 5), float64(total(o.Redis))/float64(o.N), top(o.Redis, 5),
			float64(total(b.Docker))/float64(max(b.N, 1)), top(b.Docker, 5)))
	}
	for _, er := range append(o.Errs, b.Errs...) {
		t.Notes = append(t.Notes, "Error: "+er)
	}
	t.Notes = append(t.Notes, notes...)
	return t
}

// timedStart logs user in (not timed), has the admin start user's server
// with image and follows user's progress stream until ready: the time from
// the start request to ready.
func (e *env) timedStart(ctx context.Context, user, image string) (time.Duration, *session, error) {
	s, err := e.login(ctx, user)
	if err != nil {
		return 0, nil, err
	}
	t0 := time.Now()
	var c startCounters
	if err := e.admin.requestStart(ctx, user, image, &c); err != nil {
		return 0, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, e.cfg.Notebook.StartTimeout+time.Minute)
	defer cancel()
	if err := s.waitReady(wctx, user); err != nil {
		return 0, nil, err
	}
	d := time.Since(t0)
	e.started[user] = true
	return d, s, nil
}

// suiteSpawn is issue 2's figure: the Debian notebook, one start at a
// time, beside two bare baselines: polled every 10 ms (the floor) and at the
// spawner's 250 ms task poll (the baseline of earlier runs).
func (e *env) suiteSpawn(ctx context.Context) ([]table, error) {
	img, err := e.debianImage()
	if err != nil {
		return nil, err
	}
	var orch, floor, bare []time.Duration
	var dockerCalls int64
	for i := 1; i <= e.o.SpawnRuns; i++ {
		u := fmt.Sprintf("sp%03d", i)
		// Interleaved, so that drift in the machine's load hits every side.
		var before callCounts
		if e.counts != nil {
			before, _ = dockerCounts(ctx, e.counts)
		}
		d, _, err := e.timedStart(ctx, u, img)
		if err != nil {
			return nil, err
		}
		if before != nil {
			if after, err := dockerCounts(ctx, e.counts); err == nil {
				dockerCalls += total(after.delta(before, orchestratorSock))
			}
		}
		orch = append(orch, d)
		if err := e.stopServers(ctx, []string{u}); err != nil {
			return nil, err
		}
		for _, side := range []struct {
			poll time.Duration
			out  *[]time.Duration
			name string
		}{{floorInterval, &floor, "spfloor"}, {probeInterval, &bare, "spbare"}} {
			d, err = e.bareSpawn(ctx, side.name+fmt.Sprint(i), img, side.poll)
			if err != nil {
				return nil, err
			}
			*side.out = append(*side.out, d)
			if err := e.removeBare(ctx); err != nil {
				return nil, err
			}
		}
	}
	mo, mf, mb := median(orch), median(floor), median(bare)
	t := table{Title: fmt.Sprintf("Spawn time, Debian notebook (issues 2, 15): median of %d sequential starts", len(orch)),
		Head: []string{"", "median", "min", "max", "runs"}}
	row := func(name string, ds []time.Duration) {
		so := summarize(append([]time.Duration(nil), ds...))
		t.add(name, secs(median(ds)), secs(minOf(ds)), secs(so.Max), joinSecs(ds))
	}
	row("swarmhub: POST …/server → progress ready", orch)
	row("bare floor: service create, task and /api/status polled every 10 ms", floor)
	row("bare, polled every 250 ms (the spawner's task poll)", bare)
	t.add("ratio swarmhub / floor", ratio(mo.Seconds(), mf.Seconds()), "", "", "")
	t.add("ratio swarmhub / bare at 250 ms", ratio(mo.Seconds(), mb.Seconds()), "", "", "")
	t.Notes = append(t.Notes, "Image "+img+"; each start is a new user (workspace directory and volume created on the way); starts alternate between the three sides; each server is removed before the next start.")
	if e.counts != nil && len(orch) > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("Docker calls of the orchestrator per start: %.1f (whole start, background included).", float64(dockerCalls)/float64(len(orch))))
	}
	return []table{t}, nil
}

func minOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

func joinSecs(ds []time.Duration) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.2f", d.Seconds())
	}
	return s
}

// suiteJupyterStorm: 20 users start the Debian notebook at once.
func (e *env) suiteJupyterStorm(ctx context.Context) ([]table, error) {
	img, err := e.debianImage()
	if err != nil {
		return nil, err
	}
	users := names("js", 1, e.o.JupyterN)
	o, err := e.lineStorm(ctx, users, img)
	if err != nil {
		return nil, err
	}
	if err := e.stopServers(ctx, users); err != nil {
		return nil, err
	}
	b := e.bareStorm(ctx, names("jsbare", 1, e.o.JupyterN), img, e.o.JupyterN)
	if err := e.removeBare(ctx); err != nil {
		return nil, err
	}
	return []table{stormTable(fmt.Sprintf("Real Jupyter storm: %d users start the Debian notebook at once", len(users)), o, b,
		e.cfg.Notebook.ConcurrentSpawnLimit, "The admin chooses the image on each user's behalf (only admins may); each user follows their own progress stream.", e.perNodeNote())}, nil
}

// suiteStorm: 100 users start the tiny server at once. Its servers stay
// running for the memory and cull suites.
func (e *env) suiteStorm(ctx context.Context) ([]table, error) {
	b := e.bareStorm(ctx, names("stbare", 1, e.o.StormUsers), e.cfg.Notebook.Image, e.o.StormUsers)
	if err := e.removeBare(ctx); err != nil {
		return nil, err
	}
	users := names("st", 1, e.o.StormUsers)
	o, err := e.lineStorm(ctx, users, "")
	if err != nil {
		return nil, err
	}
	if o.Failed > 0 || b.Failed > 0 {
		e.logf("storm: %d swarmhub and %d baseline failures", o.Failed, b.Failed)
	}
	return []table{stormTable(fmt.Sprintf("Spawn storm: %d users press start at once (%s)", len(users), e.cfg.Notebook.Image), o, b,
		e.cfg.Notebook.ConcurrentSpawnLimit, "The baseline ran first and was removed before the swarmhub storm.", e.perNodeNote())}, nil
}

// lineStorm is orchestratorStorm with the start line's per-node bound set
// to --storm-starts-per-node for its duration.
func (e *env) lineStorm(ctx context.Context, users []string, image string) (stormResult, error) {
	n := e.o.StormPerNode
	if err := e.setStartsPerNode(ctx, &n); err != nil {
		return stormResult{}, err
	}
	defer func() {
		if err := e.setStartsPerNode(context.WithoutCancel(ctx), nil); err != nil {
			e.logf("storm: restore starts_per_node: %v", err)
		}
	}()
	return e.orchestratorStorm(ctx, users, image)
}

func (e *env) perNodeNote() string {
	switch n := e.o.StormPerNode; n {
	case 0:
		return "The start line's per-node bound was off (starts_per_node 0) during the storm, so swarmhub starts everyone at once like the baseline; the lecture suite shows the bound's trade-off."
	case -1:
		return "The start line admitted as many starts per node as the node has CPUs (starts_per_node -1, the default)."
	default:
		return fmt.Sprintf("The start line admitted %d starts per node (starts_per_node %d).", n, n)
	}
}
