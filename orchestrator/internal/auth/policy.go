package auth

import (
	"fmt"
)

// Admission is what the allow, admin and block lists say about one
// canonical username; the login reads it from the store in one call.
type Admission struct {
	Admin, Blocked, Allowed bool
}

// Policy decides whether an authenticated user may log in, and as admin.
type Policy struct {
	allowAll bool
}

// NewPolicy returns the admission policy. allowAll admits every
// authenticated user who is not blocked; it must be set explicitly (the
// default admits only listed users, members of an allowed group and admins).
func NewPolicy(allowAll bool) *Policy {
	return &Policy{allowAll: allowAll}
}

// Admit applies, in this order: blocked (ErrBlocked, even for admins), admin
// (admitted as admin), allowed list, an allowed group (Result.Groups not
// empty), allow_all; anyone else gets ErrNotAllowed. a must be the lists'
// answer for r.Username, which must be canonical.
func (p *Policy) Admit(r Result, a Admission) (admin bool, err error) {
	if r.Username == "" {
		return false, fmt.Errorf("%w: no username", ErrNotAllowed)
	}
	if a.Blocked {
		return false, fmt.Errorf("%w: %s", ErrBlocked, r.Username)
	}
	if a.Admin {
		return true, nil
	}
	// The authenticator reports only the configured allowed groups the user
	// is in (LDAPOptions.AllowedGroups), so any group admits.
	if a.Allowed || len(r.Groups) > 0 || p.allowAll {
		return false, nil
	}
	return false, fmt.Errorf("%w: %s is not on the allow list nor in an allowed group", ErrNotAllowed, r.Username)
}
