package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

// courseResult is one side of the course suite.
type courseResult struct {
	N, Done, Failed int
	Login           dist // swarmhub only: login page to home page
	TTFC            dist // start request (bare: arrival, before any wait for a slot) to the first cell's result
	AllDone         time.Duration
	Counters        startCounters
	DockerCalls     float64 // per spawn
	From, To        time.Time
	Errs            []string
}

func (r *courseResult) fail(err error) {
	r.Failed++
	if len(r.Errs) < 3 {
		r.Errs = append(r.Errs, err.Error())
	}
}

// arrivals spreads n arrivals evenly over spread: the i-th comes at
// i×spread/n, so the last one comes just before spread ends.
func arrivals(n int, spread time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = spread * time.Duration(i) / time.Duration(n)
	}
	return out
}

// suiteCourse is the first minute of a course on a cluster of several
// orchestrator replicas: students arrive spread over CourseSpread, each on
// the next replica in turn, log in, press start, follow the progress stream
// and run 1+1 in a fresh kernel through the proxy. Then the same number of
// bare services, created on the same schedule straight through the Docker
// API, each with its first cell run directly on the task's address: with
// as many starts in flight as swarmhub allows, and all at once.
func (e *env) suiteCourse(ctx context.Context) ([]table, error) {
	hubs, err := e.replicaAddrs(ctx)
	if err != nil {
		return nil, err
	}
	e.logf("course: %d replicas: %s", len(hubs), strings.Join(hubs, " "))
	// The replicas' background Docker calls (reconcile, health, capacity),
	// to be taken off the figure per spawn.
	idle := 20 * time.Second
	c0, err := e.replicaDockerCalls(ctx, hubs)
	if err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(idle):
	}
	c1, err := e.replicaDockerCalls(ctx, hubs)
	if err != nil {
		return nil, err
	}
	idleRate := float64(c1-c0) / idle.Seconds()

	users := names("course", 1, e.o.CourseUsers)
	orch := e.courseStudents(ctx, hubs, users)
	c2, err := e.replicaDockerCalls(ctx, hubs)
	if err != nil {
		return nil, err
	}
	raw := float64(c2 - c1)
	net := raw - idleRate*time.Since(orch.From).Seconds()
	orch.DockerCalls = max(net, 0) / float64(orch.N)
	e.logf("course: swarmhub side done: %d/%d, %d failed", orch.Done, orch.N, orch.Failed)
	if err := e.stopCourse(ctx, users); err != nil {
		return nil, err
	}
	bound := e.cfg.Notebook.ConcurrentSpawnLimit
	bare := courseBareSides(e.o.CourseBare, bound)
	for i := range bare {
		b := &bare[i]
		b.courseResult = e.courseBare(ctx, names(b.Prefix, 1, e.o.CourseUsers), newStartSlots(b.Limit))
		e.logf("course: %s side done: %d/%d, %d failed", b.Name, b.Done, b.N, b.Failed)
		if err := e.removeBare(ctx); err != nil {
			return nil, err
		}
	}

	t := table{
		Title: fmt.Sprintf("First minute of a course: %d students arrive within %s, each logs in, starts a server and runs a first cell (%d replicas)", len(users), e.o.CourseSpread, len(hubs)),
		Head:  []string{"", "login p50", "login p99", "first cell p50", "p95", "max", "all done", "done", "failures", "429s", "Docker calls per spawn"},
	}
	t.add("swarmhub (login, start, progress stream, 1+1 through the proxy)", secs(orch.Login.P50), secs(orch.Login.P99),
		secs(orch.TTFC.P50), secs(orch.TTFC.P95), secs(orch.TTFC.Max), secs(orch.AllDone),
		fmt.Sprintf("%d/%d", orch.Done, orch.N), fmt.Sprint(orch.Failed), fmt.Sprint(orch.Counters.TooMany), fmt.Sprintf("%.1f", orch.DockerCalls))
	for _, b := range bare {
		label := "bare docker service create + task-IP poll, 1+1 direct"
		if b.Limit > 0 {
			label = fmt.Sprintf("bounded bare: the same, at most %d starts in flight", b.Limit)
		}
		t.add(label, "–", "–", secs(b.TTFC.P50), secs(b.TTFC.P95), secs(b.TTFC.Max), secs(b.AllDone),
			fmt.Sprintf("%d/%d", b.Done, b.N), fmt.Sprint(b.Failed), "–", fmt.Sprintf("%.1f", b.DockerCalls))
	}
	for _, b := range bare {
		t.add("ratio swarmhub / "+b.Name, "", "", ratio(orch.TTFC.P50.Seconds(), b.TTFC.P50.Seconds()),
			ratio(orch.TTFC.P95.Seconds(), b.TTFC.P95.Seconds()), ratio(orch.TTFC.Max.Seconds(), b.TTFC.Max.Seconds()),
			ratio(orch.AllDone.Seconds(), b.AllDone.Seconds()), "", "", "", ratio(orch.DockerCalls, b.DockerCalls))
	}
	t.Notes = append(t.Notes,
		fmt.Sprintf("Image %s (notebook.image of the cluster; its kernel evaluates sums of integers). Student i arrives at i×%s/%d on replica i mod %d, logs in (login page, form, home page: the login columns), asks for their server (retrying after each 429 as the spawn page does, honouring Retry-After; notebook.concurrent_spawn_limit %d across the replicas, starts_per_node %d), follows the progress stream, fetches the server's access cookie, creates a kernel and runs 1+1 over its websocket. First cell counts from the start request to the execute_reply; all done from the first arrival to the last result.",
			e.cfg.Notebook.Image, e.o.CourseSpread, len(users), len(hubs), e.cfg.Notebook.ConcurrentSpawnLimit, e.cfg.Notebook.StartsPerNode),
		fmt.Sprintf("The baseline creates the spawner's service spec on the same schedule through the manager's Docker API, polls the task's address and the server's /api/status every %s, then creates a kernel and runs 1+1 on the task's address with the token; it ran after every swarmhub server was stopped and gone (each baseline side after the previous one's services were removed and their containers gone; the bounded one first).", probeInterval))
	if e.o.CourseBare != "all" {
		t.Notes = append(t.Notes, fmt.Sprintf("The bounded baseline holds at most %d starts in flight (notebook.concurrent_spawn_limit; one bound across the run, no bound per node as starts_per_node is for swarmhub): a start takes a slot from service create until /api/status answers, and a student waits for a free slot first. Its first cell counts from the student's arrival, so the wait for a slot counts as swarmhub's wait in line does.", bound))
	}
	t.Notes = append(t.Notes, fmt.Sprintf("Docker calls per spawn: swarmhub_docker_requests_total summed over the replicas during the run (%.0f), less the background rate of a %s idle window before it (%.1f per second), divided by the students; the baseline's are the bench's own calls. Timeouts: %d; 5xx: %d.",
		raw, idle, idleRate, orch.Counters.Timeouts, orch.Counters.ServerErr))
	errs := orch.Errs
	failures := fmt.Sprintf("swarmhub %d", orch.Failed)
	anyFailed := orch.Failed > 0
	for _, b := range bare {
		errs = append(errs, b.Errs...)
		failures += fmt.Sprintf(", %s %d", b.Name, b.Failed)
		anyFailed = anyFailed || b.Failed > 0
	}
	if anyFailed {
		t.Notes = append(t.Notes, "**Failures: "+failures+".** Each side's times are over its successes only, so the ratios compare unlike sets.")
	}
	for _, er := range errs {
		t.Notes = append(t.Notes, "Error: "+er)
	}
	if e.o.Stats == "" {
		return []table{t}, nil
	}
	rt, err := resourceTable(e.o.Stats, orch, bare)
	if err != nil {
		t.Notes = append(t.Notes, "CPU and memory not measured: "+err.Error())
		return []table{t}, nil
	}
	return []table{t, rt}, nil
}

