package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestLockIsExclusive(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)

	var won atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Lock(ctx, "spawn:alice", time.Minute)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, store.ErrLocked):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("%d goroutines got the lock, want exactly 1", n)
	}
	// Another key is independent.
	other, err := s.Lock(ctx, "spawn:bob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(ctx, "spawn:bob", time.Minute); err != nil {
		t.Errorf("Lock after Release: %v", err)
	}
}

func TestExpiredLockCannotBeRefreshedOrReleasedByOldHolder(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	old, err := s.Lock(ctx, "cull", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var current *store.Lock
	eventually(ctx, t, "the lock to expire", func() bool {
		current, err = s.Lock(ctx, "cull", time.Minute)
		return err == nil
	})
	if err := old.Release(ctx); !errors.Is(err, store.ErrLockLost) {
		t.Errorf("Release by the old holder: %v, want ErrLockLost", err)
	}
	if err := old.Refresh(ctx, time.Minute); !errors.Is(err, store.ErrLockLost) {
		t.Errorf("Refresh by the old holder: %v, want ErrLockLost", err)
	}
	if _, err := s.Lock(ctx, "cull", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Errorf("the new holder's lock was freed by the old holder: %v", err)
	}
	if err := current.Refresh(ctx, time.Minute); err != nil {
		t.Errorf("Refresh by the holder: %v", err)
	}
	if err := current.Release(ctx); err != nil {
		t.Errorf("Release by the holder: %v", err)
	}
}

func TestLockKeepAlive(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, rdb := newStore(t)

	t.Run("holds past its ttl and releases when done", func(t *testing.T) {
		const ttl = time.Second
		l, err := s.Lock(ctx, "archive", ttl)
		if err != nil {
			t.Fatal(err)
		}
		kctx, cancel := context.WithCancel(ctx)
		errc := l.KeepAlive(kctx, ttl)
		for i := range 3 {
			time.Sleep(ttl)
			if _, err := s.Lock(ctx, "archive", time.Minute); !errors.Is(err, store.ErrLocked) {
				t.Fatalf("after %d ttl periods the lock was free: %v", i+1, err)
			}
		}
		cancel()
		for err := range errc {
			t.Errorf("KeepAlive: %v", err)
		}
		if _, err := s.Lock(ctx, "archive", time.Minute); err != nil {
			t.Errorf("lock not released when KeepAlive ended: %v", err)
		}
	})

	t.Run("reports a lost lock", func(t *testing.T) {
		l, err := s.Lock(ctx, "reconcile", 30*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		// Someone else takes over behind our back.
		rdb.Set(ctx, l.Name(), "someone-else", time.Minute)
		err, ok := <-l.KeepAlive(ctx, 30*time.Millisecond)
		if !ok || !errors.Is(err, store.ErrLockLost) {
			t.Errorf("KeepAlive reported %v (open %v), want ErrLockLost", err, ok)
		}
		if v := rdb.Get(ctx, l.Name()).Val(); v != "someone-else" {
			t.Errorf("the other holder's lock was changed to %q", v)
		}
	})
}

func TestSlotsNeverExceedLimit(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	const limit, workers = 5, 50

	var inUse, maxInUse atomic.Int32
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("spawn-%d", i)
			for {
				ok, err := s.AcquireSlot(ctx, holder, limit, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					time.Sleep(time.Millisecond)
					continue
				}
				n := inUse.Add(1)
				for {
					m := maxInUse.Load()
					if n <= m || maxInUse.CompareAndSwap(m, n) {
						break
					}
				}
				if got, err := s.SlotsInUse(ctx); err != nil || got > limit {
					t.Errorf("SlotsInUse = %d, %v; limit %d", got, err, limit)
				}
				time.Sleep(2 * time.Millisecond) // hold it, so holders overlap
				inUse.Add(-1)
				if err := s.ReleaseSlot(ctx, holder); err != nil {
					t.Error(err)
				}
				return
			}
		}()
	}
	wg.Wait()
	if m := maxInUse.Load(); m > limit || m < 1 {
		t.Errorf("at most %d slots were held at once, want between 1 and %d", m, limit)
	}
	if n, err := s.SlotsInUse(ctx); err != nil || n != 0 {
		t.Errorf("SlotsInUse after all released = %d, %v", n, err)
	}
}

func TestSlotExpiryAndRefresh(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	if ok, err := s.AcquireSlot(ctx, "crashed", 1, 50*time.Millisecond); err != nil || !ok {
		t.Fatalf("AcquireSlot = %v, %v", ok, err)
	}
	if ok, err := s.AcquireSlot(ctx, "crashed", 1, 50*time.Millisecond); err != nil || !ok {
		t.Errorf("re-acquiring one's own slot at the limit = %v, %v; want true", ok, err)
	}
	// A holder that died without releasing frees its slot when it expires.
	eventually(ctx, t, "the crashed holder's slot to expire", func() bool {
		ok, err := s.AcquireSlot(ctx, "next", 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if ok, err := s.AcquireSlot(ctx, "third", 1, time.Minute); err != nil || ok {
		t.Errorf("AcquireSlot beyond the limit = %v, %v; want false", ok, err)
	}
}
