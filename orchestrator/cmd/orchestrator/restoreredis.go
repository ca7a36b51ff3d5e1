package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/jobs"
	"github.com/swarmhub/swarmhub/orchestrator/internal/redisbackup"
)

// exitConfirm is restore-redis's exit code when Redis holds keys and
// --yes was not given: scripts/restore-redis asks, then runs it again.
const exitConfirm = 3

// restoreRedis lists the Redis snapshots, writes one, or restores one into
// the Redis of the configuration (scripts/restore-redis runs it inside the orchestrator
// container).
func restoreRedis(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore-redis", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", envOr(getenv, "SWARMHUB_CONFIG_FILE", defaultConfigPath), "configuration file")
	list := fs.Bool("list", false, "list the snapshots and exit")
	save := fs.Bool("snapshot", false, "write a snapshot now (e.g. before an upgrade) and exit")
	yes := fs.Bool("yes", false, "replace the keys Redis holds (they are saved as a snapshot first)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: orchestrator restore-redis [--config FILE] [--yes] SNAPSHOT|latest\n       orchestrator restore-redis [--config FILE] --list|--snapshot\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *list && *save || (*list || *save) && fs.NArg() != 0 || !*list && !*save && fs.NArg() != 1 {
		fs.Usage()
		return exitError(2)
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return fmt.Errorf("configuration %s is not valid:\n%w", *path, err)
	}
	rdb := newRedis(cfg)
	defer rdb.Close()
	b, err := redisbackup.New(rdb, redisbackup.Options{Dir: jobs.RedisSnapshotDir(cfg), Prefix: cfg.Redis.KeyPrefix,
		Keep: cfg.Lifecycle.Snapshot.Keep})
	if err != nil {
		return err
	}
	switch {
	case *list:
		return listSnapshots(ctx, b, jobs.RedisSnapshotDir(cfg), stdout)
	case *save:
		m, err := b.Write(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote snapshot %s: %d keys (%s)\n", m.ID, m.Keys, kinds(m.Kinds))
		return nil
	}
	id := fs.Arg(0)
	if id == "latest" {
		if id, err = b.Latest(ctx); err != nil {
			return err
		}
	}
	rep, err := b.Restore(ctx, id, *yes)
	if errors.Is(err, redisbackup.ErrNotEmpty) {
		fmt.Fprintf(stderr, "Redis is not empty: %v.\nRestoring %s replaces them (they are saved as a snapshot first); run again with --yes to do so.\n", err, id)
		return exitError(exitConfirm)
	}
	if err != nil {
		return err
	}
	if rep.Saved != "" {
		fmt.Fprintf(stdout, "saved the keys Redis held as snapshot %s\n", rep.Saved)
	}
	fmt.Fprintf(stdout, "restored snapshot %s: %d keys under %q (%s)\n", rep.ID, rep.Total(), cfg.Redis.KeyPrefix, kinds(rep.Restored))
	if rep.Expired > 0 {
		fmt.Fprintf(stdout, "left out %d keys that have expired since (sessions, one-time codes)\n", rep.Expired)
	}
	if rep.Removed > 0 {
		fmt.Fprintf(stdout, "removed %d keys the snapshot does not have\n", rep.Removed)
	}
	return nil
}

func listSnapshots(ctx context.Context, b *redisbackup.Backup, dir string, stdout io.Writer) error {
	list, err := b.List(ctx)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "no snapshots in %s\n", dir)
		return nil
	}
	fmt.Fprintf(stdout, "snapshots in %s, newest first:\n", dir)
	for _, m := range list {
		fmt.Fprintf(stdout, "%s  %6d keys  %s\n", m.ID, m.Keys, kinds(m.Kinds))
	}
	return nil
}

// kinds formats key counts by kind: "events 1, token 2, user 10".
func kinds(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
