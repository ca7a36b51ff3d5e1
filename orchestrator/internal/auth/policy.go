package auth

import (
	"context"
	"fmt"
)

// PolicyLists answers list membership by canonical username; the store
// implements it over the Redis allow, admin and block sets.
type PolicyLists interface {
	IsBlocked(ctx context.Context, user string) (bool, error)
	IsAdmin(ctx context.Context, user string) (bool, error)
	IsAllowed(ctx context.Context, user string) (bool, error)
}

// Policy decides whether an authenticated user may log in, and as admin.
type Policy struct {
	lists    PolicyLists
	allowAll bool
}

// NewPolicy returns the admission policy. allowAll admits every
// authenticated user who is not blocked; it must be set explicitly (the
// default admits only listed users, members of an allowed group and admins).
func NewPolicy(lists PolicyLists, allowAll bool) *Policy {
	return &Policy{lists: lists, allowAll: allowAll}
}

// Admit applies, in this order: blocked (ErrBlocked, even for admins), admin
// (admitted as admin), allowed list, an allowed group (Result.Groups not
// empty), allow_all; anyone else gets ErrNotAllowed. r.Username must be
// canonical.
func (p *Policy) Admit(ctx context.Context, r Result) (admin bool, err error) {
	if r.Username == "" {
		return false, fmt.Errorf("%w: no username", ErrNotAllowed)
	}
	blocked, err := p.lists.IsBlocked(ctx, r.Username)
	if err != nil {
		return false, fmt.Errorf("read block list for %q: %w", r.Username, err)
	}
	if blocked {
		return false, fmt.Errorf("%w: %s", ErrBlocked, r.Username)
	}
	admin, err = p.lists.IsAdmin(ctx, r.Username)
	if err != nil {
		return false, fmt.Errorf("read admin list for %q: %w", r.Username, err)
	}
	if admin {
		return true, nil
	}
	allowed, err := p.lists.IsAllowed(ctx, r.Username)
	if err != nil {
		return false, fmt.Errorf("read allow list for %q: %w", r.Username, err)
	}
	// The authenticator reports only the configured allowed groups the user
	// is in (LDAPOptions.AllowedGroups), so any group admits.
	if allowed || len(r.Groups) > 0 || p.allowAll {
		return false, nil
	}
	return false, fmt.Errorf("%w: %s is not on the allow list nor in an allowed group", ErrNotAllowed, r.Username)
}
