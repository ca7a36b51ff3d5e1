package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// recordActivity keeps, per user, the latest of the stored and the given
// time, for a whole batch in one atomic step (replicas flush concurrently).
// KEYS: hash. ARGV: user, unix ms, user, unix ms, ...
var recordActivity = redis.NewScript(`
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur or tonumber(ARGV[i + 1]) > tonumber(cur) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
`)

// RecordActivity merges a batch of last-activity times (max semantics).
func (s *Store) RecordActivity(ctx context.Context, batch map[string]time.Time) error {
	if len(batch) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(batch))
	for user, t := range batch {
		if user == "" || t.IsZero() {
			continue
		}
		args = append(args, user, t.UnixMilli())
	}
	if len(args) == 0 {
		return nil
	}
	if err := recordActivity.Run(ctx, s.rdb, []string{s.key("activity")}, args...).Err(); err != nil {
		return fmt.Errorf("record activity of %d users: %w", len(args)/2, err)
	}
	return nil
}

// Activity returns every user's last recorded activity.
func (s *Store) Activity(ctx context.Context) (map[string]time.Time, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("activity")).Result()
	if err != nil {
		return nil, fmt.Errorf("read activity: %w", err)
	}
	out := make(map[string]time.Time, len(m))
	for user, v := range m {
		if t := parseTime(v); !t.IsZero() {
			out[user] = t
		}
	}
	return out, nil
}

// DeleteActivity forgets a user's activity (when the user is deleted).
func (s *Store) DeleteActivity(ctx context.Context, user string) error {
	if err := s.rdb.HDel(ctx, s.key("activity"), user).Err(); err != nil {
		return fmt.Errorf("delete activity of %q: %w", user, err)
	}
	return nil
}
