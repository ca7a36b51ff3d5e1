// Package auth decides who may log in: Authenticator implementations (LDAP,
// and a development-only dummy), the allow/admin/block admission Policy, and
// the Regulator that bans brute-force attempts.
//
// A login goes: Regulator.Allowed (before any password check) →
// Authenticator.Authenticate → Regulator.Failed or Succeeded → Policy.Admit.
// Every caller shows the same generic message for every refusal; the errors
// below are for logs, metrics and tests.
package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Result is an authenticated directory user.
type Result struct {
	Username string   // canonical username (identity.Namer), after username_map
	Groups   []string // the configured allowed groups the user belongs to
	DN       string   // the DN that bound successfully; empty for the dummy authenticator
}

// Authenticator checks a login name and password.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (Result, error)
	Name() string
	// Check probes the backend at startup and for health reports.
	Check(ctx context.Context) error
}

// Namer turns a raw login name into the canonical username (trim,
// lower-case, username_map, pattern); internal/identity implements it.
type Namer interface {
	Canonical(raw string) (string, error)
}

var (
	// ErrInvalidCredentials: unknown user, wrong or empty password, or a
	// name that can never be valid.
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrUnavailable: the directory could not be reached, did not answer in
	// time, or its TLS certificate could not be verified.
	ErrUnavailable = errors.New("directory unavailable")
	// ErrDirectory: the directory answered, but not in a way that allows a
	// safe decision (for instance two entries for one login name, or a
	// missing username attribute). An operator must look at the directory or
	// the configuration.
	ErrDirectory = errors.New("directory problem")
	// ErrNotAllowed: authenticated, but neither listed, in an allowed group,
	// nor admin, and allow_all is off.
	ErrNotAllowed = errors.New("user not allowed")
	// ErrBlocked: the user is on the block list.
	ErrBlocked = errors.New("user blocked")
	// ErrBanned: too many failed logins recently for this user or address.
	ErrBanned = errors.New("too many failed login attempts")
)

// checkInput refuses what must never reach a directory: an empty or
// whitespace-only password (an LDAP simple bind with an empty password is an
// unauthenticated bind that succeeds on many servers, RFC 4513 5.1.2) and NUL
// bytes, which C-based servers may truncate at.
func checkInput(username, password string) error {
	if strings.TrimSpace(password) == "" {
		return fmt.Errorf("%w: empty password", ErrInvalidCredentials)
	}
	if strings.ContainsRune(password, 0) {
		return fmt.Errorf("%w: password contains a NUL byte", ErrInvalidCredentials)
	}
	if strings.TrimSpace(username) == "" {
		return fmt.Errorf("%w: empty username", ErrInvalidCredentials)
	}
	if strings.ContainsRune(username, 0) {
		return fmt.Errorf("%w: username contains a NUL byte", ErrInvalidCredentials)
	}
	return nil
}

// canonical applies the namer; a name it rejects is invalid credentials to
// the user, with the namer's reason kept for the log.
func canonical(n Namer, raw string) (string, error) {
	name, err := n.Canonical(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidCredentials, err)
	}
	return name, nil
}
