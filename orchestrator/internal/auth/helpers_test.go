package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedSlapd()
	os.Exit(code)
}

// Directory layout of testenv's people.ldif.
const (
	peopleTmpl = "uid={username},ou=people,dc=example,dc=edu"
	staffTmpl  = "uid={username},ou=staff,dc=example,dc=edu"
	data8Group = "cn=data8,ou=groups,dc=example,dc=edu"       // groupOfNames: alice, MixedCase, jsmith
	ds100Group = "cn=ds100,ou=groups,dc=example,dc=edu"       // posixGroup: bob, MixedCase
	staffGroup = "cn=instructors,ou=groups,dc=example,dc=edu" // groupOfUniqueNames: boninho, abedjan
	jsmithDN   = `cn=Smith\, John \+ \"Jr\" #1,ou=people,dc=example,dc=edu`
)

// slapd is the package's shared directory with TLS; tests only read from it.
func slapd(t testing.TB) *testenv.Slapd {
	return testenv.SharedSlapd(t, testenv.SlapdOptions{TLS: true})
}

// namer is the real identity namer with the course's username_map: both
// instructors log in to the one admin account, as the current setup does.
func namer(t testing.TB) auth.Namer {
	t.Helper()
	n, err := identity.New(identity.Options{UsernameMap: map[string]string{"boninho": "data8", "abedjan": "data8"}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// looseNamer only trims and lower-cases, so that hostile names reach the
// directory and the escaping is what stands between them and a match.
type looseNamer struct{}

func (looseNamer) Canonical(raw string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if s == "" {
		return "", errors.New("empty")
	}
	return s, nil
}

// newLogger logs at debug level into a buffer for assertions, echoed to the
// test log.
func newLogger(t testing.TB) (*slog.Logger, *testsupport.Buffer) {
	b := testsupport.NewEchoBuffer(t)
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// plainOpts: bind templates (staff first, so students need the second), no TLS.
func plainOpts(s *testenv.Slapd) auth.LDAPOptions {
	return auth.LDAPOptions{
		ServerAddress:    s.Host,
		ServerPort:       s.Port,
		TLS:              "none",
		BindDNTemplates:  []string{staffTmpl, peopleTmpl},
		DialTimeout:      5 * time.Second,
		OperationTimeout: 5 * time.Second,
	}
}

// lookupOpts: search with the service account under the base DN.
func lookupOpts(s *testenv.Slapd) auth.LDAPOptions {
	o := plainOpts(s)
	o.BindDNTemplates = nil
	o.LookupDN = true
	o.BindDN, o.BindPassword = s.AdminDN, s.AdminPassword
	o.UserSearchBase = s.BaseDN
	o.UserAttribute = "uid"
	o.SearchFilter = "(objectClass=inetOrgPerson)"
	return o
}

func newLDAP(t testing.TB, o auth.LDAPOptions, n auth.Namer) auth.Authenticator {
	t.Helper()
	log, _ := newLogger(t)
	a, err := auth.NewLDAP(o, n, log)
	if err != nil {
		t.Fatalf("NewLDAP: %v", err)
	}
	return a
}

// memLists holds the allow, admin and block lists in memory.
type memLists struct{ blocked, admin, allowed map[string]bool }

func (m memLists) of(u string) auth.Admission {
	return auth.Admission{Blocked: m.blocked[u], Admin: m.admin[u], Allowed: m.allowed[u]}
}

// memCounter is an in-memory auth.Counter with an injected clock, standing
// in for the store's Redis counters (INCR + EXPIRE on create, SET PX, PTTL, DEL).
type memCounter struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]memEntry
}

type memEntry struct {
	n   int64
	exp time.Time
}

func newMemCounter(now func() time.Time) *memCounter {
	return &memCounter{now: now, m: map[string]memEntry{}}
}

func (c *memCounter) live(key string) (memEntry, bool) {
	e, ok := c.m[key]
	if ok && !c.now().Before(e.exp) {
		delete(c.m, key)
		return memEntry{}, false
	}
	return e, ok
}

func (c *memCounter) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.live(key)
	if !ok {
		e = memEntry{exp: c.now().Add(ttl)}
	}
	e.n++
	c.m[key] = e
	return e.n, nil
}

func (c *memCounter) SetFlag(_ context.Context, key string, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = memEntry{n: 1, exp: c.now().Add(ttl)}
	return nil
}

func (c *memCounter) Flag(_ context.Context, key string) (bool, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.live(key)
	if !ok {
		return false, 0, nil
	}
	return true, e.exp.Sub(c.now()), nil
}

func (c *memCounter) ClearCounter(_ context.Context, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
	return nil
}

func (c *memCounter) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k := range c.m {
		out = append(out, k)
	}
	return out
}
