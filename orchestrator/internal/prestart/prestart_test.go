package prestart_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/prestart"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

// members is the group table; "" lists every allowed user.
type members map[string][]string

func (m members) Members(_ context.Context, group string) ([]string, error) {
	us, ok := m[group]
	if !ok {
		return nil, fmt.Errorf("no such group: %q", group)
	}
	return us, nil
}

// starter records each start at the fake clock's time; running users are
// not started again, blocked ones are refused.
type starter struct {
	mu      sync.Mutex
	clock   *testsupport.Clock
	running map[string]bool
	blocked map[string]bool
	starts  []start
}

type start struct {
	user string
	at   time.Time
}

func (s *starter) StartServer(_ context.Context, user string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked[user] {
		return false, errors.New(user + " is blocked")
	}
	if s.running[user] {
		return false, nil
	}
	s.running[user] = true
	s.starts = append(s.starts, start{user, s.clock.Now()})
	return true, nil
}

func (s *starter) started() []start {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.starts)
}

type capacity struct {
	st    *starter
	total int
}

func (c capacity) Free(context.Context) (int, error) {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.total - len(c.st.running), nil
}

type events struct {
	mu   sync.Mutex
	msgs []string
}

func (e *events) AddEvent(_ context.Context, kind, _, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.msgs = append(e.msgs, kind+": "+msg)
}

// monday0929 is 31 minutes before a Monday 10:00 lecture.
var monday0929 = time.Date(2026, 12, 7, 9, 29, 0, 0, time.Local)

type fixture struct {
	st     *store.Store
	clock  *testsupport.Clock
	start  *starter
	events *events
	groups members
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		st:     store.New(testenv.RedisClient(t), "test:"),
		clock:  testsupport.NewClock(monday0929),
		events: &events{},
		groups: members{"": {"alice", "bob", "carol", "dave", "eve"}, "cs101": {"carol", "alice", "bob"}},
	}
	f.start = &starter{clock: f.clock, running: map[string]bool{}, blocked: map[string]bool{}}
	return f
}

// runner builds a Runner whose sleeps advance the fake clock.
func (f *fixture) runner(o prestart.Options) *prestart.Runner {
	o.Clock = f.clock.Now
	o.Sleep = func(_ context.Context, d time.Duration) error { f.clock.Advance(d); return nil }
	o.Events = f.events
	return prestart.New(f.st, f.groups, f.start, o)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestScheduleFiresOnceForItsGroupAtItsRate(t *testing.T) {
	ctx := ctxFor(t)
	f := newFixture(t)
	r := f.runner(prestart.Options{})
	if err := r.Put(ctx, prestart.Schedule{Name: "cs101-monday", Cron: "0 10 * * 1", Group: "cs101", Lead: 30 * time.Minute, RatePerMinute: 30}); err != nil {
		t.Fatal(err)
	}
	v, err := r.Get(ctx, "cs101-monday")
	if err != nil {
		t.Fatal(err)
	}
	lecture := time.Date(2026, 12, 7, 10, 0, 0, 0, time.Local)
	if !v.NextLecture.Equal(lecture) || !v.NextStart.Equal(lecture.Add(-30*time.Minute)) {
		t.Fatalf("next lecture %v, next start %v; want %v and 30 minutes before", v.NextLecture, v.NextStart, lecture)
	}

	// 09:29: not yet.
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.start.started(); len(got) != 0 {
		t.Fatalf("started before the lead: %v", got)
	}
	// 09:30: the group's servers, in name order, 2 s apart (30 a minute).
	f.start.running["bob"] = true // bob came early
	f.clock.Advance(time.Minute)
	t0 := f.clock.Now()
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	want := []start{{"alice", t0}, {"carol", t0.Add(2 * time.Second)}}
	if got := f.start.started(); !slices.Equal(got, want) {
		t.Fatalf("starts = %v, want %v", got, want)
	}
	// A second tick (or another replica, or a restarted orchestrator)
	// before the lecture does not start anything again.
	f.clock.Advance(5 * time.Minute)
	if err := f.runner(prestart.Options{}).Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.start.started(); len(got) != 2 {
		t.Fatalf("fired twice for one lecture: %v", got)
	}
	// The culler spares the started and the already running servers until
	// the grace (default 30 min) after the lecture begins, then no more.
	spared, err := r.Spared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if !spared[u].Equal(lecture.Add(prestart.DefaultGrace)) {
			t.Errorf("spared[%s] = %v, want %v", u, spared[u], lecture.Add(prestart.DefaultGrace))
		}
	}
	if _, ok := spared["dave"]; ok {
		t.Error("dave is not in cs101 but is spared")
	}
	f.clock.Advance(lecture.Add(prestart.DefaultGrace).Sub(f.clock.Now()) + time.Second)
	if spared, err := r.Spared(ctx); err != nil || len(spared) != 0 {
		t.Errorf("after the grace: spared = %v, %v", spared, err)
	}
	// The next run is a week later, and the event says what happened.
	v, err = r.Get(ctx, "cs101-monday")
	if err != nil {
		t.Fatal(err)
	}
	if want := lecture.AddDate(0, 0, 7); !v.NextLecture.Equal(want) || !v.LastLecture.Equal(lecture) {
		t.Errorf("after the run: next %v (want %v), last fired for %v", v.NextLecture, want, v.LastLecture)
	}
	if len(f.events.msgs) != 1 || !strings.Contains(f.events.msgs[0], "started 2 servers of group cs101, 1 already running") {
		t.Errorf("events = %q", f.events.msgs)
	}
}

