package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counters and flags serve login regulation: failures are counted in a
// window that starts at the first failure, and a ban is a flag with a TTL.
// Every key expires, so a flood of unique names costs bounded memory.

// incr sets the expiry only when the window starts (or if it was somehow
// lost), so later increments do not extend the window.
// KEYS: counter. ARGV: ttl ms.
var incr = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// Incr adds one to the counter key and returns the new value; the counter
// disappears ttl after its first increment.
func (s *Store) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("incr %q: ttl must be positive, got %s", key, ttl)
	}
	n, err := incr.Run(ctx, s.rdb, []string{s.key("counter:", key)}, ms(ttl)).Int64()
	if err != nil {
		return 0, fmt.Errorf("incr %q: %w", key, err)
	}
	return n, nil
}

// Counter returns the counter's value, 0 when absent or expired.
func (s *Store) Counter(ctx context.Context, key string) (int64, error) {
	n, err := s.rdb.Get(ctx, s.key("counter:", key)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read counter %q: %w", key, err)
	}
	return n, nil
}

// ClearCounter deletes the counter (e.g. after a successful login).
func (s *Store) ClearCounter(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, s.key("counter:", key)).Err(); err != nil {
		return fmt.Errorf("clear counter %q: %w", key, err)
	}
	return nil
}

// SetFlag raises the flag key for ttl (setting it again restarts the ttl).
func (s *Store) SetFlag(ctx context.Context, key string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("set flag %q: ttl must be positive, got %s", key, ttl)
	}
	if err := s.rdb.Set(ctx, s.key("flag:", key), "1", time.Duration(ms(ttl))*time.Millisecond).Err(); err != nil {
		return fmt.Errorf("set flag %q: %w", key, err)
	}
	return nil
}

// Flag reports whether the flag is raised and for how much longer.
func (s *Store) Flag(ctx context.Context, key string) (bool, time.Duration, error) {
	d, err := s.rdb.PTTL(ctx, s.key("flag:", key)).Result()
	if err != nil {
		return false, 0, fmt.Errorf("read flag %q: %w", key, err)
	}
	// go-redis reports Redis' -2 (missing) and -1 (no expiry) as those
	// numbers of nanoseconds.
	switch {
	case d == -2:
		return false, 0, nil
	case d < 0:
		return true, 0, nil
	}
	return true, d, nil
}

// ClearFlag lowers the flag.
func (s *Store) ClearFlag(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, s.key("flag:", key)).Err(); err != nil {
		return fmt.Errorf("clear flag %q: %w", key, err)
	}
	return nil
}
