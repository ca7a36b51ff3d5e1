package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
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

// RegulationOptions: defaults are 3 failures from one address within 2
// minutes ban that address for that account for 5 minutes.
type RegulationOptions struct {
	// MaxFailures is the limit per account and client address (default 3):
	// reaching it bans that address from that account only, so one attacker
	// address cannot lock a student out.
	MaxFailures int
	Window      time.Duration // default 2m
	Ban         time.Duration // default 5m
	// AccountMaxFailures is the ceiling per account over all addresses
	// (default 10, and never below MaxFailures): a guess spread over many
	// addresses still bans the account, for everyone.
	AccountMaxFailures int
	// IPMaxFailures is the limit per client address, default 10*MaxFailures:
	// a lecture hall behind one NAT address must not lock itself out when a
	// few students mistype, while one address trying many names is stopped.
	IPMaxFailures int
}

// Regulator bans an (account, client address) pair, an account or a client
// address after too many failed logins. Call Allowed before checking the
// password, then Failed or Succeeded. Addresses are grouped by AddressGroup.
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
	if o.AccountMaxFailures <= 0 {
		o.AccountMaxFailures = 10
	}
	o.AccountMaxFailures = max(o.AccountMaxFailures, o.MaxFailures)
	if o.IPMaxFailures <= 0 {
		o.IPMaxFailures = 10 * o.MaxFailures
	}
	return &Regulator{c: c, o: o}
}

// BanError is returned by Allowed during a ban; errors.Is(err, ErrBanned).
type BanError struct {
	Subject    string // "user" (everywhere), "user at address" or "address"
	RetryAfter time.Duration
}

func (e *BanError) Error() string {
	return fmt.Sprintf("%v: %s banned for another %s", ErrBanned, e.Subject, e.RetryAfter.Round(time.Second))
}

func (e *BanError) Is(target error) bool { return target == ErrBanned }

// Allowed returns a *BanError while user (canonical; may be empty when the
// typed name was invalid) is banned at ip or everywhere, or ip is banned.
// It must be called before the password is checked, so a ban holds even for
// the right password.
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

// Failed counts a failed login for user from ip, for user and for ip, and
// bans whichever reached its limit within the window.
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

// Succeeded clears the failure count of user from ip. The account's and the
// address's counts are kept: a student logging in must not wipe out a
// distributed guess at their password, and one success from a shared
// address must not wipe out another name's attempts.
func (r *Regulator) Succeeded(ctx context.Context, user, ip string) error {
	if user == "" || ip == "" {
		return nil
	}
	if err := r.c.ClearCounter(ctx, "login:fail:"+pairKey(user, ip)); err != nil {
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
	if user != "" && ip != "" {
		s = append(s, subject{"user at address", pairKey(user, ip), r.o.MaxFailures})
	}
	if user != "" {
		limit := r.o.AccountMaxFailures
		if ip == "" {
			limit = r.o.MaxFailures // no address to tell attackers apart by
		}
		s = append(s, subject{"user", "user:" + keyPart(user), limit})
	}
	if ip != "" {
		s = append(s, subject{"address", "ip:" + keyPart(AddressGroup(ip)), r.o.IPMaxFailures})
	}
	return s
}

// pairKey names the counter of user from ip's address group.
func pairKey(user, ip string) string {
	return "pair:" + keyPart(user+"@"+AddressGroup(ip))
}

// AddressGroup is the unit login regulation counts a client address in:
// an IPv4 address itself, an IPv6 address's /64 (one subscriber usually holds
// a whole /64, so counting single IPv6 addresses would let one attacker
// use 2^64 of them). Anything that is no IP address is returned unchanged.
func AddressGroup(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// keyPart keeps key names short and printable whatever the caller passes:
// canonical names and IP addresses stay readable, anything else is hashed (with a prefix no plain value can have).
func keyPart(s string) string {
	if len(s) <= 64 {
		ok := true
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':' || c == '/' || c == '@') {
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
