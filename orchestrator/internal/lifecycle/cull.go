package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// ServerInfo is what the culler needs to know about one server.
type ServerInfo struct {
	User    string
	Admin   bool
	State   string // only "running" servers are considered
	Started time.Time
	Ready   time.Time
	Addr    string // host:port of the notebook server
	Token   string
}

// Servers lists the servers the store believes exist.
type Servers interface {
	ListRunning(ctx context.Context) ([]ServerInfo, error)
}

// ActivitySource reports the proxy's last activity per user (flushed to Redis
// in batches).
type ActivitySource interface {
	LastActivity(ctx context.Context) (map[string]time.Time, error)
}

// StatusProber asks a notebook server for its own idea of activity.
type StatusProber interface {
	Status(ctx context.Context, addr, user, token string) (lastActivity time.Time, busyKernels int, err error)
}

// SpareSource lists servers the culler must leave alone until a time:
// servers started ahead of a lecture, until its grace period ends.
type SpareSource interface {
	Spared(ctx context.Context) (map[string]time.Time, error)
}

// Stopper stops a server the same way a user's stop does.
type Stopper interface {
	Stop(ctx context.Context, user, reason string) error
}

// CullOptions configures a Culler. The zero values of BusyIsActive and
// CullAdmins are false; swarmhub's configuration defaults both to true.
type CullOptions struct {
	// Timeout is the idle time after which a server is stopped (default 15m).
	Timeout time.Duration
	// MaxAge > 0 stops servers older than this, active or not.
	MaxAge time.Duration
	// CullAdmins culls admins' servers too.
	CullAdmins bool
	// BusyIsActive treats a busy kernel as activity happening now.
	BusyIsActive bool
	// Concurrency bounds parallel probes and stops (default 10).
	Concurrency int
	// Spares, when set, names servers not to cull yet.
	Spares SpareSource
	Clock  func() time.Time
	Logger *slog.Logger
}

// Culler stops idle servers.
type Culler struct {
	servers Servers
	act     ActivitySource
	probe   StatusProber
	stop    Stopper
	events  EventSink
	o       CullOptions
	log     *slog.Logger
}

// Culled is one stopped server.
type Culled struct {
	User   string `json:"user"`
	Reason string `json:"reason"`
}

// CullReport says what one cull cycle did.
type CullReport struct {
	Checked int               `json:"checked"` // running servers considered
	Probed  int               `json:"probed"`  // servers asked for /api/status
	Spared  int               `json:"spared"`  // pre-started servers left alone until their lecture's grace ends
	Culled  []Culled          `json:"culled"`
	Errors  map[string]string `json:"errors,omitempty"` // per user
}

// NewCuller returns a Culler; events may be nil.
func NewCuller(servers Servers, act ActivitySource, probe StatusProber, stop Stopper, events EventSink, o CullOptions) *Culler {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Culler{servers: servers, act: act, probe: probe, stop: stop, events: events, o: o, log: o.Logger}
}

// Job adapts Run for Scheduler.Add.
func (c *Culler) Job(ctx context.Context) error {
	_, err := c.Run(ctx)
	return err
}

// Run performs one cull cycle. Idle time is measured from the latest of the
// proxy's activity, the server's own last_activity and its readiness; the
// server is only asked when the cheaper sources say it is idle, so a cycle
// over many active servers costs two Redis reads. A server that cannot be
// probed is judged on the other sources (a dead server is idle).
func (c *Culler) Run(ctx context.Context) (CullReport, error) {
	rep := CullReport{Errors: map[string]string{}}
	servers, err := c.servers.ListRunning(ctx)
	if err != nil {
		return rep, fmt.Errorf("cull: list servers: %w", err)
	}
	activity, err := c.act.LastActivity(ctx)
	if err != nil {
		return rep, fmt.Errorf("cull: read proxy activity: %w", err)
	}
	now := c.o.Clock()
	var spared map[string]time.Time
	if c.o.Spares != nil {
		// Without the list a pre-started server could be culled before its
		// student arrives: skip the cycle rather than guess.
		if spared, err = c.o.Spares.Spared(ctx); err != nil {
			return rep, fmt.Errorf("cull: read spared servers: %w", err)
		}
	}

	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, c.o.Concurrency)
	)
	for _, s := range servers {
		if s.State != store.StateRunning || (s.Admin && !c.o.CullAdmins) {
			continue
		}
		rep.Checked++
		if until, ok := spared[s.User]; ok && now.Before(until) {
			rep.Spared++
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return rep, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			reason, probed, perr := c.judge(ctx, s, activity[s.User], now)
			var serr error
			if reason != "" {
				serr = c.stop.Stop(ctx, s.User, reason)
			}
			mu.Lock()
			defer mu.Unlock()
			if probed {
				rep.Probed++
			}
			if perr != nil {
				rep.Errors[s.User] = "status: " + perr.Error()
			}
			switch {
			case serr != nil:
				rep.Errors[s.User] = "stop: " + serr.Error()
			case reason != "":
				rep.Culled = append(rep.Culled, Culled{User: s.User, Reason: reason})
			}
		})
	}
	wg.Wait()
	slices.SortFunc(rep.Culled, func(a, b Culled) int { return strings.Compare(a.User, b.User) })

	for _, cu := range rep.Culled {
		c.log.Info("culled server", "user", cu.User, "reason", cu.Reason)
		if c.events != nil {
			c.events.AddEvent(ctx, "cull", cu.User, cu.Reason)
		}
	}
	for u, e := range rep.Errors {
		c.log.Warn("cull", "user", u, "err", e)
	}
	if len(rep.Culled) > 0 || len(rep.Errors) > 0 {
		c.log.Info("cull cycle", "checked", rep.Checked, "probed", rep.Probed, "culled", len(rep.Culled), "errors", len(rep.Errors))
	}
	return rep, nil
}

// judge returns why s should be stopped ("" to keep it) and whether the
// server itself was asked.
func (c *Culler) judge(ctx context.Context, s ServerInfo, proxy time.Time, now time.Time) (reason string, probed bool, err error) {
	if c.o.MaxAge > 0 && !s.Started.IsZero() && now.Sub(s.Started) > c.o.MaxAge {
		return fmt.Sprintf("running for %s, longer than the maximum age %s", round(now.Sub(s.Started)), c.o.MaxAge), false, nil
	}
	last := latest(proxy, s.Ready, s.Started)
	if now.Sub(last) <= c.o.Timeout {
		return "", false, nil
	}
	if c.probe != nil && s.Addr != "" {
		probed = true
		la, busy, perr := c.probe.Status(ctx, s.Addr, s.User, s.Token)
		if perr != nil {
			if ctx.Err() != nil {
				return "", probed, ctx.Err()
			}
			err = perr
		} else {
			last = latest(last, la)
			if busy > 0 && c.o.BusyIsActive {
				return "", probed, nil
			}
		}
	}
	idle := now.Sub(last)
	if idle <= c.o.Timeout {
		return "", probed, err
	}
	return fmt.Sprintf("idle for %s (timeout %s)", round(idle), c.o.Timeout), probed, err
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }
