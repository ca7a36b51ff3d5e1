package store

import (
	"context"
	"errors"
)

// PolicyLists answers the admission policy from the user records in Redis.
type PolicyLists struct{ Store *Store }

func (p PolicyLists) lookup(ctx context.Context, user string) (User, bool, error) {
	u, err := p.Store.GetUser(ctx, user)
	if errors.Is(err, ErrNotFound) {
		return u, false, nil
	}
	return u, err == nil, err
}

// IsBlocked reports a blocked user record.
func (p PolicyLists) IsBlocked(ctx context.Context, user string) (bool, error) {
	u, ok, err := p.lookup(ctx, user)
	return ok && u.Blocked, err
}

// IsAllowed reports a user record on the allowed list.
func (p PolicyLists) IsAllowed(ctx context.Context, user string) (bool, error) {
	u, ok, err := p.lookup(ctx, user)
	return ok && u.Allowed, err
}

// IsAdmin reports an admin user record.
func (p PolicyLists) IsAdmin(ctx context.Context, user string) (bool, error) {
	u, ok, err := p.lookup(ctx, user)
	return ok && u.Admin, err
}
