package redisbackup_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/redisbackup"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

const prefix = "snaptest:"

func newBackup(t *testing.T, rdb redis.UniversalClient, dir string, keep int, clock *testsupport.Clock) *redisbackup.Backup {
	t.Helper()
	b, err := redisbackup.New(rdb, redisbackup.Options{Dir: dir, Prefix: prefix, Keep: keep, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newClock() *testsupport.Clock {
	return testsupport.NewClock(time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC))
}

// The whole path an operator relies on: snapshot, Redis lost, restore, and
// users, tokens, groups and events are back, read through the store.
func TestSnapshotWipeRestore(t *testing.T) {
	ctx := t.Context()
	rdb := testenv.RedisClient(t)
	st := store.New(rdb, prefix)
	for _, u := range []store.User{{Name: "ann", Admin: true, Allowed: true}, {Name: "bob", Allowed: true}} {
		if err := st.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	plain, tok, err := st.CreateToken(ctx, "ann", "grading script")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateGroup(ctx, "cs101"); err != nil {
		t.Fatal(err)
	}
	if err := st.AddGroupMembers(ctx, "cs101", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddEvent(ctx, store.Event{Time: time.Now().UTC(), Kind: "login", User: "bob", Message: "bob logged in"}); err != nil {
		t.Fatal(err)
	}
	// Another hub's keys and this hub's locks stay out of it.
	rdb.Set(ctx, "otherhub:user:zed", "x", 0)
	lock, err := st.Lock(ctx, "lifecycle:archive", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A key that expires keeps its expiry.
	rdb.Set(ctx, prefix+"session:s1", "ann", time.Hour)

	dir := t.TempDir()
	b := newBackup(t, rdb, dir, 0, newClock())
	m, err := b.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kinds["user"] != 2 || m.Kinds["token"] != 1 || m.Kinds["lock"] != 0 || m.Keys == 0 {
		t.Errorf("manifest kinds %v, keys %d", m.Kinds, m.Keys)
	}
	for _, f := range []string{m.ID + ".redis.gz", m.ID + ".json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("snapshot file %s: %v", f, err)
		}
	}

	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetUser(ctx, "ann"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after FLUSHALL GetUser(ann): err = %v, want ErrNotFound", err)
	}
	rep, err := b.Restore(ctx, m.ID, false)
	if err != nil {
		t.Fatalf("Restore into an empty Redis: %v", err)
	}
	if rep.Total() != m.Keys || rep.Saved != "" || rep.Removed != 0 {
		t.Errorf("report %+v, want %d keys restored, nothing saved or removed", rep, m.Keys)
	}

	users, err := st.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"ann", "bob"}) {
		t.Errorf("users after restore %v, want [ann bob]", names)
	}
	if u, err := st.GetUser(ctx, "ann"); err != nil || !u.Admin || !u.Allowed {
		t.Errorf("ann after restore %+v, %v; want an allowed admin", u, err)
	}
	got, err := st.LookupToken(ctx, plain)
	if err != nil || got.ID != tok.ID || got.User != "ann" || got.Note != "grading script" {
		t.Errorf("token after restore %+v, %v; want %s of ann", got, err, tok.ID)
	}
	if groups, err := st.Groups(ctx); err != nil || len(groups) != 1 || !slices.Equal(groups["cs101"], []string{"bob"}) {
		t.Errorf("groups after restore %v, %v; want cs101 with bob", groups, err)
	}
	if ev, err := st.Events(ctx, "", 10); err != nil || len(ev) != 1 || ev[0].Message != "bob logged in" {
		t.Errorf("events after restore %+v, %v", ev, err)
	}
	if ttl := rdb.PTTL(ctx, prefix+"session:s1").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("session TTL after restore %s, want its remaining hour", ttl)
	}
	if n := rdb.Exists(ctx, "otherhub:user:zed", lock.Name()).Val(); n != 0 {
		t.Errorf("%d keys outside the hub's data (other prefix, lock) came back", n)
	}
}

// With keys present, a restore needs confirmation; confirmed, it first
// saves them, then makes Redis equal to the snapshot.
func TestRestoreOverExistingKeys(t *testing.T) {
	ctx := t.Context()
	rdb := testenv.RedisClient(t)
	st := store.New(rdb, prefix)
	if err := st.PutUser(ctx, store.User{Name: "ann"}); err != nil {
		t.Fatal(err)
	}
	clock := newClock()
	b := newBackup(t, rdb, t.TempDir(), 0, clock)
	m, err := b.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutUser(ctx, store.User{Name: "carl"}); err != nil {
		t.Fatal(err)
	}
	lock, err := st.Lock(ctx, "lifecycle:cull", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := b.Restore(ctx, m.ID, false); !errors.Is(err, redisbackup.ErrNotEmpty) {
		t.Fatalf("unconfirmed Restore over keys: err = %v, want ErrNotEmpty", err)
	}
	if _, err := st.GetUser(ctx, "carl"); err != nil {
		t.Fatalf("the refused restore changed Redis: %v", err)
	}

	clock.Advance(time.Minute)
	rep, err := b.Restore(ctx, m.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetUser(ctx, "carl"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("carl, created after the snapshot, is still there (err=%v)", err)
	}
	if _, err := st.GetUser(ctx, "ann"); err != nil {
		t.Errorf("ann not restored: %v", err)
	}
	if rep.Removed == 0 || rep.Saved == "" {
		t.Errorf("report %+v: want removed keys and a saved snapshot", rep)
	}
	if rdb.Exists(ctx, lock.Name()).Val() != 1 {
		t.Error("the restore removed a held lock")
	}
	// The saved snapshot undoes the restore.
	if _, err := b.Restore(ctx, rep.Saved, true); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetUser(ctx, "carl"); err != nil {
		t.Errorf("carl not back from the saved snapshot: %v", err)
	}
}

// A key whose expiry passed between snapshot and restore stays gone.
func TestRestoreLeavesExpiredKeysOut(t *testing.T) {
	ctx := t.Context()
	rdb := testenv.RedisClient(t)
	b := newBackup(t, rdb, t.TempDir(), 0, newClock())
	rdb.Set(ctx, prefix+"session:short", "x", 50*time.Millisecond)
	rdb.Set(ctx, prefix+"user:ann", "x", 0)
	m, err := b.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rdb.FlushAll(ctx)
	// Wait, by Redis' own clock, until the recorded expiry has passed: a
	// probe set later with the same lifetime expires after it.
	rdb.Set(ctx, "probe", "x", 50*time.Millisecond)
	for rdb.Exists(ctx, "probe").Val() == 1 {
		time.Sleep(10 * time.Millisecond)
	}
	rdb.Del(ctx, "probe")
	rep, err := b.Restore(ctx, m.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Expired != 1 || rep.Total() != 1 || rdb.Exists(ctx, prefix+"session:short").Val() != 0 {
		t.Errorf("report %+v; want the session left out as expired and the user restored", rep)
	}
}

func TestRetentionKeepsTheNewest(t *testing.T) {
	ctx := t.Context()
	rdb := testenv.RedisClient(t)
	rdb.Set(ctx, prefix+"user:ann", "x", 0)
	clock := newClock()
	dir := t.TempDir()
	b := newBackup(t, rdb, dir, 3, clock)
	var ids []string
	for range 5 {
		m, err := b.Write(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
		clock.Advance(time.Hour)
	}
	list, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range list {
		got = append(got, m.ID)
	}
	if want := []string{ids[4], ids[3], ids[2]}; !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 6 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want 3 data files and 3 manifests", names)
	}
	if latest, err := b.Latest(ctx); err != nil || latest != ids[4] {
		t.Errorf("Latest = %q, %v; want %s", latest, err, ids[4])
	}
}

// Two snapshots in one second get distinct ids.
func TestSnapshotsInOneSecond(t *testing.T) {
	rdb := testenv.RedisClient(t)
	b := newBackup(t, rdb, t.TempDir(), 0, newClock())
	m1, err1 := b.Write(t.Context())
	m2, err2 := b.Write(t.Context())
	if err1 != nil || err2 != nil || m1.ID == m2.ID || m2.ID != m1.ID+"-2" {
		t.Fatalf("ids %q, %q (errors %v, %v)", m1.ID, m2.ID, err1, err2)
	}
}

// A damaged data file is refused before anything in Redis changes.
func TestRestoreRefusesACorruptSnapshot(t *testing.T) {
	ctx := t.Context()
	rdb := testenv.RedisClient(t)
	rdb.Set(ctx, prefix+"user:ann", "x", 0)
	dir := t.TempDir()
	b := newBackup(t, rdb, dir, 0, newClock())
	m, err := b.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, m.File)
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(name, data, 0o640); err != nil {
		t.Fatal(err)
	}
	rdb.FlushAll(ctx)
	if _, err := b.Restore(ctx, m.ID, true); !errors.Is(err, redisbackup.ErrCorrupt) {
		t.Fatalf("Restore of a damaged file: err = %v, want ErrCorrupt", err)
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Errorf("the refused restore wrote %d keys", n)
	}
	if _, err := b.Restore(ctx, "../../etc/passwd", true); !errors.Is(err, redisbackup.ErrInvalidID) {
		t.Errorf("Restore of a path: err = %v, want ErrInvalidID", err)
	}
	if _, err := b.Restore(ctx, "2020-01-01T000000Z", true); !errors.Is(err, redisbackup.ErrNotFound) {
		t.Errorf("Restore of a missing id: err = %v, want ErrNotFound", err)
	}
}
