// Package lifecycle runs swarmhub's periodic jobs (cull idle servers,
// archive workspaces, reconcile records with the swarm) on a cron schedule,
// each under a Redis lock so that with several orchestrator replicas every
// run happens once.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// Lock is a held lock with a TTL.
type Lock interface {
	Refresh(ctx context.Context, ttl time.Duration) error
	Release(ctx context.Context) error
}

// Locker takes named locks. Lock must return an error wrapping ErrLocked
// when another holder has the key (see LockerFunc for adapting a store).
type Locker interface {
	Lock(ctx context.Context, key string, ttl time.Duration) (Lock, error)
}

// EventSink records what a job did. Implementations log their own failures:
// a lost event must not fail a job.
type EventSink interface {
	AddEvent(ctx context.Context, kind, user, message string)
}

var (
	// ErrLocked means the job (or this tick of it) runs elsewhere.
	ErrLocked = errors.New("job is already running")
	// ErrUnknownJob is returned by Trigger for a name that was never added.
	ErrUnknownJob = errors.New("unknown job")
	// ErrGone is what a Records.Adopt returns (wrapped) when the observed
	// service was removed meanwhile: nothing to adopt, nothing wrong.
	ErrGone = errors.New("the observed service is gone")
)

// LockerFunc adapts a store's Lock method, whatever its concrete lock type,
// to Locker, translating the store's "held" error into ErrLocked:
//
//	lifecycle.LockerFunc(st.Lock, store.ErrLocked)
func LockerFunc[L Lock](lock func(context.Context, string, time.Duration) (L, error), locked error) Locker {
	return lockerFunc[L]{lock: lock, locked: locked}
}

type lockerFunc[L Lock] struct {
	lock   func(context.Context, string, time.Duration) (L, error)
	locked error
}

func (f lockerFunc[L]) Lock(ctx context.Context, key string, ttl time.Duration) (Lock, error) {
	l, err := f.lock(ctx, key, ttl)
	if err != nil {
		if f.locked != nil && errors.Is(err, f.locked) {
			return nil, fmt.Errorf("%w: %w", ErrLocked, err)
		}
		return nil, err
	}
	return l, nil
}

// SchedulerOptions configures a Scheduler.
type SchedulerOptions struct {
	// LockTTL is the lock lifetime; a running job renews it every LockTTL/3.
	// Default 1 minute. It also bounds how far replicas' clocks may drift
	// apart before a tick could run twice.
	LockTTL time.Duration
	// KeyPrefix prefixes lock keys (default "lifecycle:").
	KeyPrefix string
	// Location interprets schedules (default time.Local).
	Location *time.Location
	Logger   *slog.Logger
}

// Scheduler runs named jobs on cron schedules and on demand.
type Scheduler struct {
	locker Locker
	events EventSink
	opts   SchedulerOptions
	log    *slog.Logger
	cron   *cron.Cron

	mu      sync.Mutex
	jobs    map[string]*job
	base    context.Context
	cancel  context.CancelFunc
	running sync.WaitGroup
}

type job struct {
	name     string
	schedule string
	fn       func(context.Context) error
	entry    atomic.Int64 // cron.EntryID; 0 when unscheduled
}

// NewScheduler returns a Scheduler; events may be nil.
func NewScheduler(locker Locker, events EventSink, o SchedulerOptions) *Scheduler {
	if o.LockTTL <= 0 {
		o.LockTTL = time.Minute
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "lifecycle:"
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cl := cronLogger{o.Logger}
	s := &Scheduler{
		locker: locker,
		events: events,
		opts:   o,
		log:    o.Logger,
		jobs:   map[string]*job{},
		cron: cron.New(
			cron.WithLocation(o.Location),
			cron.WithLogger(cl),
			cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)),
		),
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	return s
}

// Add registers a job. schedule is a standard 5-field cron spec or a
// descriptor ("@every 1m", "@daily"); "" or "off" registers the job for
// Trigger only.
func (s *Scheduler) Add(name, schedule string, fn func(ctx context.Context) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" || fn == nil {
		return errors.New("lifecycle: a job needs a name and a function")
	}
	if _, dup := s.jobs[name]; dup {
		return fmt.Errorf("lifecycle: job %q added twice", name)
	}
	j := &job{name: name, schedule: schedule, fn: fn}
	if schedule != "" && schedule != "off" {
		id, err := s.cron.AddFunc(schedule, func() { s.runScheduled(j) })
		if err != nil {
			return fmt.Errorf("lifecycle: schedule %q of job %q: %w", schedule, name, err)
		}
		j.entry.Store(int64(id))
	}
	s.jobs[name] = j
	return nil
}

// Start begins running scheduled jobs. Jobs' contexts derive from ctx and
// from Stop.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	base, cancel := context.WithCancel(ctx)
	s.base, s.cancel = base, cancel
	s.mu.Unlock()
	s.cron.Start()
}

