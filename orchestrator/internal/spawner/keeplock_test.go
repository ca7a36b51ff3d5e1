package spawner_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

// refreshStore hands out locks that can be refreshed, like store.Lock, and
// records how.
type refreshStore struct {
	*fakeStore
	mu             sync.Mutex
	ttls           []time.Duration
	released       bool
	afterReleasing int
	slotTTLs       []time.Duration // every AcquireSlot, first one included
	slotReleased   bool
	slotAfterFree  int // slot acquisitions after its release
}

func (s *refreshStore) AcquireSlot(ctx context.Context, holder string, limit int, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	s.slotTTLs = append(s.slotTTLs, ttl)
	if s.slotReleased {
		s.slotAfterFree++
	}
	s.mu.Unlock()
	return s.fakeStore.AcquireSlot(ctx, holder, limit, ttl)
}

func (s *refreshStore) ReleaseSlot(ctx context.Context, holder string) error {
	s.mu.Lock()
	s.slotReleased = true
	s.mu.Unlock()
	return s.fakeStore.ReleaseSlot(ctx, holder)
}

type refreshLock struct {
	spawner.Lock
	s *refreshStore
}

func (s *refreshStore) Lock(ctx context.Context, key string, ttl time.Duration) (spawner.Lock, error) {
	l, err := s.fakeStore.Lock(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	return &refreshLock{Lock: l, s: s}, nil
}

func (l *refreshLock) Refresh(_ context.Context, ttl time.Duration) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.ttls = append(l.s.ttls, ttl)
	if l.s.released {
		l.s.afterReleasing++
	}
	return nil
}

func (l *refreshLock) Release(ctx context.Context) error {
	l.s.mu.Lock()
	l.s.released = true
	l.s.mu.Unlock()
	return l.Lock.Release(ctx)
}

// TestSpawnLockIsShortAndKeptAlive: a spawn shortens its lock below the
// start timeout and refreshes it while it runs, so the lock of a replica that
// died mid-spawn lapses quickly and another replica can take the spawn over;
// refreshing stops once the spawn has released the lock.
func TestSpawnLockIsShortAndKeptAlive(t *testing.T) {
	t.Parallel()
	namer := identityNamer(t)
	root := t.TempDir()
	release := make(chan struct{})
	o := spawner.ManagerOptions{
		Spec: baseOptions(), Image: "swarmhub/notebook:dev", Namer: namer, StorageMount: root,
		StartTimeout: 10 * time.Minute, ProbeInterval: time.Millisecond, SpawnLimit: 5,
		// The server becomes ready only when the test says so.
		Prober: proberFunc(func(ctx context.Context, _, _, _ string) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}),
	}
	o.Spec.Storage.HostRoot = root
	st := &refreshStore{fakeStore: newFakeStore()}
	m := spawner.NewManager(fakedocker.New(), st, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := m.Start(context.Background(), "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	refreshed := func() []time.Duration {
		st.mu.Lock()
		defer st.mu.Unlock()
		return append([]time.Duration(nil), st.ttls...)
	}
	slotRefreshed := func() []time.Duration {
		st.mu.Lock()
		defer st.mu.Unlock()
		return append([]time.Duration(nil), st.slotTTLs...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for (len(refreshed()) == 0 || len(slotRefreshed()) < 2) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ttls := refreshed()
	if len(ttls) == 0 {
		t.Fatal("the lock of a spawn in flight was never refreshed")
	}
	for _, ttl := range ttls {
		if ttl >= o.StartTimeout {
			t.Fatalf("spawn lock refreshed to %s, want less than the start timeout %s so a dead replica's lock lapses soon", ttl, o.StartTimeout)
		}
	}
	// The spawn slot, too: taken short and refreshed, so a dead replica's
	// slots do not hold the class's spawn capacity for the start timeout.
	slotTTLs := slotRefreshed()
	if len(slotTTLs) < 2 {
		t.Fatalf("the spawn slot was taken but never refreshed: %v", slotTTLs)
	}
	for _, ttl := range slotTTLs {
		if ttl >= o.StartTimeout {
			t.Fatalf("spawn slot held for %s, want less than the start timeout %s", ttl, o.StartTimeout)
		}
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.released || st.afterReleasing != 0 {
		t.Fatalf("released=%v, refreshes after release=%d; want released and no refresh after", st.released, st.afterReleasing)
	}
	if !st.slotReleased || st.slotAfterFree != 0 {
		t.Fatalf("slot released=%v, slot refreshes after release=%d; want released and none after", st.slotReleased, st.slotAfterFree)
	}
}
