package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Usage is one workspace's measured size.
type Usage struct {
	Bytes    int64     // allocated on disk (what counts against a quota)
	Files    int64     // files and directories
	Measured time.Time // when the measurement ended
}

// PutUsage stores a batch of measurements (one hash, field per user:
// "bytes:files:unix").
func (s *Store) PutUsage(ctx context.Context, batch map[string]Usage) error {
	if len(batch) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(batch))
	for user, u := range batch {
		args = append(args, user, fmt.Sprintf("%d:%d:%d", u.Bytes, u.Files, u.Measured.Unix()))
	}
	if err := s.rdb.HSet(ctx, s.key("usage"), args...).Err(); err != nil {
		return fmt.Errorf("store disk usage: %w", err)
	}
	return nil
}

// WorkspaceUsage returns every measured workspace's usage.
func (s *Store) WorkspaceUsage(ctx context.Context) (map[string]Usage, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("usage")).Result()
	if err != nil {
		return nil, fmt.Errorf("read disk usage: %w", err)
	}
	out := make(map[string]Usage, len(m))
	for user, v := range m {
		if u, ok := parseUsage(v); ok {
			out[user] = u
		}
	}
	return out, nil
}

// UserUsage returns one workspace's usage; ok is false when it was never
// measured.
func (s *Store) UserUsage(ctx context.Context, user string) (u Usage, ok bool, err error) {
	v, err := s.rdb.HGet(ctx, s.key("usage"), user).Result()
	if errors.Is(err, redis.Nil) {
		return Usage{}, false, nil
	}
	if err != nil {
		return Usage{}, false, fmt.Errorf("read disk usage of %q: %w", user, err)
	}
	u, ok = parseUsage(v)
	return u, ok, nil
}

// DeleteUsage forgets workspaces that are gone.
func (s *Store) DeleteUsage(ctx context.Context, users ...string) error {
	if len(users) == 0 {
		return nil
	}
	if err := s.rdb.HDel(ctx, s.key("usage"), users...).Err(); err != nil {
		return fmt.Errorf("delete disk usage: %w", err)
	}
	return nil
}

func parseUsage(v string) (Usage, bool) {
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return Usage{}, false
	}
	b, err1 := strconv.ParseInt(parts[0], 10, 64)
	f, err2 := strconv.ParseInt(parts[1], 10, 64)
	t, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Usage{}, false
	}
	return Usage{Bytes: b, Files: f, Measured: time.Unix(t, 0)}, true
}
