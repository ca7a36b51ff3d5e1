package redisbackup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Report says what a restore did.
type Report struct {
	ID string
	// Restored counts the keys written, by kind (see Manifest.Kinds).
	Restored map[string]int
	// Expired counts keys left out because their expiry has passed.
	Expired int
	// Removed counts keys under the prefix that were not in the snapshot
	// and were deleted.
	Removed int
	// Saved is the snapshot of the keys found before the restore ("" when
	// Redis held none).
	Saved string
}

// Total is the number of keys written.
func (r Report) Total() int {
	n := 0
	for _, c := range r.Restored {
		n += c
	}
	return n
}

// Latest returns the id of the newest complete snapshot.
func (b *Backup) Latest(ctx context.Context) (string, error) {
	list, err := b.List(ctx)
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		return "", fmt.Errorf("no snapshot in %s: %w", b.opts.Dir, ErrNotFound)
	}
	return list[0].ID, nil
}

// Existing counts the keys under the prefix, locks left out.
func (b *Backup) Existing(ctx context.Context) (int, error) {
	n := 0
	err := b.scan(ctx, func(keys []string) error { n += len(keys); return nil })
	return n, err
}

// Restore makes the keys under the prefix those of snapshot id: it
// verifies the data file against the manifest, writes every key with
// RESTORE ... REPLACE ABSTTL and deletes the keys the snapshot does not
// have. When Redis holds keys under the prefix, it refuses with
// ErrNotEmpty unless replace is true, and then first saves them as a new
// snapshot, so a restore can itself be undone.
func (b *Backup) Restore(ctx context.Context, id string, replace bool) (Report, error) {
	rep := Report{ID: id, Restored: map[string]int{}}
	m, err := b.manifest(id)
	if err != nil {
		return rep, err
	}
	if m.Prefix != b.opts.Prefix {
		return rep, fmt.Errorf("snapshot %s holds keys under %q, this hub uses %q (redis.key_prefix)", id, m.Prefix, b.opts.Prefix)
	}
	if err := b.verify(ctx, m); err != nil {
		return rep, err
	}
	n, err := b.Existing(ctx)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if n > 0 {
		if !replace {
			return rep, fmt.Errorf("%w: %d keys under %q", ErrNotEmpty, n, b.opts.Prefix)
		}
		saved, err := b.write(ctx)
		if err != nil {
			return rep, fmt.Errorf("restore: saving the current keys first: %w", err)
		}
		rep.Saved = saved.ID
	}

	f, err := os.Open(filepath.Join(b.opts.Dir, m.File))
	if err != nil {
		return rep, err
	}
	defer f.Close()
	now, err := b.rdb.Time(ctx).Result()
	if err != nil {
		return rep, fmt.Errorf("restore: redis time: %w", err)
	}
	keep := map[string]bool{}
	var pending []record
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		cmds, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, r := range pending {
				p.Do(ctx, "RESTORE", r.key, r.expireAt, r.payload, "REPLACE", "ABSTTL")
			}
			return nil
		})
		if err != nil {
			for i, c := range cmds {
				if c.Err() != nil {
					return fmt.Errorf("restore %s: %w (a snapshot restores into the Redis version it came from, %s, or a newer one)", pending[i].key, c.Err(), m.RedisVersion)
				}
			}
			return fmt.Errorf("restore: %w", err)
		}
		for _, r := range pending {
			rep.Restored[kind(b.opts.Prefix, r.key)]++
		}
		pending = pending[:0]
		return nil
	}
	err = readRecords(f, func(r record) error {
		if !strings.HasPrefix(r.key, b.opts.Prefix) {
			return fmt.Errorf("%w: key %q lies outside the prefix %q", ErrCorrupt, r.key, b.opts.Prefix)
		}
		if r.expireAt != 0 && r.expireAt <= now.UnixMilli() {
			rep.Expired++ // and deleted below if present, as it would be
			return nil
		}
		keep[r.key] = true
		pending = append(pending, r)
		if len(pending) == batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return rep, fmt.Errorf("restore %s: %w", id, err)
	}

	var extra []string
	err = b.scan(ctx, func(keys []string) error {
		for _, k := range keys {
			if !keep[k] {
				extra = append(extra, k)
			}
		}
		return nil
	})
	for len(extra) > 0 && err == nil {
		part := extra[:min(batch, len(extra))]
		extra = extra[len(part):]
		var n int64
		n, err = b.rdb.Del(ctx, part...).Result()
		rep.Removed += int(n)
	}
	if err != nil {
		return rep, fmt.Errorf("restore %s: removing keys the snapshot does not have: %w", id, err)
	}
	b.log.Info("redis snapshot restored", "id", id, "keys", rep.Total(), "expired", rep.Expired, "removed", rep.Removed, "saved", rep.Saved)
	return rep, nil
}

// verify checks the data file against the manifest's size and sha256.
func (b *Backup) verify(ctx context.Context, m Manifest) error {
	f, err := os.Open(filepath.Join(b.opts.Dir, m.File))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: data file %s missing: %w", m.ID, m.File, ErrNotFound)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, &ctxReader{ctx: ctx, r: f})
	if err != nil {
		return fmt.Errorf("%s: read %s: %w", m.ID, m.File, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 || n != m.Size {
		return fmt.Errorf("%s: %w: %s has sha256 %s and %d bytes, the manifest says %s and %d", m.ID, ErrCorrupt, m.File, got, n, m.SHA256, m.Size)
	}
	return nil
}

// ctxReader stops a copy between reads once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