// courseSide is one baseline side of the course suite.
type courseSide struct {
	Name   string // in the tables
	Prefix string // of its users' names
	Limit  int    // starts in flight at once; 0 = no bound
	courseResult
}

// courseBareSides are the baselines --course-bare asks for, in the order
// they run: the bounded one first, as the unbounded one may leave the
// managers struggling for a while after it.
func courseBareSides(mode string, bound int) []courseSide {
	var out []courseSide
	if mode != "all" {
		out = append(out, courseSide{Name: "bounded bare", Prefix: "coursebound", Limit: bound})
	}
	if mode != "bounded" {
		out = append(out, courseSide{Name: "bare", Prefix: "coursebare"})
	}
	return out
}

// startSlots bounds the baseline's starts in flight; nil bounds nothing.
type startSlots chan struct{}

func newStartSlots(n int) startSlots {
	if n <= 0 {
		return nil
	}
	return make(startSlots, n)
}

// acquire waits for a free slot.
func (s startSlots) acquire(ctx context.Context) error {
	if s == nil {
		return nil
	}
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s startSlots) release() {
	if s != nil {
		<-s
	}
}

// bareServiceName is the service bareSpawn creates for user.
func bareServiceName(user string) string { return "swarmhub-bench-bare-" + user }

// replicaAddrs is http://TASK-IP:PORT of every running orchestrator task.
func (e *env) replicaAddrs(ctx context.Context) ([]string, error) {
	tasks, err := e.raw.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", e.o.Stack+"_orchestrator"), filters.Arg("desired-state", "running"))})
	if err != nil {
		return nil, fmt.Errorf("orchestrator tasks: %w", err)
	}
	var out []string
	for _, t := range tasks {
		if ip := attachmentIP(t, e.cfg.Notebook.Network); ip != "" && t.Status.State == swarm.TaskStateRunning {
			out = append(out, fmt.Sprintf("http://%s:%d", ip, e.cfg.Listen.Port))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no running orchestrator task on %s", e.cfg.Notebook.Network)
	}
	return out, nil
}

// replicaDockerCalls sums swarmhub_docker_requests_total over the replicas.
func (e *env) replicaDockerCalls(ctx context.Context, hubs []string) (uint64, error) {
	var sum uint64
	for _, h := range hubs {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h+"/hub/metrics", nil)
		resp, err := (&http.Client{Transport: e.tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, fmt.Errorf("metrics of %s: %w", h, err)
		}
		v, ok := metricValue(resp.Body, "swarmhub_docker_requests_total")
		resp.Body.Close()
		if !ok {
			return 0, fmt.Errorf("%s/hub/metrics has no swarmhub_docker_requests_total (an older orchestrator?)", h)
		}
		sum += uint64(v)
	}
	return sum, nil
}

// metricValue reads an unlabelled sample from Prometheus text.
func metricValue(r io.Reader, name string) (float64, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			var v float64
			if _, err := fmt.Sscan(f[1], &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

// courseStudents plays the students on the replicas.
func (e *env) courseStudents(ctx context.Context, hubs, users []string) courseResult {
	res := courseResult{N: len(users)}
	var mu sync.Mutex
	var logins, ttfc []time.Duration
	var wg sync.WaitGroup
	res.From = time.Now()
	for i, at := range arrivals(len(users), e.o.CourseSpread) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(res.From.Add(at))):
			}
			var c startCounters
			login, cell, err := e.student(ctx, hubs[i%len(hubs)], users[i], &c)
			mu.Lock()
			defer mu.Unlock()
			res.Counters.TooMany += c.TooMany
			res.Counters.ServerErr += c.ServerErr
			res.Counters.Timeouts += c.Timeouts
			if login > 0 {
				logins = append(logins, login)
			}
			if err != nil {
				res.fail(err)
				return
			}
			res.Done++
			ttfc = append(ttfc, cell)
		}()
	}
	wg.Wait()
	res.To = time.Now()
	res.AllDone = res.To.Sub(res.From)
	res.Login, res.TTFC = summarize(logins), summarize(ttfc)
	return res
}

