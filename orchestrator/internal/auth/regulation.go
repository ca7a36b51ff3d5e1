package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Counter is what the Regulator needs from the store: counters and flags
// that expire by themselves. Because every key carries a TTL and lives in
// Redis, a flood of logins with unique made-up names costs Redis memory for
// at most one window per name and nothing in the orchestrator's memory.
type Counter interface {
	// Incr adds one to key and returns the new value; the TTL is set when
	// the key is created (a fixed window starting at the first failure).
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	SetFlag(ctx context.Context, key string, ttl time.Duration) error
	// Flag reports whether key is set and how long it still lives.
	Flag(ctx context.Context, key string) (bool, time.Duration, error)
	// ClearCounter deletes the counter key; a missing key is not an error.
	ClearCounter(ctx context.Context, key string) error
}

// RegulationOptions: defaults are 3 failures within 2 minutes ban for 5 minutes.
type RegulationOptions struct {
	MaxFailures int           // per user; default 3
	Window      time.Duration // default 2m
	Ban         time.Duration // default 5m
	// IPMaxFailures is the limit per client address, default 10*MaxFailures:
	// a lecture hall behind one NAT address must not lock itself out when a
	// few students mistype, while one address trying many names is stopped.
	IPMaxFailures int
}

// Regulator bans a user, or a client address, after too many failed logins.
// Call Allowed before checking the password, then Failed or Succeeded.
type Regulator struct {
	c Counter
	o RegulationOptions
}

// NewRegulator fills in defaults.
func NewRegulator(c Counter, o RegulationOptions) *Regulator {
	if o.MaxFailures <= 0 {
		o.MaxFailures = 3
	}
	if o.Window <= 0 {
		o.Window = 2 * time.Minute
	}
	if o.Ban <= 0 {
		o.Ban = 5 * time.Minute
	}
	if o.IPMaxFailures <= 0 {
		o.IPMaxFailures = 10 * o.MaxFailures
	}
	return &Regulator{c: c, o: o}
}

// BanError is returned by Allowed during a ban; errors.Is(err, ErrBanned).
type BanError struct {
	Subject    string // "user" or "address"
	RetryAfter time.Duration
}

func (e *BanError) Error() string {
	return fmt.Sprintf("%v: %s banned for another %s", ErrBanned, e.Subject, e.RetryAfter.Round(time.Second))
}

func (e *BanError) Is(target error) bool { return target == ErrBanned }

// Allowed returns a *BanError while user (canonical; may be empty when the
// typed name was invalid) or ip is banned. It must be called before the
// password is checked, so a ban holds even for the right password.
func (r *Regulator) Allowed(ctx context.Context, user, ip string) error {
	for _, k := range r.subjects(user, ip) {
		on, ttl, err := r.c.Flag(ctx, "login:ban:"+k.key)
		if err != nil {
			return fmt.Errorf("read login ban: %w", err)
		}
		if on {
			return &BanError{Subject: k.kind, RetryAfter: ttl}
		}
	}
	return nil
}

// Failed counts a failed login for user and ip and bans whichever reached
// its limit within the window.
func (r *Regulator) Failed(ctx context.Context, user, ip string) error {
	for _, k := range r.subjects(user, ip) {
		n, err := r.c.Incr(ctx, "login:fail:"+k.key, r.o.Window)
		if err != nil {
			return fmt.Errorf("count failed login: %w", err)
		}
		if n >= int64(k.limit) {
			if err := r.c.SetFlag(ctx, "login:ban:"+k.key, r.o.Ban); err != nil {
				return fmt.Errorf("set login ban: %w", err)
			}
		}
	}
	return nil
}

// Succeeded clears the user's failure count. The address count is kept: one
// success from a shared address must not wipe out another name's attempts.
func (r *Regulator) Succeeded(ctx context.Context, user, ip string) error {
	if user == "" {
		return nil
	}
	if err := r.c.ClearCounter(ctx, "login:fail:user:"+keyPart(user)); err != nil {
		return fmt.Errorf("reset failed-login count: %w", err)
	}
	return nil
}

type subject struct {
	kind, key string
	limit     int
}

func (r *Regulator) subjects(user, ip string) []subject {
	var s []subject
	if user != "" {
		s = append(s, subject{"user", "user:" + keyPart(user), r.o.MaxFailures})
	}
	if ip != "" {
		s = append(s, subject{"address", "ip:" + keyPart(ip), r.o.IPMaxFailures})
	}
	return s
}

// keyPart keeps key names short and printable whatever the caller passes:
// canonical names and IP addresses stay readable, anything else is hashed (with a prefix no plain value can have).
func keyPart(s string) string {
	if len(s) <= 64 {
		ok := true
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
				ok = false
				break
			}
		}
		if ok {
			return s
		}
	}
	sum := sha256.Sum256([]byte(s))
	return "~" + hex.EncodeToString(sum[:16])
}
