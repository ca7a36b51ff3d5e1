package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
)

// loadResult is one closed-loop HTTP load run.
type loadResult struct {
	Requests int
	Errors   int // transport errors and non-200 answers
	FirstErr string
	Elapsed  time.Duration
	RPS      float64
	Lat      dist
	samples  []time.Duration // for merging blocks
}

// httpLoadAlternating measures two request kinds in blocks that take turns
// (a, b, a, b, ...), each side dur in total, so that a machine that gets
// busier or quieter during the run moves both sides alike.
func httpLoadAlternating(ctx context.Context, conns int, dur time.Duration, blocks int, a, b func(context.Context) *http.Request) (ra, rb loadResult) {
	r := httpLoadRotating(ctx, conns, dur, blocks, a, b)
	return r[0], r[1]
}

// httpLoadRotating is httpLoadAlternating for any number of sides: each
// block runs every side once, in order.
func httpLoadRotating(ctx context.Context, conns int, dur time.Duration, blocks int, sides ...func(context.Context) *http.Request) []loadResult {
	if blocks < 1 {
		blocks = 1
	}
	merge := func(acc *loadResult, r loadResult) {
		acc.Requests += r.Requests
		acc.Errors += r.Errors
		if acc.FirstErr == "" {
			acc.FirstErr = r.FirstErr
		}
		acc.Elapsed += r.Elapsed
		acc.samples = append(acc.samples, r.samples...)
	}
	out := make([]loadResult, len(sides))
	for i := 0; i < blocks && ctx.Err() == nil; i++ {
		for j, mk := range sides {
			merge(&out[j], httpLoad(ctx, conns, dur/time.Duration(blocks), 0, mk))
		}
	}
	for i := range out {
		r := &out[i]
		if r.Elapsed > 0 {
			r.RPS = float64(r.Requests) / r.Elapsed.Seconds()
		}
		r.Lat = summarize(r.samples)
	}
	return out
}

// httpLoad keeps conns requests in flight (one per connection, each
// starting when the previous answer is read) until dur passes or max
// requests (if > 0) were sent. mk builds each request.
func httpLoad(ctx context.Context, conns int, dur time.Duration, max int64, mk func(context.Context) *http.Request) loadResult {
	tr := &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns, DisableCompression: true, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var sent atomic.Int64
	var mu sync.Mutex
	var res loadResult
	var all []time.Duration
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			first := ""
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if max > 0 && sent.Add(1) > max {
					break
				}
				req := mk(ctx)
				t0 := time.Now()
				resp, err := c.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s", resp.Status)
					}
				}
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			res.Errors += errs
			if res.FirstErr == "" {
				res.FirstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests = len(all)
	res.RPS = float64(len(all)) / res.Elapsed.Seconds()
	res.Lat = summarize(all)
	res.samples = all
	return res
}

// wsRoundTrips sends n messages over one websocket and times each answer.
// exchange sends one message and reads until its answer is complete.
func wsRoundTrips(ctx context.Context, conn *websocket.Conn, n int, exchange func(context.Context, *websocket.Conn) error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := exchange(ctx, conn); err != nil {
			return out, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// echoExchange is one message echoed by tinynotebook's /echo.
func echoExchange(ctx context.Context, c *websocket.Conn) error {
	msg := []byte(`{"bench":"0123456789012345678901234567890123456789012345678901234567890123456789"}`)
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		return err
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if len(got) != len(msg) {
		return fmt.Errorf("echo returned %d bytes, sent %d", len(got), len(msg))
	}
	return nil
}

// kernelExchange executes 1+1 and reads until both the execute_reply and
// the kernel's return to idle for that request have arrived.
func kernelExchange(session string) func(context.Context, *websocket.Conn) error {
	var seq atomic.Int64
	return func(ctx context.Context, c *websocket.Conn) error {
		id := fmt.Sprintf("bench-%s-%d", session, seq.Add(1))
		result, err := kernelclient.Execute(ctx, c, kernelclient.Request{Code: "1+1", MsgID: id, Session: session, Username: "bench"})
		if err != nil {
			return err
		}
		if result != "2" {
			return fmt.Errorf("1+1 gave %q", result)
		}
		return nil
	}
}