// student logs in on hub, starts their own server and runs the first cell:
// it returns the login time and the time from the start request to the
// cell's result.
func (e *env) student(ctx context.Context, hub, user string, c *startCounters) (login, cell time.Duration, err error) {
	t0 := time.Now()
	sub := &env{o: e.o, hub: hub, cfg: e.cfg, tr: e.tr, users: map[string]*session{}}
	s, err := sub.login(ctx, user)
	if err != nil {
		return 0, 0, err
	}
	login = time.Since(t0)
	t1 := time.Now()
	if err := s.requestStart(ctx, user, "", c); err != nil {
		return login, 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, e.cfg.Notebook.StartTimeout+5*time.Minute)
	defer cancel()
	if err := s.waitReady(wctx, user); err != nil {
		return login, 0, err
	}
	if err := s.serverAccess(wctx, user); err != nil {
		return login, 0, err
	}
	ks := kernelclient.Server{URL: s.base + "/user/" + user, Client: s.c, Header: http.Header{"Origin": {s.base}}}
	hdr := func(id string) http.Header {
		return http.Header{"Origin": {s.base}, "Cookie": {s.cookiesFor("/user/" + user + "/api/kernels/" + id + "/channels")}}
	}
	if err := firstCell(wctx, ks, hdr, user); err != nil {
		return login, 0, err
	}
	return login, time.Since(t1), nil
}

