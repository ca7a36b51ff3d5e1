package spawner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func lockKey(user string) string { return "spawn:" + user }

// lockTTL covers a whole spawn so the lock never expires under a live one.
func (m *Manager) lockTTL() time.Duration { return m.o.StartTimeout + time.Minute }

// spawnLockTTL is how long a spawn's lock outlives the replica holding it:
// a live spawn refreshes it every third of that, so when a replica dies
// mid-spawn the student's next start request, on any replica, takes over
// (adopting the service already created) within seconds instead of after
// lockTTL.
const spawnLockTTL = 15 * time.Second

// refresher is a Lock that can be extended (store.Lock can).
type refresher interface {
	Refresh(ctx context.Context, ttl time.Duration) error
}

// keepLock shortens a refreshable lock to spawnLockTTL and keeps refreshing
// it until the returned stop is called; once slot is set it refreshes the
// user's spawn slot the same way, so a replica that dies mid-spawn frees
// its share of notebook.concurrent_spawn_limit within seconds too. A lock
// that cannot be refreshed keeps its full lockTTL (and so does the slot,
// see slotTTL). stop may be called more than once.
func (m *Manager) keepLock(lock Lock, user string, slot *atomic.Bool) (stop func()) {
	r, ok := lock.(refresher)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(spawnLockTTL / 3)
		defer t.Stop()
		for {
			if err := r.Refresh(ctx, spawnLockTTL); err != nil && ctx.Err() == nil {
				m.log.Warn("refresh spawn lock", "user", user, "err", err)
			}
			if slot != nil && slot.Load() && ctx.Err() == nil {
				// Acquiring a held slot again refreshes it, even at the limit.
				if _, err := m.st.AcquireSlot(ctx, user, m.o.SpawnLimit, spawnLockTTL); err != nil && ctx.Err() == nil {
					m.log.Warn("refresh spawn slot", "user", user, "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// slotTTL is how long a spawn slot lives unrefreshed: short when keepLock
// refreshes it, else the whole spawn.
func (m *Manager) slotTTL(lock Lock) time.Duration {
	if _, ok := lock.(refresher); ok {
		return spawnLockTTL
	}
	return m.lockTTL()
}

// lockOrCurrent takes the user's lock. When someone else (maybe another
// replica) holds it, it returns that spawn's record once it shows as
// starting or running; a holder that is stopping the server or was refused
// a slot lets go quickly, so it tries again for a short while before
// answering busy.
func (m *Manager) lockOrCurrent(ctx context.Context, user string) (Lock, store.Server, error) {
	deadline := time.NewTimer(3 * time.Second)
	defer deadline.Stop()
	for {
		lock, err := m.st.Lock(ctx, lockKey(user), m.lockTTL())
		if err == nil {
			return lock, store.Server{}, nil
		}
		if !errors.Is(err, store.ErrLocked) {
			return nil, store.Server{}, fmt.Errorf("lock server of %s: %w", user, err)
		}
		rec, err := m.getServer(ctx, user)
		if err != nil {
			return nil, store.Server{}, err
		}
		if rec.State == store.StateStarting || rec.State == store.StateRunning {
			return nil, rec, nil
		}
		select {
		case <-ctx.Done():
			return nil, store.Server{}, ctx.Err()
		case <-deadline.C:
			return nil, store.Server{}, &BusyError{RetryAfter: time.Second}
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *Manager) release(lock Lock, user string, slot bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if slot {
		m.releaseSlot(user)
	}
	if err := lock.Release(ctx); err != nil {
		m.log.Warn("release spawn lock", "user", user, "err", err)
	}
}

func (m *Manager) releaseSlot(user string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.st.ReleaseSlot(ctx, user); err != nil {
		m.log.Warn("release spawn slot", "user", user, "err", err)
	}
}
