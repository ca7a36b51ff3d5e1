package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/lifecycle"
)

// memLocker is an in-process Locker: keys are held until released (TTLs
// are not modelled; the Redis test covers them).
type memLocker struct {
	mu         sync.Mutex
	held       map[string]bool
	refreshErr error
	refreshed  chan string
}

func newMemLocker() *memLocker { return &memLocker{held: map[string]bool{}} }

func (m *memLocker) Lock(ctx context.Context, key string, ttl time.Duration) (lifecycle.Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[key] {
		return nil, fmt.Errorf("key %s: %w", key, lifecycle.ErrLocked)
	}
	m.held[key] = true
	return &memLock{m: m, key: key}, nil
}

func (m *memLocker) isHeld(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held[key]
}

type memLock struct {
	m   *memLocker
	key string
}

func (l *memLock) Refresh(ctx context.Context, ttl time.Duration) error {
	l.m.mu.Lock()
	err := l.m.refreshErr
	ch := l.m.refreshed
	l.m.mu.Unlock()
	if ch != nil {
		select {
		case ch <- l.key:
		default:
		}
	}
	return err
}

func (l *memLock) Release(ctx context.Context) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if !l.m.held[l.key] {
		return errors.New("not held")
	}
	delete(l.m.held, l.key)
	return nil
}

type event struct{ Kind, User, Message string }

type eventLog struct {
	mu     sync.Mutex
	events []event
}

func (e *eventLog) AddEvent(ctx context.Context, kind, user, message string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, event{kind, user, message})
}

func (e *eventLog) all() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]event(nil), e.events...)
}
