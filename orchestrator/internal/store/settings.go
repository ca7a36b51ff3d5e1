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

// Settings are values admins change at runtime (the current notebook
// image); they live in one hash so every replica sees a change at once.

// GetSetting returns the setting's value, or "" and ErrNotFound when unset.
func (s *Store) GetSetting(ctx context.Context, name string) (string, error) {
	v, err := s.rdb.HGet(ctx, s.key("settings"), name).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read setting %q: %w", name, err)
	}
	return v, nil
}

// SetSetting stores a setting; an empty value removes it.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	var err error
	if value == "" {
		err = s.rdb.HDel(ctx, s.key("settings"), name).Err()
	} else {
		err = s.rdb.HSet(ctx, s.key("settings"), name, value).Err()
	}
	if err != nil {
		return fmt.Errorf("write setting %q: %w", name, err)
	}
	return nil
}

// Sample is one point of a time series.
type Sample struct {
	Time  time.Time
	Value int
}

// seriesKeep bounds the running-servers series.
const seriesKeep = 24 * time.Hour

// recordSample keeps one sample per minute (the last writer of a minute
// wins, so several replicas sampling agree) and drops samples older than
// the retention, in one atomic step.
// KEYS: zset. ARGV: minute (unix s), value, newest minute to drop.
var recordSample = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return 1
`)

// RecordRunning stores the number of running servers at t (rounded down to
// the minute). The series holds the last 24 hours: at most 1,440 entries.
func (s *Store) RecordRunning(ctx context.Context, t time.Time, n int) error {
	minute := t.Truncate(time.Minute).Unix()
	oldest := minute - int64(seriesKeep/time.Second)
	if err := recordSample.Run(ctx, s.rdb, []string{s.key("series:running")}, minute, n, oldest).Err(); err != nil {
		return fmt.Errorf("record running servers: %w", err)
	}
	return nil
}

// RunningSeries returns the samples at or after since, oldest first.
func (s *Store) RunningSeries(ctx context.Context, since time.Time) ([]Sample, error) {
	zs, err := s.rdb.ZRangeByScore(ctx, s.key("series:running"), &redis.ZRangeBy{
		Min: strconv.FormatInt(since.Unix(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("read running servers series: %w", err)
	}
	out := make([]Sample, 0, len(zs))
	for _, m := range zs {
		ts, val, ok := strings.Cut(m, ":")
		if !ok {
			continue
		}
		sec, err1 := strconv.ParseInt(ts, 10, 64)
		n, err2 := strconv.Atoi(val)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, Sample{Time: time.Unix(sec, 0).UTC(), Value: n})
	}
	return out, nil
}
