package prestart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Store keeps the schedules (as JSON documents), the lecture each last
// fired for, and the spared servers; store.Store satisfies it.
type Store interface {
	Prestarts(ctx context.Context) (map[string][]byte, error)
	PutPrestart(ctx context.Context, name string, doc []byte) error
	DeletePrestart(ctx context.Context, name string) error
	PrestartFired(ctx context.Context, name string) (time.Time, error)
	MarkPrestartFired(ctx context.Context, name string, lecture time.Time) error
	SpareServer(ctx context.Context, user string, until time.Time) error
	SparedServers(ctx context.Context, now time.Time) (map[string]time.Time, error)
}

// Members lists whose servers a schedule starts: a group's members, or
// with group "" every allowed user. An unknown group is an error.
type Members interface {
	Members(ctx context.Context, group string) ([]string, error)
}

// Starter starts one user's server the way an admin's start does (current
// image, instructor environment, blocked users refused). started is false
// when the server was already running or starting.
type Starter interface {
	StartServer(ctx context.Context, user string) (started bool, err error)
}

// Capacity says how many more servers the cluster can take now.
type Capacity interface {
	Free(ctx context.Context) (int, error)
}

// EventSink records what a run did (the lifecycle event sink).
type EventSink interface {
	AddEvent(ctx context.Context, kind, user, message string)
}

// ErrNotFound is returned for an unknown schedule name.
var ErrNotFound = errors.New("no such pre-start schedule")

