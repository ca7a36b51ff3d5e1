package spawner

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Stop removes the user's service and keeps the workspace volume.
func (m *Manager) Stop(ctx context.Context, user, reason string) error {
	// A spawn in flight on this replica holds the lock: end it first.
	m.mu.Lock()
	sp := m.spawns[user]
	m.mu.Unlock()
	if sp != nil {
		sp.cancel(errStopped)
		select {
		case <-sp.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.o.Line != nil {
		// A stop of a start still waiting takes it out of the line, and a
		// stopped server makes room for the next one in it.
		if err := m.o.Line.LeaveLine(ctx, user); err != nil {
			return fmt.Errorf("take %s out of the line: %w", user, err)
		}
		defer m.kickLine()
	}
	lock, err := m.st.Lock(ctx, lockKey(user), m.lockTTL())
	switch {
	case errors.Is(err, store.ErrLocked):
		// Another replica is starting it; removing the service ends that
		// spawn, which sees the service gone.
		m.log.Info("stopping a server another replica is starting", "user", user)
	case err != nil:
		return fmt.Errorf("lock server of %s: %w", user, err)
	default:
		defer m.release(lock, user, false)
	}

	rec, err := m.getServer(ctx, user)
	if err != nil {
		return err
	}
	name := rec.ServiceName
	if name == "" {
		if name, err = m.o.Namer.ServiceName(user); err != nil {
			return fmt.Errorf("service name for %s: %w", user, err)
		}
	}
	if err := m.d.ServiceRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove service %s of %s: %w", name, user, err)
	}
	m.Forget(user)
	wasActive := rec.State == store.StateRunning || rec.State == store.StateStarting
	rec.User = user
	rec.State = store.StateStopped
	rec.Error = ""
	rec.Addr = ""
	rec.ServiceID = ""
	if err := m.st.PutServer(ctx, rec); err != nil {
		return fmt.Errorf("record stopped server of %s: %w", user, err)
	}
	if wasActive || sp != nil {
		m.event(ctx, EventStop, user, reason)
	}
	m.log.Info("server stopped", "user", user, "reason", reason)
	return nil
}

// RemoveService removes a service by ID or name; a missing one is not an error.
func (m *Manager) RemoveService(ctx context.Context, id string) error {
	if err := m.d.ServiceRemove(ctx, id); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove service %s: %w", id, err)
	}
	return nil
}

func (m *Manager) removeService(ctx context.Context, id string) {
	if err := m.RemoveService(ctx, id); err != nil {
		m.log.Error("remove service of failed spawn", "service", id, "err", err)
	}
}
