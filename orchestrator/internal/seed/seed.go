// Package seed merges the users listed in the configuration into Redis.
package seed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Users merges the configured lists into Redis: entries are added or
// flagged, never removed (removal is an API call, so a restart never undoes
// an admin's change). It also writes the configured pre-start schedules,
// which replace same-named ones edited through the API (the file is the
// operator's word) and leave the others alone.
func Users(ctx context.Context, st *store.Store, n *identity.Namer, cfg config.Config, log *slog.Logger) error {
	type flags struct{ admin, allowed, blocked bool }
	want := map[string]*flags{}
	add := func(list []string, key string, set func(*flags)) error {
		for _, raw := range list {
			c, err := n.Canonical(raw)
			if err != nil {
				return fmt.Errorf("auth.%s: %q: %w", key, raw, err)
			}
			if want[c] == nil {
				want[c] = &flags{}
			}
			set(want[c])
		}
		return nil
	}
	if err := add(cfg.Auth.AdminUsers, "admin_users", func(f *flags) { f.admin, f.allowed = true, true }); err != nil {
		return err
	}
	if err := add(cfg.Auth.AllowedUsers, "allowed_users", func(f *flags) { f.allowed = true }); err != nil {
		return err
	}
	if err := add(cfg.Auth.BlockedUsers, "blocked_users", func(f *flags) { f.blocked = true }); err != nil {
		return err
	}
	for name, f := range want {
		u, err := st.GetUser(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			u = store.User{Name: name, Created: time.Now().UTC()}
		} else if err != nil {
			return err
		}
		before := u
		u.Admin = u.Admin || f.admin
		u.Allowed = u.Allowed || f.allowed
		u.Blocked = u.Blocked || f.blocked
		if u != before || before.Created.IsZero() {
			if err := st.PutUser(ctx, u); err != nil {
				return err
			}
		}
	}
	var instructors []string
	for _, raw := range cfg.Notebook.InstructorUsers {
		c, err := n.Canonical(raw)
		if err != nil {
			return fmt.Errorf("notebook.instructor_users: %q: %w", raw, err)
		}
		instructors = append(instructors, c)
	}
	if err := st.EnsureGroupMembers(ctx, store.InstructorsGroup, instructors); err != nil {
		return err
	}
	for _, p := range cfg.Lifecycle.Prestart {
		doc, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("lifecycle.prestart %q: %w", p.Name, err)
		}
		if err := st.PutPrestart(ctx, p.Name, doc); err != nil {
			return err
		}
	}
	log.Info("users seeded from configuration", "count", len(want), "instructors", len(instructors), "prestart_schedules", len(cfg.Lifecycle.Prestart))
	return nil
}

// State reports whether the configured users reached Redis.
type State struct {
	mu  sync.Mutex
	err error
}

// Set records the outcome of the last seeding.
func (s *State) Set(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// Check reports to /hub/health until the users are in Redis.
func (s *State) Check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return fmt.Errorf("users from the configuration not yet in Redis: %w", s.err)
	}
	return nil
}

// RetryLoop retries seeding until it succeeds once (Redis may start after
// the orchestrator in a fresh stack).
func RetryLoop(ctx context.Context, st *store.Store, n *identity.Namer, cfg config.Config, log *slog.Logger, state *State) {
	for state.Check(ctx) != nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		err := Users(ctx, st, n, cfg, log)
		state.Set(err)
	}
}
