package auth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

func newRegulator(o auth.RegulationOptions) (*auth.Regulator, *testsupport.Clock, *memCounter) {
	clk := testsupport.NewClock(time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC))
	c := newMemCounter(clk.Now)
	return auth.NewRegulator(c, o), clk, c
}

func fail(t *testing.T, r *auth.Regulator, user, ip string, n int) {
	t.Helper()
	for range n {
		if err := r.Failed(context.Background(), user, ip); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRegulatorDefaults(t *testing.T) {
	r, clk, _ := newRegulator(auth.RegulationOptions{}) // 3 in 2 min from one address → 5 min ban there
	ctx := context.Background()
	fail(t, r, "alice", "192.0.2.1", 2)
	if err := r.Allowed(ctx, "alice", "192.0.2.1"); err != nil {
		t.Fatalf("after 2 failures: %v", err)
	}
	fail(t, r, "alice", "192.0.2.1", 1)
	err := r.Allowed(ctx, "alice", "192.0.2.1")
	var ban *auth.BanError
	if !errors.As(err, &ban) || !errors.Is(err, auth.ErrBanned) || ban.Subject != "user at address" || ban.RetryAfter != 5*time.Minute {
		t.Fatalf("after 3 failures: %v (%+v), want a 5-minute ban of alice at that address", err, ban)
	}
	clk.Advance(5*time.Minute - time.Second)
	if err := r.Allowed(ctx, "alice", "192.0.2.1"); !errors.Is(err, auth.ErrBanned) {
		t.Fatalf("just before the ban ends: %v", err)
	}
	clk.Advance(time.Second)
	if err := r.Allowed(ctx, "alice", "192.0.2.1"); err != nil {
		t.Fatalf("after the ban: %v", err)
	}
}

// One address failing many times for an account bans only that address for
// that account: the student logs in from elsewhere. The per-account ceiling
// (10 by default) still stops a guess spread over many addresses, for every
// address.
func TestRegulatorOneAddressCannotLockOutAnAccount(t *testing.T) {
	r, _, _ := newRegulator(auth.RegulationOptions{})
	ctx := context.Background()
	fail(t, r, "alice", "198.51.100.66", 3)
	if err := r.Allowed(ctx, "alice", "198.51.100.66"); !errors.Is(err, auth.ErrBanned) {
		t.Fatalf("the attacking address is not banned: %v", err)
	}
	if err := r.Allowed(ctx, "alice", "192.0.2.10"); err != nil {
		t.Fatalf("alice from her own address after an attack from another: %v", err)
	}
	if err := r.Allowed(ctx, "bob", "198.51.100.66"); err != nil {
		t.Fatalf("another account from the attacking address: %v", err)
	}
	// Three more addresses (two failures each) bring alice to 9: not yet.
	for i := range 3 {
		fail(t, r, "alice", fmt.Sprintf("203.0.113.%d", i+1), 2)
	}
	if err := r.Allowed(ctx, "alice", "192.0.2.10"); err != nil {
		t.Fatalf("9 failures over 4 addresses: %v", err)
	}
	fail(t, r, "alice", "203.0.113.99", 1)
	var ban *auth.BanError
	if err := r.Allowed(ctx, "alice", "192.0.2.10"); !errors.As(err, &ban) || ban.Subject != "user" {
		t.Fatalf("10th failure over 5 addresses: %v, want alice banned everywhere", err)
	}
}

// IPv6 addresses count by /64: one subscriber cannot rotate through its
// prefix to get unlimited attempts; another /64 is not affected.
func TestRegulatorGroupsIPv6By64(t *testing.T) {
	r, _, _ := newRegulator(auth.RegulationOptions{})
	ctx := context.Background()
	for i := range 3 {
		fail(t, r, "alice", fmt.Sprintf("2001:db8:1:2::%x", i+1), 1)
	}
	if err := r.Allowed(ctx, "alice", "2001:db8:1:2:ffff:ffff:ffff:ffff"); !errors.Is(err, auth.ErrBanned) {
		t.Fatalf("3 failures from one /64: a fresh address in it is not banned: %v", err)
	}
	if err := r.Allowed(ctx, "alice", "2001:db8:1:3::1"); err != nil {
		t.Fatalf("the neighbouring /64: %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		if got := auth.AddressGroup(tc.in); got != tc.want {
			t.Errorf("AddressGroup(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRegulatorWindow(t *testing.T) {
	r, clk, _ := newRegulator(auth.RegulationOptions{MaxFailures: 3, Window: 2 * time.Minute, Ban: 5 * time.Minute})
	fail(t, r, "alice", "", 2)
	clk.Advance(2 * time.Minute) // the first two age out
	fail(t, r, "alice", "", 2)
	if err := r.Allowed(context.Background(), "alice", ""); err != nil {
		t.Fatalf("failures spread over two windows banned: %v", err)
	}
}

func TestRegulatorSuccessResetsUser(t *testing.T) {
	r, _, _ := newRegulator(auth.RegulationOptions{MaxFailures: 3})
	ctx := context.Background()
	fail(t, r, "alice", "192.0.2.1", 2)
	if err := r.Succeeded(ctx, "alice", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	fail(t, r, "alice", "192.0.2.1", 2)
	if err := r.Allowed(ctx, "alice", "192.0.2.1"); err != nil {
		t.Fatalf("2+2 failures around a success: %v", err)
	}
	fail(t, r, "alice", "192.0.2.1", 1)
	if err := r.Allowed(ctx, "alice", "192.0.2.1"); !errors.Is(err, auth.ErrBanned) {
		t.Fatalf("3 failures after the success: %v", err)
	}
}

// One address trying many names is stopped at 10×MaxFailures by default,
// while other addresses and the names themselves are unaffected.
func TestRegulatorPerAddress(t *testing.T) {
	r, _, _ := newRegulator(auth.RegulationOptions{MaxFailures: 3})
	ctx := context.Background()
	for i := range 30 {
		user := "guess" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := r.Allowed(ctx, user, "198.51.100.7"); err != nil {
			t.Fatalf("attempt %d refused early: %v", i+1, err)
		}
		fail(t, r, user, "198.51.100.7", 1)
	}
	var ban *auth.BanError
	if err := r.Allowed(ctx, "fresh", "198.51.100.7"); !errors.As(err, &ban) || ban.Subject != "address" {
		t.Fatalf("31st attempt from the address: %v, want an address ban", err)
	}
	if err := r.Allowed(ctx, "fresh", "198.51.100.8"); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

// Keys stay short whatever is typed, so a flood of long unique names cannot
// blow up key sizes (their number is bounded by the TTLs in Redis).
func TestRegulatorKeysAreBounded(t *testing.T) {
	r, _, c := newRegulator(auth.RegulationOptions{MaxFailures: 1})
	fail(t, r, strings.Repeat("x", 100000), "2001:db8::1", 1)
	fail(t, r, "Alice\x00*)(", "", 1)
	fail(t, r, "alice", "", 1)
	keys := c.keys()
	// fail+ban for the pair and fail for the long name (account limit 10),
	// fail for the address (limit 10), fail+ban for the two names without
	// an address (limit 1).
	if len(keys) != 8 {
		t.Errorf("keys = %q", keys)
	}
	for _, k := range keys {
		if len(k) > 100 || strings.ContainsAny(k, "\x00*() ") {
			t.Errorf("key %q is not short and printable", k)
		}
	}
	for _, want := range []string{"login:fail:user:alice", "login:fail:ip:2001:db8::/64"} {
		found := false
		for _, k := range keys {
			found = found || k == want
		}
		if !found {
			t.Errorf("no key %q in %q", want, keys)
		}
	}
}

// The store is the Counter used in production.
var _ auth.Counter = (*store.Store)(nil)

// The same rules against the real store on a real Redis; every key it leaves
// behind expires, which is what bounds memory under a flood of unique names.
func TestRegulatorWithRedisStore(t *testing.T) {
	rdb := testenv.RedisClient(t)
	st := store.New(rdb, "regtest")
	r := auth.NewRegulator(st, auth.RegulationOptions{MaxFailures: 3, Window: 2 * time.Minute, Ban: 5 * time.Minute})
	ctx := context.Background()

	fail(t, r, "alice", "192.0.2.1", 2)
	if err := r.Succeeded(ctx, "alice", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	fail(t, r, "alice", "192.0.2.1", 2)
	if err := r.Allowed(ctx, "alice", "192.0.2.1"); err != nil {
		t.Fatalf("2+2 failures around a success: %v", err)
	}
	fail(t, r, "alice", "192.0.2.1", 1)
	var ban *auth.BanError
	if err := r.Allowed(ctx, "alice", "192.0.2.1"); !errors.As(err, &ban) || ban.RetryAfter <= 0 || ban.RetryAfter > 5*time.Minute {
		t.Fatalf("after 3 failures: %v", err)
	}
	for i := range 200 {
		fail(t, r, fmt.Sprintf("flood-%d-%s", i, strings.Repeat("x", i)), "", 1)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 200 {
		t.Fatalf("only %d keys: the flood was not counted", len(keys))
	}
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > 5*time.Minute {
			t.Errorf("key %q has TTL %s, want one within the window or ban", k, ttl)
		}
	}
}
