package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/redisbackup"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

// restore-redis as scripts/restore-redis runs it: list, restore the latest
// snapshot into an empty Redis, refuse (exit 3) over existing keys, replace
// them with --yes.
func TestRestoreRedisCommand(t *testing.T) {
	ctx := t.Context()
	addr := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	archives := t.TempDir()
	env := stackEnv(t, map[string]string{
		"SWARMHUB_REDIS_ADDRESS":         addr,
		"SWARMHUB_LIFECYCLE_ARCHIVE_DIR": archives,
	})
	st := store.New(rdb, "swarmhub:")
	if err := st.PutUser(ctx, store.User{Name: "ann", Admin: true}); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"restore-redis", "--config", stackConfig}, args...), env, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	out, err := cmd("--snapshot")
	if err != nil || !strings.Contains(out, "wrote snapshot") {
		t.Fatalf("--snapshot: %v\n%s", err, out)
	}
	b, err := redisbackup.New(rdb, redisbackup.Options{Dir: filepath.Join(archives, "redis"), Prefix: "swarmhub:"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := b.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("snapshots in %s/redis: %+v, %v; want the one just written", archives, list, err)
	}
	m := list[0]

	out, err = cmd("--list")
	if err != nil || !strings.Contains(out, m.ID) || !strings.Contains(out, "user 1") {
		t.Fatalf("--list: %v\n%s", err, out)
	}
	rdb.FlushAll(ctx)
	out, err = cmd("latest")
	if err != nil || !strings.Contains(out, "restored snapshot "+m.ID) || !strings.Contains(out, "user 1") {
		t.Fatalf("restore-redis latest: %v\n%s", err, out)
	}
	if u, err := st.GetUser(ctx, "ann"); err != nil || !u.Admin {
		t.Fatalf("ann after restore: %+v, %v", u, err)
	}

	if err := st.PutUser(ctx, store.User{Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	out, err = cmd(m.ID)
	var code exitError
	if !errors.As(err, &code) || code != exitConfirm || !strings.Contains(out, "--yes") {
		t.Fatalf("restore over keys without --yes: err %v, want exit %d\n%s", err, exitConfirm, out)
	}
	if _, err := st.GetUser(ctx, "bob"); err != nil {
		t.Fatalf("the refused restore removed bob: %v", err)
	}
	out, err = cmd("--yes", m.ID)
	if err != nil || !strings.Contains(out, "saved the keys Redis held as snapshot") || !strings.Contains(out, "removed 1 keys") {
		t.Fatalf("restore --yes: %v\n%s", err, out)
	}
	if _, err := st.GetUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob, not in the snapshot, survived the restore (err=%v)", err)
	}

	for _, args := range [][]string{{}, {"--list", "latest"}, {"--list", "--snapshot"}} {
		if _, err := cmd(args...); !errors.As(err, &code) || code != 2 {
			t.Errorf("restore-redis %v: err %v, want usage exit 2", args, err)
		}
	}
}
