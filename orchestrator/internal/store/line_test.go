package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestLineIsFirstComeFirstServedAndBounded(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	for i, u := range []string{"carol", "alice", "bob", "dave"} {
		p, err := s.JoinLine(ctx, u, "opts-"+u, false, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if p.Position != i || p.Length != i+1 {
			t.Fatalf("%s joined at %+v, want position %d of %d", u, p, i, i+1)
		}
	}
	// Joining again keeps the place and the first options.
	if p, err := s.JoinLine(ctx, "alice", "other", false, time.Minute); err != nil || p.Position != 1 {
		t.Fatalf("alice joined again at %+v (%v), want position 1", p, err)
	}

	got, err := s.AdmitFromLine(ctx, 2, 10, time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.LineEntry{{User: "carol", Options: "opts-carol"}, {User: "alice", Options: "opts-alice"}}
	if !slices.Equal(got, want) {
		t.Fatalf("admitted %+v, want %+v (the head, up to the bound)", got, want)
	}
	if more, _ := s.AdmitFromLine(ctx, 2, 10, time.Minute, time.Minute); len(more) != 0 {
		t.Fatalf("admitted %+v with the bound reached", more)
	}
	if p, in, _ := s.SeenInLine(ctx, "alice", time.Minute); !in || !p.Starting {
		t.Errorf("alice after admission: %+v in=%v, want starting", p, in)
	}
	if p, in, _ := s.SeenInLine(ctx, "dave", time.Minute); !in || p.Position != 1 || p.Length != 2 {
		t.Errorf("dave: %+v in=%v, want position 1 of 2", p, in)
	}
	// A start in flight that ends frees its place for the next in line.
	if err := s.EndStart(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	got, err = s.AdmitFromLine(ctx, 2, 10, time.Minute, time.Minute)
	if err != nil || len(got) != 1 || got[0].User != "bob" {
		t.Fatalf("after one start ended admitted %+v (%v), want bob", got, err)
	}
	waiting, starting, err := s.Line(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(waiting) != 1 || waiting[0].User != "dave" || waiting[0].Joined.IsZero() || waiting[0].Seen.IsZero() {
		t.Errorf("waiting %+v, want dave with join and seen times", waiting)
	}
	slices.Sort(starting)
	if !slices.Equal(starting, []string{"alice", "bob"}) {
		t.Errorf("starting %v, want alice and bob", starting)
	}
	if inFlight, err := s.StartsInFlight(ctx); err != nil || !slices.Equal(inFlight, starting) {
		t.Errorf("starts in flight %v (%v), want %v", inFlight, err, starting)
	}
	// Unbounded admission takes the whole line.
	if got, _ := s.AdmitFromLine(ctx, 0, 10, time.Minute, time.Minute); len(got) != 1 || got[0].User != "dave" {
		t.Errorf("unbounded admission %+v, want dave", got)
	}
}

func TestLineLeasesAndPresenceExpire(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	// A start whose replica stops refreshing its lease frees its place.
	if _, err := s.JoinLine(ctx, "crashed", "", false, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AdmitFromLine(ctx, 1, 1, 50*time.Millisecond, 0); err != nil || len(got) != 1 {
		t.Fatalf("admit: %+v, %v", got, err)
	}
	if _, err := s.JoinLine(ctx, "next", "", false, 0); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "the expired lease frees the bound", func() bool {
		got, err := s.AdmitFromLine(ctx, 1, 1, time.Minute, 0)
		return err == nil && len(got) == 1 && got[0].User == "next"
	})
	if ok, err := s.RefreshStart(ctx, "crashed", time.Minute); err != nil || ok {
		t.Errorf("refreshing an expired lease: %v, %v; want false", ok, err)
	}
	if ok, err := s.RefreshStart(ctx, "next", time.Minute); err != nil || !ok {
		t.Errorf("refreshing a live lease: %v, %v; want true", ok, err)
	}

	// A user who stops showing signs of life leaves the line; one who
	// keeps polling stays, and moves up.
	stale := 300 * time.Millisecond
	// A start nobody watches (scheduled) stays without signs of life.
	if _, err := s.JoinLine(ctx, "scheduled", "", true, stale); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"gone", "stays"} {
		if _, err := s.JoinLine(ctx, u, "", false, stale); err != nil {
			t.Fatal(err)
		}
	}
	eventually(ctx, t, "the silent user leaves", func() bool {
		p, in, err := s.SeenInLine(ctx, "stays", stale)
		return err == nil && in && p.Position == 1 && p.Length == 2
	})
	if _, in, _ := s.SeenInLine(ctx, "gone", stale); in {
		t.Error("the silent user is still in line")
	}
	waiting, _, err := s.Line(ctx, stale)
	if err != nil || len(waiting) != 2 || waiting[0].User != "scheduled" {
		t.Errorf("line %+v (%v), want the unattended start still at the head", waiting, err)
	}
}

func TestLineSurvivesANewStoreOnTheSameRedis(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)
	for _, u := range []string{"a", "b", "c"} {
		if _, err := s.JoinLine(ctx, u, "o", false, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	restarted := store.New(rdb, prefix)
	waiting, _, err := restarted.Line(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, e := range waiting {
		users = append(users, e.User)
	}
	if !slices.Equal(users, []string{"a", "b", "c"}) {
		t.Fatalf("a new instance sees %v, want a b c", users)
	}
	if err := restarted.LeaveLine(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := s.SeenInLine(ctx, "c", time.Minute); p.Position != 1 {
		t.Errorf("c after b left: %+v, want position 1", p)
	}
}

func TestStartDurationAverages(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	if d, err := s.StartDuration(ctx); err != nil || d != 0 {
		t.Fatalf("before any start: %s, %v", d, err)
	}
	for _, d := range []time.Duration{10 * time.Second, 20 * time.Second} {
		if err := s.RecordStartDuration(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := s.StartDuration(ctx); d != 13*time.Second {
		t.Errorf("average %s, want 13s (0.7×10s + 0.3×20s)", d)
	}
}
