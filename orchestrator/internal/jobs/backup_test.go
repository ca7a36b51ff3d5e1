package jobs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/prestart"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// lifecycle.archive.timezone decides when 0 3 * * * is, in winter and in
// summer time, for the archive and for the other schedules.
func TestSchedulesRunInTheConfiguredZone(t *testing.T) {
	j, _, _ := newTestJobsWith(t, func(c *config.Config) {
		c.Lifecycle.Archive.Timezone = "Europe/Berlin"
		c.Lifecycle.Snapshot.Schedule = "30 3 * * *"
	})
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		job       string
		after     time.Time
		want      time.Time
		wantLocal string
	}{
		// 02:30 in Berlin (CET, UTC+1): the next 03:00 there is 02:00 UTC.
		{jobArchive, time.Date(2026, 12, 4, 1, 30, 0, 0, time.UTC), time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC), "03:00 CET"},
		// In summer (CEST, UTC+2) it is 01:00 UTC.
		{jobArchive, time.Date(2026, 7, 1, 0, 30, 0, 0, time.UTC), time.Date(2026, 7, 1, 1, 0, 0, 0, time.UTC), "03:00 CEST"},
		// 03:00 UTC has passed 03:00 Berlin: next day.
		{jobArchive, time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC), time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC), "03:00 CET"},
		{jobSnapshot, time.Date(2026, 12, 4, 1, 30, 0, 0, time.UTC), time.Date(2026, 12, 4, 2, 30, 0, 0, time.UTC), "03:30 CET"},
	}
	for _, tt := range tests {
		got, ok := j.sched.Next(tt.job, tt.after)
		if !ok {
			t.Fatalf("%s is not scheduled", tt.job)
		}
		if !got.Equal(tt.want) || got.Format("15:04 MST") != tt.wantLocal {
			t.Errorf("%s after %s: next run %s, want %s (%s)", tt.job, tt.after, got, tt.want, tt.wantLocal)
		}
	}

	// Lecture pre-starts follow the same zone: 10:15 in Berlin.
	if err := j.prestart.Put(t.Context(), prestart.Schedule{Name: "monday", Cron: "15 10 * * 1"}); err != nil {
		t.Fatal(err)
	}
	views, err := j.prestart.List(t.Context())
	if err != nil || len(views) != 1 {
		t.Fatalf("pre-start schedules %+v, %v", views, err)
	}
	if got := views[0].NextLecture.In(berlin); got.Weekday() != time.Monday || got.Format("15:04") != "10:15" {
		t.Errorf("next lecture %s, want a Monday 10:15 in Berlin", got)
	}

	// Without a zone, the same schedule is read in the machine's zone.
	local, _, _ := newTestJobsWith(t, func(*config.Config) {})
	after := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	got, _ := local.sched.Next(jobArchive, after)
	if l := got.In(time.Local); l.Hour() != 3 || l.Minute() != 0 {
		t.Errorf("default zone: next archive run %s, want 03:00 in %s", l, time.Local)
	}
}

// The snapshot job, run under its lock like a scheduled run, writes into
// redis/ of the archive directory, here a second directory.
func TestSnapshotJobWritesNextToTheArchives(t *testing.T) {
	dir := t.TempDir()
	j, root, st := newTestJobsWith(t, func(c *config.Config) { c.Lifecycle.Archive.Dir = dir })
	ctx := t.Context()
	if err := st.PutUser(ctx, store.User{Name: "ann"}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "users", "ann"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := j.sched.Trigger(ctx, jobSnapshot); err != nil {
		t.Fatal(err)
	}
	list, err := j.backup.List(ctx)
	if err != nil || len(list) != 1 || list[0].Kinds["user"] != 1 {
		t.Fatalf("snapshots %+v, %v; want one holding ann", list, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "redis", list[0].File)); err != nil {
		t.Errorf("snapshot not in %s/redis: %v", dir, err)
	}
	// The archive run goes to the same directory and ignores redis/.
	if err := j.sched.Trigger(ctx, jobArchive); err != nil {
		t.Fatal(err)
	}
	runs, err := j.Archiver().Runs(ctx)
	if err != nil || len(runs) != 1 || !runs[0].Complete {
		t.Fatalf("archive runs %+v, %v; want one complete run", runs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, runs[0].Run, "ann.tar.gz")); err != nil {
		t.Errorf("ann's archive not in %s: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join(root, "archives")); !os.IsNotExist(err) {
		t.Errorf("archives/ created under the storage root (err=%v)", err)
	}
}
