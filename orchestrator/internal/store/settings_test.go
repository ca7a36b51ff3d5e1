package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestSettings(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	if _, err := s.GetSetting(ctx, "image"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unset setting: %v, want ErrNotFound", err)
	}
	if err := s.SetSetting(ctx, "image", "a:1"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSetting(ctx, "image"); v != "a:1" || err != nil {
		t.Fatalf("GetSetting = %q, %v; want a:1", v, err)
	}
	if err := s.SetSetting(ctx, "image", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSetting(ctx, "image"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cleared setting: %v, want ErrNotFound", err)
	}
}

func TestRunningSeriesKeepsOnePerMinuteFor24Hours(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	t0 := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	record := func(at time.Time, n int) {
		t.Helper()
		if err := s.RecordRunning(ctx, at, n); err != nil {
			t.Fatal(err)
		}
	}
	record(t0, 1)
	// A second replica sampling in the same minute replaces, not adds.
	record(t0.Add(10*time.Second), 2)
	record(t0.Add(time.Minute), 3)
	got, err := s.RunningSeries(ctx, t0.Add(-time.Hour))
	want := []store.Sample{{t0, 2}, {t0.Add(time.Minute), 3}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("series = %+v, %v; want %+v", got, err, want)
	}
	// A day later the first two minutes fall out of the window.
	record(t0.Add(24*time.Hour+90*time.Second), 7)
	got, _ = s.RunningSeries(ctx, time.Time{})
	if len(got) != 1 || got[0].Value != 7 {
		t.Fatalf("after 24h the series is %+v, want only the newest sample", got)
	}
	if n := rdb.ZCard(ctx, "test:series:running").Val(); n != 1 {
		t.Fatalf("zset holds %d entries, want 1", n)
	}
}
