package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lock is a Redis lock held by this process until it expires or is released.
type Lock struct {
	s     *Store
	key   string
	token string
}

// refreshLock and releaseLock act only for the holder of the token, so a
// holder whose lock expired cannot extend or free someone else's.
var (
	refreshLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)
	releaseLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
)

// Lock takes the named lock for ttl, or returns ErrLocked at once when
// someone else holds it. Holders that run longer than ttl must Refresh.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	if key == "" || ttl <= 0 {
		return nil, fmt.Errorf("lock: need a name and a positive ttl (got %q, %s)", key, ttl)
	}
	token, err := randomString(16)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", key, err)
	}
	k := s.key("lock:", key)
	ok, err := s.rdb.SetNX(ctx, k, token, time.Duration(ms(ttl))*time.Millisecond).Result()
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", key, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %q: %w", key, ErrLocked)
	}
	return &Lock{s: s, key: k, token: token}, nil
}

// Name returns the lock's Redis key.
func (l *Lock) Name() string { return l.key }

// Refresh extends the lock to ttl from now; ErrLockLost when it expired
// (and perhaps went to someone else) in the meantime.
func (l *Lock) Refresh(ctx context.Context, ttl time.Duration) error {
	n, err := refreshLock.Run(ctx, l.s.rdb, []string{l.key}, l.token, ms(ttl)).Int()
	if err != nil {
		return fmt.Errorf("refresh lock %s: %w", l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("refresh lock %s: %w", l.key, ErrLockLost)
	}
	return nil
}

// Release frees the lock; ErrLockLost when it was no longer ours, in which
// case nothing is deleted.
func (l *Lock) Release(ctx context.Context) error {
	n, err := releaseLock.Run(ctx, l.s.rdb, []string{l.key}, l.token).Int()
	if err != nil {
		return fmt.Errorf("release lock %s: %w", l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("release lock %s: %w", l.key, ErrLockLost)
	}
	return nil
}

// KeepAlive refreshes the lock every ttl/3 until ctx ends, then releases it.
// The returned channel receives at most one error (ErrLockLost or a Redis
// error that persisted until the lock would have expired) and is closed when
// KeepAlive stops; a job should stop its work when it receives an error.
func (l *Lock) KeepAlive(ctx context.Context, ttl time.Duration) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		t := time.NewTicker(max(ttl/3, time.Millisecond))
		defer t.Stop()
		lastOK := time.Now()
		for {
			select {
			case <-ctx.Done():
				// Release on a fresh context: ctx is already done.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := l.Release(rctx); err != nil && !errors.Is(err, ErrLockLost) {
					errc <- err
				}
				return
			case <-t.C:
				err := l.Refresh(ctx, ttl)
				switch {
				case err == nil:
					lastOK = time.Now()
				case errors.Is(err, ErrLockLost):
					errc <- err
					return
				case ctx.Err() != nil:
					// Loop once more to release.
				case time.Since(lastOK) >= ttl:
					errc <- fmt.Errorf("%w: %w", ErrLockLost, err)
					return
				}
			}
		}
	}()
	return errc
}

// acquireSlot is a counting semaphore on a sorted set scored by expiry
// time (Redis server time, so replicas' clocks do not matter). Expired
// holders are dropped first; a holder already present is refreshed.
// KEYS: zset. ARGV: holder, limit, ttl ms.
var acquireSlot = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expires = now + tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], expires, ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], expires, ARGV[1])
  return 1
end
return 0
`)

var slotsInUse = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`)

// AcquireSlot takes one of limit global spawn slots for holder, for ttl.
// It returns false when all slots are taken. Acquiring again with the same
// holder refreshes its slot (and succeeds even at the limit).
func (s *Store) AcquireSlot(ctx context.Context, holder string, limit int, ttl time.Duration) (bool, error) {
	if holder == "" || ttl <= 0 {
		return false, fmt.Errorf("acquire slot: need a holder and a positive ttl (got %q, %s)", holder, ttl)
	}
	n, err := acquireSlot.Run(ctx, s.rdb, []string{s.key("spawn-slots")}, holder, limit, ms(ttl)).Int()
	if err != nil {
		return false, fmt.Errorf("acquire spawn slot: %w", err)
	}
	return n == 1, nil
}

// ReleaseSlot frees holder's slot; releasing a free slot is not an error.
func (s *Store) ReleaseSlot(ctx context.Context, holder string) error {
	if err := s.rdb.ZRem(ctx, s.key("spawn-slots"), holder).Err(); err != nil {
		return fmt.Errorf("release spawn slot: %w", err)
	}
	return nil
}

// SlotsInUse counts slots held and not expired.
func (s *Store) SlotsInUse(ctx context.Context) (int, error) {
	n, err := slotsInUse.Run(ctx, s.rdb, []string{s.key("spawn-slots")}).Int()
	if err != nil {
		return 0, fmt.Errorf("count spawn slots: %w", err)
	}
	return n, nil
}