func TestRunSkipsBlockedAndWhatDoesNotFit(t *testing.T) {
	ctx := ctxFor(t)
	f := newFixture(t)
	f.start.blocked["bob"] = true
	r := f.runner(prestart.Options{Capacity: capacity{f.start, 2}})
	rep, err := r.Run(ctx, prestart.Schedule{Name: "all", Times: []string{"2026-12-07 10:00"}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Started, []string{"alice", "carol"}) {
		t.Errorf("started %v, want alice and carol (bob is blocked, then the cluster is full)", rep.Started)
	}
	if !strings.Contains(rep.Skipped["bob"], "blocked") || rep.Skipped["dave"] != "the cluster is full" || rep.Skipped["eve"] != "the cluster is full" {
		t.Errorf("skipped = %v", rep.Skipped)
	}
	// A start-all without a lecture spares nobody.
	if spared, err := r.Spared(ctx); err != nil || len(spared) != 0 {
		t.Errorf("spared = %v, %v", spared, err)
	}
	// An unknown group is reported, not silently empty.
	if _, err := r.Run(ctx, prestart.Schedule{Name: "x", Times: []string{"2026-12-07 10:00"}, Group: "nope"}, time.Time{}); err == nil || !strings.Contains(err.Error(), "no such group") {
		t.Errorf("unknown group: err = %v", err)
	}
}

func TestTimesListAndMissedLecture(t *testing.T) {
	ctx := ctxFor(t)
	f := newFixture(t)
	r := f.runner(prestart.Options{})
	// 09:00 has begun already at 09:29 (missed: its students start their
	// own); 09:45 is 16 minutes away, inside the 20-minute lead.
	s := prestart.Schedule{Name: "exam", Times: []string{"2026-12-07 09:00", "2026-12-07T09:45"}, Group: "cs101", Lead: 20 * time.Minute}
	if err := r.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.start.started(); len(got) != 3 {
		t.Fatalf("starts = %v, want cs101's three", got)
	}
	f.clock.Advance(time.Hour)
	v, err := r.Get(ctx, "exam")
	if err != nil || !v.NextLecture.IsZero() {
		t.Errorf("no lecture left: next = %v, %v", v.NextLecture, err)
	}
	if err := r.Delete(ctx, "exam"); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "exam"); !errors.Is(err, prestart.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
}

func TestBadSchedulesNameTheField(t *testing.T) {
	ctx := ctxFor(t)
	f := newFixture(t)
	r := f.runner(prestart.Options{})
	for _, tt := range []struct {
		name  string
		s     prestart.Schedule
		field string
	}{
		{"no time", prestart.Schedule{Name: "a"}, "cron"},
		{"both", prestart.Schedule{Name: "a", Cron: "0 10 * * 1", Times: []string{"2026-12-07 10:00"}}, "times"},
		{"bad cron", prestart.Schedule{Name: "a", Cron: "0 25 * * 1"}, "cron"},
		{"bad time", prestart.Schedule{Name: "a", Times: []string{"monday 10am"}}, "times[0]"},
		{"bad name", prestart.Schedule{Name: "a/b", Cron: "0 10 * * 1"}, "name"},
		{"negative lead", prestart.Schedule{Name: "a", Cron: "0 10 * * 1", Lead: -time.Minute}, "lead"},
		{"rate", prestart.Schedule{Name: "a", Cron: "0 10 * * 1", RatePerMinute: -1}, "rate_per_minute"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Put(ctx, tt.s)
			var inv *prestart.InvalidError
			if !errors.As(err, &inv) || inv.Problems[0].Field != tt.field {
				t.Fatalf("err = %v, want a problem in %s", err, tt.field)
			}
		})
	}
	if all, err := r.List(ctx); err != nil || len(all) != 0 {
		t.Errorf("invalid schedules were stored: %v, %v", all, err)
	}
	// JSON: durations as strings, unknown fields refused.
	var s prestart.Schedule
	if err := json.Unmarshal([]byte(`{"name":"a","cron":"0 10 * * 1","lead":"45m","grace":"1h"}`), &s); err != nil || s.Lead != 45*time.Minute || s.Grace != time.Hour {
		t.Errorf("decode: %+v, %v", s, err)
	}
	if err := json.Unmarshal([]byte(`{"name":"a","cron":"0 10 * * 1","lead_time":"45m"}`), &s); err == nil {
		t.Error("unknown field lead_time accepted")
	}
	if err := json.Unmarshal([]byte(`{"name":"a","cron":"0 10 * * 1","lead":"soon"}`), &s); err == nil || !strings.Contains(err.Error(), "lead") {
		t.Errorf("bad duration: %v", err)
	}
}