// Options configures a Runner.
type Options struct {
	// Capacity, when set, stops a run once the cluster is full.
	Capacity Capacity
	Events   EventSink
	Clock    func() time.Time
	// Sleep waits between starts (tests pass a fake clock's).
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

// Runner fires the schedules; Tick is its periodic job.
type Runner struct {
	st      Store
	members Members
	start   Starter
	o       Options
	log     *slog.Logger
}

// New returns a Runner.
func New(st Store, members Members, start Starter, o Options) *Runner {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{st: st, members: members, start: start, o: o, log: o.Logger}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// View is a schedule with what the dashboard shows about it.
type View struct {
	Schedule
	NextLecture time.Time `json:"-"`
	NextStart   time.Time `json:"-"` // NextLecture - Lead
	LastLecture time.Time `json:"-"` // the lecture it last fired for
}

// MarshalJSON flattens the schedule and adds the times (RFC 3339, omitted
// when zero).
func (v View) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(v.Schedule)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, t := range map[string]time.Time{"next_lecture": v.NextLecture, "next_start": v.NextStart, "last_fired_for": v.LastLecture} {
		if !t.IsZero() {
			m[k] = t.Format(time.RFC3339)
		}
	}
	return json.Marshal(m)
}

// List returns every schedule, sorted by name, with its next run.
func (r *Runner) List(ctx context.Context) ([]View, error) {
	scheds, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	now := r.o.Clock()
	out := make([]View, 0, len(scheds))
	for _, s := range scheds {
		n := s.Normalized()
		v := View{Schedule: s, NextLecture: n.NextLecture(now)}
		if !v.NextLecture.IsZero() {
			v.NextStart = v.NextLecture.Add(-n.Lead)
		}
		if v.LastLecture, err = r.st.PrestartFired(ctx, s.Name); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Get returns one schedule.
func (r *Runner) Get(ctx context.Context, name string) (View, error) {
	all, err := r.List(ctx)
	if err != nil {
		return View{}, err
	}
	for _, v := range all {
		if v.Name == name {
			return v, nil
		}
	}
	return View{}, fmt.Errorf("%w: %q", ErrNotFound, name)
}

// InvalidError lists what is wrong with a schedule.
type InvalidError struct{ Problems []*FieldError }

func (e *InvalidError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid pre-start schedule: " + strings.Join(msgs, "; ")
}

// Put validates and stores a schedule (replacing one of the same name).
func (r *Runner) Put(ctx context.Context, s Schedule) error {
	if probs := s.Validate(); len(probs) > 0 {
		return &InvalidError{Problems: probs}
	}
	doc, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode schedule: %w", err)
	}
	return r.st.PutPrestart(ctx, s.Name, doc)
}

// Delete removes a schedule.
func (r *Runner) Delete(ctx context.Context, name string) error {
	docs, err := r.st.Prestarts(ctx)
	if err != nil {
		return err
	}
	if _, ok := docs[name]; !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return r.st.DeletePrestart(ctx, name)
}

// load reads the stored schedules; a document that no longer decodes (an
// older format) is logged and left out rather than stopping the others.
func (r *Runner) load(ctx context.Context) ([]Schedule, error) {
	docs, err := r.st.Prestarts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Schedule, 0, len(docs))
	for name, doc := range docs {
		var s Schedule
		if err := json.Unmarshal(doc, &s); err != nil {
			r.log.Error("pre-start schedule unreadable; re-create it", "schedule", name, "err", err)
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Tick fires every schedule whose next lecture is less than its lead away
// and that has not fired for that lecture yet. A lecture already begun is
// not pre-started (its students start their own servers). The scheduler
// runs Tick under a lock, so with several replicas each lecture fires once.
func (r *Runner) Tick(ctx context.Context) error {
	scheds, err := r.load(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range scheds {
		s = s.Normalized()
		now := r.o.Clock()
		lecture := s.NextLecture(now)
		if lecture.IsZero() || now.Before(lecture.Add(-s.Lead)) {
			continue
		}
		fired, err := r.st.PrestartFired(ctx, s.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !fired.Before(lecture.Truncate(time.Second)) {
			continue
		}
		if err := r.st.MarkPrestartFired(ctx, s.Name, lecture); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := r.Run(ctx, s, lecture); err != nil {
			errs = append(errs, fmt.Errorf("pre-start %s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Report says what one run did.
type Report struct {
	Schedule       string            `json:"schedule,omitempty"`
	Group          string            `json:"group"`
	Lecture        time.Time         `json:"lecture,omitzero"`
	Started        []string          `json:"started"`
	AlreadyRunning []string          `json:"already_running"`
	Skipped        map[string]string `json:"skipped"` // user -> why
}

// Run starts s's servers now for lecture (zero: a start-all with no
// lecture, whose servers are not spared), paced at s's rate.
func (r *Runner) Run(ctx context.Context, s Schedule, lecture time.Time) (Report, error) {
	s = s.Normalized()
	rep := Report{Schedule: s.Name, Group: s.Group, Lecture: lecture, Started: []string{}, AlreadyRunning: []string{}, Skipped: map[string]string{}}
	users, err := r.members.Members(ctx, s.Group)
	if err != nil {
		r.event(ctx, rep, err)
		return rep, err
	}
	users = slices.Clone(users)
	slices.Sort(users)
	interval := time.Minute / time.Duration(s.RatePerMinute)
	full := false
	for _, u := range users {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if full {
			rep.Skipped[u] = "the cluster is full"
			continue
		}
		if r.o.Capacity != nil {
			free, err := r.o.Capacity.Free(ctx)
			if err == nil && free <= 0 {
				full = true
				rep.Skipped[u] = "the cluster is full"
				continue
			}
		}
		started, err := r.start.StartServer(ctx, u)
		switch {
		case err != nil:
			rep.Skipped[u] = err.Error()
			continue
		case started:
			rep.Started = append(rep.Started, u)
		default:
			rep.AlreadyRunning = append(rep.AlreadyRunning, u)
		}
		if !lecture.IsZero() {
			if err := r.st.SpareServer(ctx, u, lecture.Add(s.Grace)); err != nil {
				r.log.Warn("pre-start: could not spare server from culling", "user", u, "err", err)
			}
		}
		if started {
			if err := r.o.Sleep(ctx, interval); err != nil {
				return rep, err
			}
		}
	}
	r.event(ctx, rep, nil)
	return rep, nil
}

func (r *Runner) event(ctx context.Context, rep Report, err error) {
	who := "group " + rep.Group
	if rep.Group == "" {
		who = "every allowed user"
	}
	var msg string
	switch {
	case err != nil:
		msg = fmt.Sprintf("pre-start %s for %s failed: %v", rep.Schedule, who, err)
	default:
		msg = fmt.Sprintf("started %d servers of %s, %d already running, %d skipped", len(rep.Started), who, len(rep.AlreadyRunning), len(rep.Skipped))
		if rep.Schedule != "" {
			msg = fmt.Sprintf("pre-start %s for the lecture at %s: %s", rep.Schedule, rep.Lecture.Format("2006-01-02 15:04 MST"), msg)
		}
		if len(rep.Skipped) > 0 {
			var why []string
			for _, u := range slices.Sorted(maps.Keys(rep.Skipped)) {
				why = append(why, u+": "+rep.Skipped[u])
				if len(why) == 10 {
					why = append(why, "...")
					break
				}
			}
			msg += " (" + strings.Join(why, "; ") + ")"
		}
	}
	r.log.Info("pre-start", "schedule", rep.Schedule, "group", rep.Group, "started", len(rep.Started),
		"already_running", len(rep.AlreadyRunning), "skipped", len(rep.Skipped), "err", err)
	if r.o.Events != nil {
		r.o.Events.AddEvent(ctx, "prestart", "", msg)
	}
}

// Spared is the culler's view: users whose servers it must leave alone,
// and until when.
func (r *Runner) Spared(ctx context.Context) (map[string]time.Time, error) {
	return r.st.SparedServers(ctx, r.o.Clock())
}
