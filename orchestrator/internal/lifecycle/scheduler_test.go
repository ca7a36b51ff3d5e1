package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/lifecycle"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

func TestTriggerHoldsTheJobLockAcrossSchedulers(t *testing.T) {
	locker := newMemLocker()
	started := make(chan struct{})
	release := make(chan struct{})
	runs := 0
	job := func(ctx context.Context) error {
		runs++
		if runs == 1 {
			close(started)
			<-release
		}
		return nil
	}
	a := lifecycle.NewScheduler(locker, nil, lifecycle.SchedulerOptions{})
	b := lifecycle.NewScheduler(locker, nil, lifecycle.SchedulerOptions{})
	for _, s := range []*lifecycle.Scheduler{a, b} {
		if err := s.Add("archive", "off", job); err != nil {
			t.Fatal(err)
		}
	}
	first := make(chan error, 1)
	go func() { first <- a.Trigger(t.Context(), "archive") }()
	<-started
	if err := b.Trigger(t.Context(), "archive"); !errors.Is(err, lifecycle.ErrLocked) {
		t.Errorf("Trigger on the second replica while the first runs: err = %v, want ErrLocked", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first Trigger: %v", err)
	}
	if locker.isHeld("lifecycle:archive") {
		t.Error("lock still held after the job finished")
	}
	if err := b.Trigger(t.Context(), "archive"); err != nil {
		t.Errorf("Trigger after the first run finished: %v", err)
	}
	if runs != 2 {
		t.Errorf("job ran %d times, want 2", runs)
	}
}

func TestLostLockCancelsTheJob(t *testing.T) {
	locker := newMemLocker()
	locker.refreshErr = errors.New("lock taken over")
	events := &eventLog{}
	s := lifecycle.NewScheduler(locker, events, lifecycle.SchedulerOptions{LockTTL: 30 * time.Millisecond})
	if err := s.Add("cull", "off", func(ctx context.Context) error {
		<-ctx.Done() // a long job, stopped only by the lost lock
		return context.Cause(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	err := s.Trigger(t.Context(), "cull")
	if err == nil || !strings.Contains(err.Error(), "lost its lock") {
		t.Fatalf("Trigger: err = %v, want the job cancelled for a lost lock", err)
	}
	ev := events.all()
	if len(ev) != 1 || ev[0].Kind != "failure" || !strings.Contains(ev[0].Message, "cull") {
		t.Errorf("events = %+v, want one failure event naming the job", ev)
	}
}

func TestRenewalKeepsTheLock(t *testing.T) {
	locker := newMemLocker()
	locker.refreshed = make(chan string, 1)
	s := lifecycle.NewScheduler(locker, nil, lifecycle.SchedulerOptions{LockTTL: 30 * time.Millisecond})
	if err := s.Add("archive", "off", func(ctx context.Context) error {
		// Finish only after two renewals went through.
		for range 2 {
			select {
			case <-locker.refreshed:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Trigger(t.Context(), "archive"); err != nil {
		t.Fatalf("Trigger: %v", err)
	}
}

func TestStopCancelsRunningJobs(t *testing.T) {
	s := lifecycle.NewScheduler(newMemLocker(), nil, lifecycle.SchedulerOptions{})
	started := make(chan struct{})
	if err := s.Add("archive", "off", func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	s.Start(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Trigger(context.Background(), "archive") }()
	<-started
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("job ended with %v, want context.Canceled", err)
	}
}

func TestAddAndTriggerErrors(t *testing.T) {
	s := lifecycle.NewScheduler(newMemLocker(), nil, lifecycle.SchedulerOptions{})
	noop := func(context.Context) error { return nil }
	if err := s.Add("cull", "every minute", noop); err == nil {
		t.Error("Add accepted an invalid schedule")
	}
	if err := s.Add("cull", "@every 1m", noop); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := s.Add("cull", "@every 1m", noop); err == nil {
		t.Error("Add accepted a duplicate name")
	}
	if err := s.Trigger(t.Context(), "nope"); !errors.Is(err, lifecycle.ErrUnknownJob) {
		t.Errorf("Trigger(nope): err = %v, want ErrUnknownJob", err)
	}
}

func TestTwoReplicasRunEachTickOnce(t *testing.T) {
	rdb := testenv.RedisClient(t)
	// Two replicas: two stores on one Redis, as two orchestrators would be.
	lockerA := lifecycle.LockerFunc(store.New(rdb, "swarmhub-test:").Lock, store.ErrLocked)
	lockerB := lifecycle.LockerFunc(store.New(rdb, "swarmhub-test:").Lock, store.ErrLocked)

	const wantTicks = 3
	var (
		mu    sync.Mutex
		runs  = map[time.Time][]string{}
		ticks = make(chan struct{}, 100)
	)
	job := func(replica string) func(context.Context) error {
		return func(ctx context.Context) error {
			tick, ok := lifecycle.Tick(ctx)
			if !ok {
				return errors.New("scheduled run without a tick")
			}
			mu.Lock()
			runs[tick] = append(runs[tick], replica)
			first := len(runs[tick]) == 1
			mu.Unlock()
			if first {
				ticks <- struct{}{}
			}
			return nil
		}
	}
	var scheds []*lifecycle.Scheduler
	for i, name := range []string{"replica-a", "replica-b"} {
		s := lifecycle.NewScheduler([]lifecycle.Locker{lockerA, lockerB}[i], nil, lifecycle.SchedulerOptions{LockTTL: 5 * time.Second})
		if err := s.Add("cull", "@every 1s", job(name)); err != nil {
			t.Fatal(err)
		}
		scheds = append(scheds, s)
	}
	for _, s := range scheds {
		s.Start(t.Context())
	}
	for range wantTicks {
		<-ticks
	}
	for _, s := range scheds {
		if err := s.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for tick, who := range runs {
		if len(who) != 1 {
			t.Errorf("tick %s ran %d times (%v), want once", tick.Format(time.TimeOnly), len(who), who)
		}
	}
	t.Logf("runs per tick: %s", fmt.Sprint(runs))
}

// A schedule is read in SchedulerOptions.Location: 0 3 * * * in Tokyo
// (UTC+9, no summer time) is 18:00 UTC the day before.
func TestScheduleInLocation(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	s := lifecycle.NewScheduler(newMemLocker(), nil, lifecycle.SchedulerOptions{Location: tokyo})
	noop := func(context.Context) error { return nil }
	if err := s.Add("archive", "0 3 * * *", noop); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("manual", "off", noop); err != nil {
		t.Fatal(err)
	}
	got, ok := s.Next("archive", time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC); !ok || !got.Equal(want) {
		t.Errorf("Next = %s, %v; want %s (03:00 in Tokyo)", got, ok, want)
	}
	if _, ok := s.Next("manual", time.Now()); ok {
		t.Error("Next reported a run for an unscheduled job")
	}
}
