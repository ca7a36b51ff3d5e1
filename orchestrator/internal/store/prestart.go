package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pre-start schedules are kept as opaque JSON documents (package prestart
// owns their shape), with the lecture each one last fired for and the
// servers the culler spares until a lecture's grace period ends.

// Prestarts returns every stored schedule document by name.
func (s *Store) Prestarts(ctx context.Context) (map[string][]byte, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("prestart:schedules")).Result()
	if err != nil {
		return nil, fmt.Errorf("read pre-start schedules: %w", err)
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out, nil
}

// PutPrestart stores (or replaces) one schedule document.
func (s *Store) PutPrestart(ctx context.Context, name string, doc []byte) error {
	if err := s.rdb.HSet(ctx, s.key("prestart:schedules"), name, doc).Err(); err != nil {
		return fmt.Errorf("write pre-start schedule %q: %w", name, err)
	}
	return nil
}

// DeletePrestart removes a schedule and its fired mark; ErrNotFound when
// there was none.
func (s *Store) DeletePrestart(ctx context.Context, name string) error {
	pipe := s.rdb.TxPipeline()
	del := pipe.HDel(ctx, s.key("prestart:schedules"), name)
	pipe.HDel(ctx, s.key("prestart:fired"), name)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete pre-start schedule %q: %w", name, err)
	}
	if del.Val() == 0 {
		return ErrNotFound
	}
	return nil
}

// PrestartFired returns the lecture time the schedule last fired for (zero
// when never).
func (s *Store) PrestartFired(ctx context.Context, name string) (time.Time, error) {
	v, err := s.rdb.HGet(ctx, s.key("prestart:fired"), name).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read pre-start %q: %w", name, err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("pre-start %q: bad fired mark %q", name, v)
	}
	return time.Unix(n, 0), nil
}

// MarkPrestartFired records that the schedule fired for lecture.
func (s *Store) MarkPrestartFired(ctx context.Context, name string, lecture time.Time) error {
	if err := s.rdb.HSet(ctx, s.key("prestart:fired"), name, lecture.Unix()).Err(); err != nil {
		return fmt.Errorf("write pre-start %q: %w", name, err)
	}
	return nil
}

// SpareServer asks the culler to leave user's server alone until until
// (the later of two requests wins).
func (s *Store) SpareServer(ctx context.Context, user string, until time.Time) error {
	err := s.rdb.ZAddGT(ctx, s.key("prestart:spare"), redis.Z{Score: float64(until.Unix()), Member: user}).Err()
	if err != nil {
		return fmt.Errorf("spare %q: %w", user, err)
	}
	return nil
}

// SparedServers returns the users whose servers are spared after now, and
// forgets the ones whose time has passed.
func (s *Store) SparedServers(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	key := s.key("prestart:spare")
	if err := s.rdb.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now.Unix(), 10)).Err(); err != nil {
		return nil, fmt.Errorf("read spared servers: %w", err)
	}
	zs, err := s.rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read spared servers: %w", err)
	}
	out := make(map[string]time.Time, len(zs))
	for _, z := range zs {
		if u, ok := z.Member.(string); ok {
			out[u] = time.Unix(int64(z.Score), 0)
		}
	}
	return out, nil
}