// Stop stops scheduling, cancels running jobs and waits for them to return
// (or for ctx).
func (s *Scheduler) Stop(ctx context.Context) error {
	cronDone := s.cron.Stop()
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		<-cronDone.Done()
		s.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("lifecycle: jobs still running at shutdown: %w", ctx.Err())
	}
}

// Trigger runs a job now and waits for it, under the same lock as scheduled
// runs: ErrLocked when it is running anywhere. The job's context ends with
// ctx or with Stop.
func (s *Scheduler) Trigger(ctx context.Context, name string) error {
	s.mu.Lock()
	j, ok := s.jobs[name]
	base := s.base
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownJob, name)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(base, cancel)
	defer stop()
	return s.run(ctx, j, time.Time{})
}

// Next returns when the named job is next scheduled after t, in the
// scheduler's Location; false for unknown or unscheduled jobs.
func (s *Scheduler) Next(name string, t time.Time) (time.Time, bool) {
	s.mu.Lock()
	j, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok || j.entry.Load() == 0 {
		return time.Time{}, false
	}
	e := s.cron.Entry(cron.EntryID(j.entry.Load()))
	if e.Schedule == nil {
		return time.Time{}, false
	}
	// cron reads a schedule in the zone of the time it is given.
	return e.Schedule.Next(t.In(s.opts.Location)), true
}

type tickKey struct{}

// Tick returns the scheduled time of the run a job's ctx belongs to; false
// for triggered runs.
func Tick(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(tickKey{}).(time.Time)
	return t, ok
}

// runScheduled is the cron callback. Before the run lock it takes a lock
// named after the tick and never releases it, so a replica whose timer fires
// a little later, after the first one finished, skips the same tick.
func (s *Scheduler) runScheduled(j *job) {
	s.mu.Lock()
	ctx := s.base
	s.mu.Unlock()
	tick := s.cron.Entry(cron.EntryID(j.entry.Load())).Prev
	if tick.IsZero() {
		tick = time.Now().Truncate(time.Second)
	}
	key := fmt.Sprintf("%s%s:tick:%d", s.opts.KeyPrefix, j.name, tick.Unix())
	if _, err := s.locker.Lock(ctx, key, s.opts.LockTTL); err != nil {
		if errors.Is(err, ErrLocked) {
			s.log.Debug("job tick already taken by another replica", "job", j.name, "tick", tick)
		} else {
			s.log.Error("job not run: cannot take its lock", "job", j.name, "err", err)
		}
		return
	}
	if err := s.run(ctx, j, tick); errors.Is(err, ErrLocked) {
		s.log.Debug("job still running elsewhere; tick skipped", "job", j.name, "tick", tick)
	}
}

// run holds the job's lock for the whole run, renewing it every TTL/3, and
// cancels the job when a renewal fails: another replica may then take over,
// and two runs must not overlap.
func (s *Scheduler) run(ctx context.Context, j *job, tick time.Time) error {
	s.running.Add(1)
	defer s.running.Done()
	ttl := s.opts.LockTTL
	lock, err := s.locker.Lock(ctx, s.opts.KeyPrefix+j.name, ttl)
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return fmt.Errorf("job %s: %w", j.name, ErrLocked)
		}
		s.log.Error("job not run: cannot take its lock", "job", j.name, "err", err)
		return fmt.Errorf("job %s: take lock: %w", j.name, err)
	}
	jctx, cancel := context.WithCancelCause(ctx)
	if !tick.IsZero() {
		jctx = context.WithValue(jctx, tickKey{}, tick)
	}
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
				if err := lock.Refresh(jctx, ttl); err != nil {
					if jctx.Err() == nil {
						s.log.Error("job cancelled: its lock could not be renewed", "job", j.name, "err", err)
						cancel(fmt.Errorf("job %s lost its lock: %w", j.name, err))
					}
					return
				}
			}
		}
	}()

	start := time.Now()
	s.log.Debug("job started", "job", j.name)
	err = j.fn(jctx)
	if err == nil && jctx.Err() != nil {
		err = context.Cause(jctx)
	}
	cancel(nil)
	<-renewDone
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if rerr := lock.Release(rctx); rerr != nil {
		s.log.Warn("job lock release failed; it expires by itself", "job", j.name, "err", rerr)
	}
	rcancel()
	if err != nil {
		s.log.Error("job failed", "job", j.name, "err", err, "duration", time.Since(start))
		if s.events != nil {
			ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.events.AddEvent(ectx, "failure", "", fmt.Sprintf("job %s failed: %v", j.name, err))
			ecancel()
		}
		return err
	}
	s.log.Debug("job finished", "job", j.name, "duration", time.Since(start))
	return nil
}

// cronLogger sends cron's own messages to slog; its Info lines ("skip",
// "schedule") are debug noise.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
