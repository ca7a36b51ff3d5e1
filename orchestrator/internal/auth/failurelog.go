package auth

import (
	"context"
	"fmt"
	"time"
)

// FailureLogOptions: by default the first 3 failures per user and client
// address are recorded one by one, and at most 100 failure events are
// recorded in 10 minutes over all users and addresses.
type FailureLogOptions struct {
	Each   int           // per user and address group; default 3
	Max    int           // over everything, per Window; default 100
	Window time.Duration // default 10m
}

// FailureLog decides which failed logins become events of their own, so
// that a flood of failures cannot flush the event log (which is capped):
// beyond Each per user and address a failure is only counted, and a summary
// is recorded at 10, 100, 1000 ... failures; beyond Max events per Window
// over everything, one last event says so and the rest are only counted
// (metrics count every attempt). Like the Regulator it keeps its counters in
// Redis with TTLs, so every replica shares them and memory stays bounded.
type FailureLog struct {
	c Counter
	o FailureLogOptions
}

// NewFailureLog fills in defaults.
func NewFailureLog(c Counter, o FailureLogOptions) *FailureLog {
	if o.Each <= 0 {
		o.Each = 3
	}
	if o.Max <= 0 {
		o.Max = 100
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Minute
	}
	return &FailureLog{c: c, o: o}
}

// FailureVerdict is what to record for one failed login.
type FailureVerdict struct {
	// Record: write an event; otherwise the failure is only counted.
	Record bool
	// Message describes the event when it is no single failure (a summary,
	// or the notice that further failures go unrecorded); empty otherwise.
	Message string
}

// Note counts one failed (or refused) login of user (may be empty) from ip.
func (f *FailureLog) Note(ctx context.Context, user, ip string) (FailureVerdict, error) {
	return f.note(ctx, "login:events:", user, ip)
}

// NoteBan is Note for logins refused because of a ban, counted apart from
// the failures that caused it, so the first refusals of a ban are always
// recorded (within the hub-wide ceiling).
func (f *FailureLog) NoteBan(ctx context.Context, user, ip string) (FailureVerdict, error) {
	return f.note(ctx, "login:bans:", user, ip)
}

func (f *FailureLog) note(ctx context.Context, prefix, user, ip string) (FailureVerdict, error) {
	key := prefix + "addr:" + keyPart(AddressGroup(ip))
	if user != "" {
		key = prefix + pairKey(user, ip)
	}
	n, err := f.c.Incr(ctx, key, f.o.Window)
	if err != nil {
		return FailureVerdict{Record: true}, fmt.Errorf("count failed login: %w", err)
	}
	if n > int64(f.o.Each) && !powerOfTen(n) {
		return FailureVerdict{}, nil
	}
	g, err := f.c.Incr(ctx, "login:events:all", f.o.Window)
	if err != nil {
		return FailureVerdict{Record: true}, fmt.Errorf("count failed-login events: %w", err)
	}
	switch {
	case g == int64(f.o.Max)+1:
		return FailureVerdict{Record: true, Message: fmt.Sprintf(
			"more than %d failed logins recorded within %s; further ones are only counted (see the login metrics) until that window ends", f.o.Max, f.o.Window)}, nil
	case g > int64(f.o.Max):
		return FailureVerdict{}, nil
	case n > int64(f.o.Each):
		return FailureVerdict{Record: true, Message: fmt.Sprintf(
			"%d failed logins from %s within %s; only the first %d are recorded one by one", n, AddressGroup(ip), f.o.Window, f.o.Each)}, nil
	}
	return FailureVerdict{Record: true}, nil
}

func powerOfTen(n int64) bool {
	if n < 10 {
		return false
	}
	for n%10 == 0 {
		n /= 10
	}
	return n == 1
}
