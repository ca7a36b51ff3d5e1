package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
)

// lectureResult is one lecture start: every student's time from pressing
// start to the result of their first cell.
type lectureResult struct {
	N, Done, Failed int
	TTFC            dist
	Errs            []string
}

// suiteLecture is the start of a lecture: students log in spread over
// LectureSpread, and each at once presses start, follows the progress
// stream until ready, starts a kernel and runs 1+1, all through the hub.
// Once with every start at once (starts_per_node 0, set at runtime), once
// in order (the configured notebook.starts_per_node), once after the
// servers were started ahead.
func (e *env) suiteLecture(ctx context.Context) ([]table, error) {
	img, err := e.debianImage()
	if err != nil {
		return nil, err
	}
	users := names("lec", 1, e.o.LectureUsers)
	unbounded := 0
	all, err := e.lectureRun(ctx, users, img, &unbounded)
	if err != nil {
		return nil, err
	}
	if err := e.stopServers(ctx, users); err != nil {
		return nil, err
	}
	ordered, err := e.lectureRun(ctx, users, img, nil)
	if err != nil {
		return nil, err
	}
	if err := e.stopServers(ctx, users); err != nil {
		return nil, err
	}
	prep, err := e.prestartAll(ctx, users, img)
	if err != nil {
		return nil, err
	}
	pre, err := e.lectureRun(ctx, users, img, nil)
	if err != nil {
		return nil, err
	}
	if err := e.stopServers(ctx, users); err != nil {
		return nil, err
	}
	t := table{
		Title: fmt.Sprintf("Lecture start: %d students log in within %s, each starts a server and runs a first cell", len(users), e.o.LectureSpread),
		Head:  []string{"", "p50 time to first cell result", "p95", "max", "done", "failures"},
	}
	row := func(name string, r lectureResult) {
		t.add(name, secs(r.TTFC.P50), secs(r.TTFC.P95), secs(r.TTFC.Max), fmt.Sprintf("%d/%d", r.Done, r.N), fmt.Sprint(r.Failed))
	}
	row("all at once (starts_per_node 0)", all)
	row(fmt.Sprintf("in order (starts_per_node %d)", e.cfg.Notebook.StartsPerNode), ordered)
	row("after a pre-start", pre)
	t.add("ratio in order / all at once", ratio(ordered.TTFC.P50.Seconds(), all.TTFC.P50.Seconds()),
		ratio(ordered.TTFC.P95.Seconds(), all.TTFC.P95.Seconds()), ratio(ordered.TTFC.Max.Seconds(), all.TTFC.Max.Seconds()), "", "")
	t.add("ratio pre-started / all at once", ratio(pre.TTFC.P50.Seconds(), all.TTFC.P50.Seconds()),
		ratio(pre.TTFC.P95.Seconds(), all.TTFC.P95.Seconds()), ratio(pre.TTFC.Max.Seconds(), all.TTFC.Max.Seconds()), "", "")
	t.Notes = append(t.Notes,
		fmt.Sprintf("Image %s, chosen by the admin on each student's behalf. Student i logs in at i×%s/%d; the time counts from their start request (after login) to the execute_reply of 1+1 on a fresh kernel, through the hub's proxy, and includes the wait in line. The bound is switched at runtime with PUT /hub/api/line between the two runs; all servers are stopped and gone before each.", img, e.o.LectureSpread, len(users)))
	t.Notes = append(t.Notes, fmt.Sprintf("Pre-start: before the third run the admin starts all %d servers through the same line, as a pre-start schedule does (%s until all were ready); the students then find them running.", len(users), secs(prep)))
	for _, er := range append(append(all.Errs, ordered.Errs...), pre.Errs...) {
		t.Notes = append(t.Notes, "Error: "+er)
	}
	return []table{t}, nil
}

// prestartAll starts every user's server as an admin, in the line, and
// waits until all are ready (what a pre-start schedule does ahead of the
// lecture); it returns how long that took.
func (e *env) prestartAll(ctx context.Context, users []string, image string) (time.Duration, error) {
	t0 := time.Now()
	errs := make(chan error, len(users))
	for _, u := range users {
		go func() {
			var c startCounters
			if err := e.admin.requestStart(ctx, u, image, &c); err != nil {
				errs <- err
				return
			}
			wctx, cancel := context.WithTimeout(ctx, e.cfg.Notebook.StartTimeout+5*time.Minute)
			defer cancel()
			errs <- e.admin.waitReady(wctx, u)
		}()
	}
	var first error
	for range users {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return 0, fmt.Errorf("pre-start: %w", first)
	}
	for _, u := range users {
		e.started[u] = true
	}
	return time.Since(t0), nil
}

// setStartsPerNode overrides notebook.starts_per_node at runtime; nil
// restores the configured value.
func (e *env) setStartsPerNode(ctx context.Context, n *int) error {
	resp, body, err := e.admin.api(ctx, http.MethodPut, "/hub/api/line", map[string]*int{"starts_per_node": n})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("set starts_per_node: %s %s", resp.Status, trim(body))
	}
	return nil
}

func (e *env) lectureRun(ctx context.Context, users []string, image string, perNode *int) (lectureResult, error) {
	if err := e.setStartsPerNode(ctx, perNode); err != nil {
		return lectureResult{}, err
	}
	defer func() {
		if err := e.setStartsPerNode(context.WithoutCancel(ctx), nil); err != nil {
			e.logf("lecture: restore starts_per_node: %v", err)
		}
	}()
	res := lectureResult{N: len(users)}
	var mu sync.Mutex
	var ttfc []time.Duration
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := t0.Add(e.o.LectureSpread * time.Duration(i) / time.Duration(len(users)))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(at)):
			}
			d, err := e.firstCell(ctx, u, image)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				if len(res.Errs) < 3 {
					res.Errs = append(res.Errs, err.Error())
				}
				return
			}
			e.started[u] = true
			res.Done++
			ttfc = append(ttfc, d)
		}()
	}
	wg.Wait()
	res.TTFC = summarize(ttfc)
	return res, nil
}

// firstCell is one student: log in, press start, wait until ready, start a
// kernel and run 1+1, all through the hub. It returns the time from the
// start request to the cell's result.
func (e *env) firstCell(ctx context.Context, user, image string) (time.Duration, error) {
	s, err := e.loginDetached(ctx, user)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	var c startCounters
	if err := e.admin.requestStart(ctx, user, image, &c); err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, e.cfg.Notebook.StartTimeout+5*time.Minute)
	defer cancel()
	if err := s.waitReady(wctx, user); err != nil {
		return 0, err
	}
	// The first page load of the server fetches its access cookie.
	if err := s.serverAccess(wctx, user); err != nil {
		return 0, err
	}
	ks := kernelclient.Server{URL: s.base + "/user/" + user, Client: s.c, Header: http.Header{"Origin": {s.base}}}
	id, err := ks.StartKernel(wctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", user, err)
	}
	path := "/api/kernels/" + id + "/channels"
	conn, err := kernelclient.Dial(wctx, ks.ChannelsURL(id), http.Header{
		"Origin": {s.base}, "Cookie": {s.cookiesFor("/user/" + user + path)}})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", user, err)
	}
	defer conn.CloseNow()
	out, err := kernelclient.Execute(wctx, conn, kernelclient.Request{Code: "1+1", Username: user})
	if err != nil {
		return 0, fmt.Errorf("%s: first cell: %w", user, err)
	}
	if out != "2" {
		return 0, fmt.Errorf("%s: 1+1 gave %q", user, out)
	}
	return time.Since(t0), nil
}
