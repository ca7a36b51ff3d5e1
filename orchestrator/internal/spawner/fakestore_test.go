package spawner_test

import (
	"context"
	"sync"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// fakeStore is an in-memory Store with the semantics the contract gives
// the Redis one (lock NX, slot semaphore).
type fakeStore struct {
	mu       sync.Mutex
	servers  map[string]store.Server
	locks    map[string]bool
	slots    map[string]bool
	progress map[string][]store.Progress
	events   []store.Event
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		servers: map[string]store.Server{}, locks: map[string]bool{},
		slots: map[string]bool{}, progress: map[string][]store.Progress{},
	}
}

func (s *fakeStore) GetServer(_ context.Context, user string) (store.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.servers[user]
	if !ok {
		return store.Server{}, store.ErrNotFound
	}
	return rec, nil
}

func (s *fakeStore) PutServer(_ context.Context, rec store.Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servers[rec.User] = rec
	return nil
}

type fakeLock struct {
	s   *fakeStore
	key string
}

func (l fakeLock) Release(context.Context) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	delete(l.s.locks, l.key)
	return nil
}

func (s *fakeStore) Lock(_ context.Context, key string, _ time.Duration) (spawner.Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[key] {
		return nil, store.ErrLocked
	}
	s.locks[key] = true
	return fakeLock{s, key}, nil
}

func (s *fakeStore) AcquireSlot(_ context.Context, holder string, limit int, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots[holder] {
		return true, nil
	}
	if len(s.slots) >= limit {
		return false, nil
	}
	s.slots[holder] = true
	return true, nil
}

func (s *fakeStore) ReleaseSlot(_ context.Context, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.slots, holder)
	return nil
}

func (s *fakeStore) AddProgress(_ context.Context, user string, p store.Progress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress[user] = append(s.progress[user], p)
	return nil
}

func (s *fakeStore) ResetProgress(_ context.Context, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.progress, user)
	return nil
}

func (s *fakeStore) AddEvent(_ context.Context, e store.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

func (s *fakeStore) server(user string) store.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servers[user]
}

func (s *fakeStore) progressOf(user string) []store.Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Progress(nil), s.progress[user]...)
}

func (s *fakeStore) eventKinds(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kinds []string
	for _, e := range s.events {
		if e.User == user {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

func (s *fakeStore) heldLocks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locks) + len(s.slots)
}
