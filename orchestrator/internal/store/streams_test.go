package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestProgress(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)

	steps := []store.Progress{
		{Progress: 10, Message: "Service created"},
		{Progress: 50, Message: "Task running"},
		{Progress: 100, Message: "Ready", Ready: true, URL: "/user/alice/"},
	}
	for _, p := range steps {
		if err := s.AddProgress(ctx, "alice", p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ReadProgress(ctx, "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("ReadProgress = %+v, want 3 entries", got)
	}
	for i := range got {
		want := steps[i]
		want.ID = got[i].ID
		if got[i].ID == "" || !reflect.DeepEqual(got[i], want) {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want)
		}
	}
	rest, err := s.ReadProgress(ctx, "alice", got[1].ID, 0)
	if err != nil || len(rest) != 1 || rest[0].ID != got[2].ID {
		t.Errorf("ReadProgress after the second entry = %+v, %v; want the third", rest, err)
	}
	if ttl := rdb.PTTL(ctx, prefix+"progress:alice").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("progress stream TTL %s, want in (0, 1h]", ttl)
	}

	// Blocking read: returns the next entry, whether it is added before or
	// after the read starts.
	result := make(chan []store.Progress, 1)
	go func() {
		ps, err := s.ReadProgress(ctx, "alice", got[2].ID, 30*time.Second)
		if err != nil {
			t.Error(err)
		}
		result <- ps
	}()
	failed := store.Progress{Progress: 100, Message: "boom", Failed: true}
	if err := s.AddProgress(ctx, "alice", failed); err != nil {
		t.Fatal(err)
	}
	select {
	case ps := <-result:
		if len(ps) != 1 || !ps[0].Failed || ps[0].Message != "boom" {
			t.Errorf("blocking read = %+v, want the failure", ps)
		}
	case <-ctx.Done():
		t.Fatal("blocking read did not return")
	}

	// Nothing new: a short blocking read returns empty.
	last, _ := s.ReadProgress(ctx, "alice", "", 0)
	if ps, err := s.ReadProgress(ctx, "alice", last[len(last)-1].ID, 20*time.Millisecond); err != nil || len(ps) != 0 {
		t.Errorf("blocking read with nothing new = %+v, %v", ps, err)
	}

	if err := s.ResetProgress(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if ps, err := s.ReadProgress(ctx, "alice", "", 0); err != nil || len(ps) != 0 {
		t.Errorf("after reset = %+v, %v", ps, err)
	}
	if _, err := s.ReadProgress(ctx, "alice", "x)", 0); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

func TestProgressStreamIsCapped(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	for i := range 500 {
		if err := s.AddProgress(ctx, "alice", store.Progress{Progress: i}); err != nil {
			t.Fatal(err)
		}
	}
	// MAXLEN ~ trims whole nodes: a little over 100 may remain.
	if n := rdb.XLen(ctx, prefix+"progress:alice").Val(); n < 100 || n >= 500 {
		t.Errorf("progress stream holds %d entries, want about 100", n)
	}
}

func TestActivityKeepsTheLatestTime(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	if err := s.RecordActivity(ctx, map[string]time.Time{"alice": t0.Add(time.Minute), "bob": t0}); err != nil {
		t.Fatal(err)
	}
	// A replica flushing an older batch must not move alice back.
	if err := s.RecordActivity(ctx, map[string]time.Time{"alice": t0, "bob": t0.Add(2 * time.Minute), "carol": t0}); err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"alice": t0.Add(time.Minute), "bob": t0.Add(2 * time.Minute), "carol": t0}
	got, err := s.Activity(ctx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Activity = %v, %v; want %v", got, err, want)
	}

	// Concurrent flushes: the result is the maximum of everything sent.
	latest := map[string]time.Time{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := map[string]time.Time{}
			for u := range 20 {
				batch[fmt.Sprintf("user%d", u)] = t0.Add(time.Duration(rand.IntN(1_000_000)) * time.Millisecond)
			}
			mu.Lock()
			for u, ts := range batch {
				if ts.After(latest[u]) {
					latest[u] = ts
				}
			}
			mu.Unlock()
			if err := s.RecordActivity(ctx, batch); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err = s.Activity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for u, ts := range latest {
		if !got[u].Equal(ts) {
			t.Errorf("activity of %s = %s, want the latest %s", u, got[u], ts)
		}
	}

	if err := s.DeleteActivity(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Activity(ctx); !got["carol"].IsZero() {
		t.Error("carol's activity survived DeleteActivity")
	}
}

func TestEventsPageNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clk := newClock()
	s, _ := newStore(t, store.WithClock(clk.Now))
	for i := range 25 {
		clk.Advance(time.Second)
		if err := s.AddEvent(ctx, store.Event{Kind: "login", User: fmt.Sprintf("user%02d", i), Actor: "ldap", Message: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	var all []store.Event
	before := ""
	for page := 0; ; page++ {
		evs, err := s.Events(ctx, before, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		if page > 3 {
			t.Fatal("paging does not end")
		}
		all = append(all, evs...)
		before = evs[len(evs)-1].ID
	}
	if len(all) != 25 {
		t.Fatalf("paged through %d events, want 25", len(all))
	}
	for i, e := range all {
		wantUser := fmt.Sprintf("user%02d", 24-i)
		if e.User != wantUser || e.Kind != "login" || e.Actor != "ldap" || e.Message != "ok" {
			t.Errorf("event %d = %+v, want user %s", i, e, wantUser)
		}
		if i > 0 && !e.Time.Before(all[i-1].Time) {
			t.Errorf("event %d at %s is not older than the one before (%s)", i, e.Time, all[i-1].Time)
		}
	}
	if evs, err := s.Events(ctx, "", 0); err != nil || len(evs) != 25 {
		t.Errorf("Events with the default limit = %d events, %v", len(evs), err)
	}
	if _, err := s.Events(ctx, "not-an-id", 10); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

func TestEventsStreamIsCapped(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	for range 10_500 {
		if err := s.AddEvent(ctx, store.Event{Kind: "spawn"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.XLen(ctx, prefix+"events").Val(); n < 10_000 || n >= 10_500 {
		t.Errorf("events stream holds %d entries, want about 10000", n)
	}
}