// firstCell creates a kernel on ks and runs 1+1 over its websocket, dialled
// with the headers wsHeader gives for the kernel's id.
func firstCell(ctx context.Context, ks kernelclient.Server, wsHeader func(id string) http.Header, user string) error {
	id, err := ks.StartKernel(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", user, err)
	}
	conn, err := kernelclient.Dial(ctx, ks.ChannelsURL(id), wsHeader(id))
	if err != nil {
		return fmt.Errorf("%s: %w", user, err)
	}
	defer conn.CloseNow()
	out, err := kernelclient.Execute(ctx, conn, kernelclient.Request{Code: "1+1", Username: user})
	if err != nil {
		return fmt.Errorf("%s: first cell: %w", user, err)
	}
	if out != "2" {
		return fmt.Errorf("%s: 1+1 gave %q", user, out)
	}
	return nil
}

// stopCourse stops the students' servers as the admin and waits until
// their services are gone from the swarm (their containers run on every
// node, out of this manager's sight), then a little for the containers.
func (e *env) stopCourse(ctx context.Context, users []string) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(users))
	for _, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, body, err := e.admin.api(ctx, http.MethodDelete, "/hub/api/users/"+u+"/server", nil)
			if err == nil && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
				err = fmt.Errorf("stop %s: %s %s", u, resp.Status, trim(body))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		svcs, err := e.raw.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
			filters.Arg("label", spawner.LabelInstance+"="+e.cfg.Instance))})
		if err != nil {
			return err
		}
		if len(svcs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d services of the students still there after 3 minutes", len(svcs))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return nil
	}
}

// courseBare is the baseline on the students' schedule, its starts bounded
// by slots.
func (e *env) courseBare(ctx context.Context, users []string, slots startSlots) courseResult {
	res := courseResult{N: len(users)}
	var mu sync.Mutex
	var ttfc []time.Duration
	var wg sync.WaitGroup
	before := e.calls.Requests()
	res.From = time.Now()
	for i, at := range arrivals(len(users), e.o.CourseSpread) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(res.From.Add(at))):
			}
			t0 := time.Now()
			err := e.bareFirstCell(ctx, users[i], slots)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.fail(err)
				return
			}
			res.Done++
			ttfc = append(ttfc, d)
		}()
	}
	wg.Wait()
	res.To = time.Now()
	res.AllDone = res.To.Sub(res.From)
	res.TTFC = summarize(ttfc)
	res.DockerCalls = float64(e.calls.Requests()-before) / float64(res.N)
	return res
}

// bareFirstCell starts a bare server in a slot (counted Docker calls),
// reads its address and token (through the uncounted client: a browser
// would get them some other way) and runs the first cell directly.
func (e *env) bareFirstCell(ctx context.Context, user string, slots startSlots) error {
	if err := slots.acquire(ctx); err != nil {
		return fmt.Errorf("%s: waiting for a start slot: %w", user, err)
	}
	_, err := e.bareSpawn(ctx, user, e.cfg.Notebook.Image, probeInterval)
	slots.release()
	if err != nil {
		return err
	}
	svc, _, err := e.raw.ServiceInspectWithRaw(ctx, bareServiceName(user), swarm.ServiceInspectOptions{})
	if err != nil {
		return fmt.Errorf("%s: %w", user, err)
	}
	var token string
	for _, v := range svc.Spec.TaskTemplate.ContainerSpec.Env {
		if t, ok := strings.CutPrefix(v, spawner.EnvToken+"="); ok {
			token = t
		}
	}
	tasks, err := e.raw.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", svc.ID), filters.Arg("desired-state", "running"))})
	if err != nil {
		return fmt.Errorf("%s: %w", user, err)
	}
	ip := ""
	for _, t := range tasks {
		if a := attachmentIP(t, e.cfg.Notebook.Network); a != "" {
			ip = a
		}
	}
	if ip == "" {
		return fmt.Errorf("%s: the bare task has no address on %s", user, e.cfg.Notebook.Network)
	}
	auth := http.Header{"Authorization": {"token " + token}}
	ks := kernelclient.Server{URL: fmt.Sprintf("http://%s:%d/user/%s", ip, e.port(), user), Header: auth}
	return firstCell(ctx, ks, func(string) http.Header { return auth }, user)
}
