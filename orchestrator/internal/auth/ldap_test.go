package auth_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

// Everything below runs against a real slapd seeded from
// testenv/testdata/ldap/people.ldif.

func TestLDAPBindTemplates(t *testing.T) {
	s := slapd(t)
	a := newLDAP(t, plainOpts(s), namer(t))
	tests := []struct {
		name, login, password string
		wantUser, wantDN      string
		wantBinds             int // BIND requests slapd saw: the staff template is tried first
	}{
		{"student needs the second template", "alice", "alice-pw", "alice", "uid=alice,ou=people,dc=example,dc=edu", 2},
		{"instructor binds with the first template and maps to the admin account", "boninho", "boninho-pw", "data8", "uid=boninho,ou=staff,dc=example,dc=edu", 1},
		{"second instructor maps to the same account", "abedjan", "abedjan-pw", "data8", "uid=abedjan,ou=staff,dc=example,dc=edu", 1},
		{"uppercase typed", "ALICE", "alice-pw", "alice", "uid=alice,ou=people,dc=example,dc=edu", 2},
		{"spaces around", "  Alice \t", "alice-pw", "alice", "uid=alice,ou=people,dc=example,dc=edu", 2},
		{"uid stored with uppercase, typed as stored", "MixedCase", "mixed-pw", "mixedcase", "uid=mixedcase,ou=people,dc=example,dc=edu", 2},
		{"uid stored with uppercase, typed lower", "mixedcase", "mixed-pw", "mixedcase", "uid=mixedcase,ou=people,dc=example,dc=edu", 2},
		{"uid stored with uppercase, typed upper", " MIXEDCASE ", "mixed-pw", "mixedcase", "uid=mixedcase,ou=people,dc=example,dc=edu", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off := s.LogOffset(t)
			r, err := a.Authenticate(context.Background(), tt.login, tt.password)
			if err != nil {
				t.Fatalf("Authenticate(%q): %v", tt.login, err)
			}
			if r.Username != tt.wantUser || r.DN != tt.wantDN {
				t.Errorf("got user %q dn %q, want %q %q", r.Username, r.DN, tt.wantUser, tt.wantDN)
			}
			if binds := testenv.BindLines(s.LogSince(t, off)); len(binds) != tt.wantBinds {
				t.Errorf("slapd saw %d binds, want %d: %q", len(binds), tt.wantBinds, binds)
			}
		})
	}
}

func TestLDAPRefusals(t *testing.T) {
	s := slapd(t)
	for _, mode := range []struct {
		name string
		o    auth.LDAPOptions
	}{{"templates", plainOpts(s)}, {"lookup", lookupOpts(s)}} {
		a := newLDAP(t, mode.o, namer(t))
		tests := []struct {
			name, login, password string
			want                  error
		}{
			{"wrong password", "alice", "bob-pw", auth.ErrInvalidCredentials},
			{"password of another case", "alice", "ALICE-PW", auth.ErrInvalidCredentials},
			{"unknown user", "nobody", "alice-pw", auth.ErrInvalidCredentials},
			{"name the namer rejects", "alice/..", "alice-pw", auth.ErrInvalidCredentials},
			{"empty username", "  ", "alice-pw", auth.ErrInvalidCredentials},
		}
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				_, err := a.Authenticate(context.Background(), tt.login, tt.password)
				if !errors.Is(err, tt.want) {
					t.Fatalf("Authenticate(%q) = %v, want %v", tt.login, err, tt.want)
				}
			})
		}
	}
}

func TestLDAPLookupDN(t *testing.T) {
	s := slapd(t)
	a := newLDAP(t, lookupOpts(s), namer(t))
	tests := []struct {
		name, login, password, wantUser, wantDN string
	}{
		{"student", "alice", "alice-pw", "alice", "uid=alice,ou=people,dc=example,dc=edu"},
		{"instructor in another branch", "Boninho", "boninho-pw", "data8", "uid=boninho,ou=staff,dc=example,dc=edu"},
		{"DN with RFC 4514 special characters", "jsmith", "jsmith-pw", "jsmith", jsmithDN},
		{"uppercase uid in the directory", "mixedCASE", "mixed-pw", "mixedcase", "uid=MixedCase,ou=people,dc=example,dc=edu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off := s.LogOffset(t)
			r, err := a.Authenticate(context.Background(), tt.login, tt.password)
			if err != nil {
				t.Fatalf("Authenticate(%q): %v", tt.login, err)
			}
			if r.Username != tt.wantUser || !sameDN(t, r.DN, tt.wantDN) {
				t.Errorf("got user %q dn %q, want %q %q", r.Username, r.DN, tt.wantUser, tt.wantDN)
			}
			// The service account binds on one connection, the user on
			// another (a fresh one).
			binds := testenv.BindLines(s.LogSince(t, off))
			if len(binds) != 2 || !strings.Contains(binds[0], s.AdminDN) || connOf(binds[0]) == connOf(binds[1]) {
				t.Errorf("want a service bind then a user bind on another connection, got %q", binds)
			}
		})
	}

	t.Run("two entries for one name are refused as a directory problem", func(t *testing.T) {
		_, err := a.Authenticate(context.Background(), "dup", "dup-pw")
		if !errors.Is(err, auth.ErrDirectory) || errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("got %v, want ErrDirectory", err)
		}
	})
	t.Run("wrong service password is a directory problem, not the user's", func(t *testing.T) {
		o := lookupOpts(s)
		o.BindPassword = "wrong"
		_, err := newLDAP(t, o, namer(t)).Authenticate(context.Background(), "alice", "alice-pw")
		if !errors.Is(err, auth.ErrDirectory) {
			t.Fatalf("got %v, want ErrDirectory", err)
		}
	})
	t.Run("extra search filter excludes entries", func(t *testing.T) {
		o := lookupOpts(s)
		o.SearchFilter = "(ou=nonexistent)"
		_, err := newLDAP(t, o, namer(t)).Authenticate(context.Background(), "alice", "alice-pw")
		if !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("got %v, want ErrInvalidCredentials", err)
		}
	})
}

func TestLDAPUserDNAttribute(t *testing.T) {
	s := slapd(t)
	o := lookupOpts(s)
	o.UserAttribute = "mail"          // people log in with their e-mail address,
	o.LookupDNUserDNAttribute = "uid" // and the username is their uid
	a := newLDAP(t, o, namer(t))
	tests := []struct{ login, password, wantUser string }{
		{"alice@example.edu", "alice-pw", "alice"},
		{" MixedCase@Example.EDU ", "mixed-pw", "mixedcase"},
		{"boninho@example.edu", "boninho-pw", "data8"}, // username_map applies to the attribute's value
	}
	for _, tt := range tests {
		t.Run(tt.login, func(t *testing.T) {
			r, err := a.Authenticate(context.Background(), tt.login, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			if r.Username != tt.wantUser {
				t.Errorf("username = %q, want %q", r.Username, tt.wantUser)
			}
		})
	}
	if _, err := a.Authenticate(context.Background(), "alice@example.edu", "wrong"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("wrong password: %v", err)
	}
}

func TestLDAPGroupsAndPolicy(t *testing.T) {
	s := slapd(t)
	tmpl := plainOpts(s)
	tmpl.AllowedGroups = []string{data8Group, ds100Group}
	look := lookupOpts(s)
	look.AllowedGroups = []string{data8Group, ds100Group}
	look.GroupSearchBase = "ou=groups,dc=example,dc=edu"

	policy, lists := auth.NewPolicy(false), memLists{admin: map[string]bool{"data8": true}}
	tests := []struct {
		name, login, password string
		wantGroups            []string
		wantAdmit             error
		wantAdmin             bool
	}{
		{"member by DN (groupOfNames)", "alice", "alice-pw", []string{data8Group}, nil, false},
		{"member by memberUid (posixGroup)", "bob", "bob-pw", []string{ds100Group}, nil, false},
		{"uppercase uid in both kinds of group", "MIXEDCASE", "mixed-pw", []string{data8Group, ds100Group}, nil, false},
		{"instructor in no allowed group is admitted as admin via username_map", "boninho", "boninho-pw", nil, nil, true},
	}
	for _, mode := range []struct {
		name string
		o    auth.LDAPOptions
	}{{"templates, group as search base", tmpl}, {"lookup, group search base", look}} {
		a := newLDAP(t, mode.o, namer(t))
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				r, err := a.Authenticate(context.Background(), tt.login, tt.password)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(r.Groups, tt.wantGroups) {
					t.Errorf("groups = %q, want %q", r.Groups, tt.wantGroups)
				}
				admin, err := policy.Admit(r, lists.of(r.Username))
				if !errors.Is(err, tt.wantAdmit) || admin != tt.wantAdmin {
					t.Errorf("Admit = %v, %v; want %v, %v", admin, err, tt.wantAdmin, tt.wantAdmit)
				}
			})
		}
	}

	t.Run("DN with special characters is found as a group member", func(t *testing.T) {
		r, err := newLDAP(t, look, namer(t)).Authenticate(context.Background(), "jsmith", "jsmith-pw")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Groups, []string{data8Group}) {
			t.Errorf("groups = %q", r.Groups)
		}
	})
	t.Run("user outside every allowed group is refused", func(t *testing.T) {
		o := plainOpts(s)
		o.AllowedGroups = []string{data8Group}
		r, err := newLDAP(t, o, namer(t)).Authenticate(context.Background(), "bob", "bob-pw")
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Groups) != 0 {
			t.Errorf("groups = %q, want none", r.Groups)
		}
		if _, err := auth.NewPolicy(false).Admit(r, auth.Admission{}); !errors.Is(err, auth.ErrNotAllowed) {
			t.Errorf("Admit(bob) = %v, want ErrNotAllowed", err)
		}
	})
	t.Run("staff group via uniqueMember", func(t *testing.T) {
		o := plainOpts(s)
		o.AllowedGroups = []string{staffGroup, "cn=missing,ou=groups,dc=example,dc=edu"}
		r, err := newLDAP(t, o, namer(t)).Authenticate(context.Background(), "abedjan", "abedjan-pw")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Groups, []string{staffGroup}) {
			t.Errorf("groups = %q", r.Groups)
		}
	})
}

// Empty and whitespace-only passwords never reach the server: slapd's own
// log shows no connection and no BIND for them.
func TestLDAPEmptyPasswordNeverBinds(t *testing.T) {
	s := slapd(t)
	for _, mode := range []struct {
		name string
		o    auth.LDAPOptions
	}{{"templates", plainOpts(s)}, {"lookup", lookupOpts(s)}} {
		a := newLDAP(t, mode.o, namer(t))
		for _, pw := range []string{"", " ", "\t\n"} {
			t.Run(mode.name, func(t *testing.T) {
				off := s.LogOffset(t)
				_, err := a.Authenticate(context.Background(), "alice", pw)
				if !errors.Is(err, auth.ErrInvalidCredentials) {
					t.Fatalf("password %q: %v, want ErrInvalidCredentials", pw, err)
				}
				log := s.LogSince(t, off)
				if binds := testenv.BindLines(log); len(binds) != 0 {
					t.Errorf("password %q: slapd saw binds %q", pw, binds)
				}
				if strings.Contains(log, "ACCEPT") {
					t.Errorf("password %q: a connection reached slapd:\n%s", pw, log)
				}
			})
		}
		// The control: a wrong, non-empty password does show up as a BIND.
		off := s.LogOffset(t)
		if _, err := a.Authenticate(context.Background(), "alice", "x"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		if binds := testenv.BindLines(s.LogSince(t, off)); len(binds) == 0 {
			t.Fatalf("%s: the log shows no BIND for a wrong password either, so it proves nothing", mode.name)
		}
	}
}

// Hostile login names reach the directory only escaped: none authenticates,
// even with a real user's password, and none matches more than one entry
// (which the lookup would report as ErrDirectory).
func TestLDAPInjection(t *testing.T) {
	s := slapd(t)
	inputs := []string{"*", "*)(uid=*", "x)(|(uid=*", `\`, "alice\x00", "alice)", ",+=#;<", "alice,ou=people", "*alice*", "al*", "uid=alice", "#alice"}
	modes := []struct {
		name string
		o    auth.LDAPOptions
		n    auth.Namer
	}{
		{"templates, loose namer", plainOpts(s), looseNamer{}},
		{"lookup, loose namer", lookupOpts(s), looseNamer{}},
		{"lookup, identity namer", lookupOpts(s), namer(t)},
	}
	for _, m := range modes {
		a := newLDAP(t, m.o, m.n)
		for _, in := range inputs {
			t.Run(m.name+"/"+in, func(t *testing.T) {
				for _, pw := range []string{"alice-pw", "bob-pw", "*"} {
					r, err := a.Authenticate(context.Background(), in, pw)
					if err == nil {
						t.Fatalf("%q with password %q authenticated as %+v", in, pw, r)
					}
					if !errors.Is(err, auth.ErrInvalidCredentials) || errors.Is(err, auth.ErrDirectory) {
						t.Errorf("%q: got %v, want ErrInvalidCredentials only", in, err)
					}
				}
			})
		}
	}
	// The control: an unescaped wildcard would have matched several entries.
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&(uid=*)(|(uid=*)))", []string{"1.1"}, nil))
	if err != nil || len(res.Entries) < 2 {
		t.Fatalf("control search: %v entries, %v", res, err)
	}
}

func TestLDAPTLS(t *testing.T) {
	s := slapd(t)
	ldaps := func() auth.LDAPOptions {
		o := plainOpts(s)
		o.TLS, o.ServerPort, o.CAFile = "ldaps", s.TLSPort, s.CAFile
		return o
	}
	starttls := func() auth.LDAPOptions {
		o := plainOpts(s)
		o.TLS, o.CAFile = "starttls", s.CAFile
		return o
	}
	with := func(o auth.LDAPOptions, f func(*auth.LDAPOptions)) auth.LDAPOptions { f(&o); return o }

	accepted := []struct {
		name string
		o    auth.LDAPOptions
	}{
		{"ldaps, test CA, IP address as name", ldaps()},
		{"ldaps, test CA, server name localhost", with(ldaps(), func(o *auth.LDAPOptions) { o.ServerName = "localhost" })},
		{"starttls, test CA", starttls()},
		{"starttls, lookup mode", with(starttls(), func(o *auth.LDAPOptions) {
			l := lookupOpts(s)
			l.TLS, l.CAFile = "starttls", s.CAFile
			*o = l
		})},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			a := newLDAP(t, tt.o, namer(t))
			if err := a.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			r, err := a.Authenticate(context.Background(), "alice", "alice-pw")
			if err != nil || r.Username != "alice" {
				t.Fatalf("Authenticate = %+v, %v", r, err)
			}
		})
	}

	refused := []struct {
		name   string
		o      auth.LDAPOptions
		x509As any // for LDAPS, where the handshake error keeps its type
	}{
		{"ldaps, wrong CA", with(ldaps(), func(o *auth.LDAPOptions) { o.CAFile = s.WrongCAFile }), &x509.UnknownAuthorityError{}},
		{"ldaps, system roots only", with(ldaps(), func(o *auth.LDAPOptions) { o.CAFile = "" }), &x509.UnknownAuthorityError{}},
		{"ldaps, wrong hostname", with(ldaps(), func(o *auth.LDAPOptions) { o.ServerName = "wronghost" }), &x509.HostnameError{}},
		{"starttls, wrong CA", with(starttls(), func(o *auth.LDAPOptions) { o.CAFile = s.WrongCAFile }), nil},
		{"starttls, wrong hostname", with(starttls(), func(o *auth.LDAPOptions) { o.ServerName = "wronghost" }), nil},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			a := newLDAP(t, tt.o, namer(t))
			off := s.LogOffset(t)
			_, err := a.Authenticate(context.Background(), "alice", "alice-pw")
			if !errors.Is(err, auth.ErrUnavailable) {
				t.Fatalf("Authenticate = %v, want ErrUnavailable", err)
			}
			switch target := tt.x509As.(type) {
			case *x509.UnknownAuthorityError:
				if !errors.As(err, target) {
					t.Errorf("want an unknown-authority error, got %v", err)
				}
			case *x509.HostnameError:
				if !errors.As(err, target) {
					t.Errorf("want a hostname error, got %v", err)
				}
			default:
				if !strings.Contains(err.Error(), "certificate") {
					t.Errorf("want a certificate error, got %v", err)
				}
			}
			if binds := testenv.BindLines(s.LogSince(t, off)); len(binds) != 0 {
				t.Errorf("a bind reached slapd despite the failed TLS: %q", binds)
			}
			if err := a.Check(context.Background()); !errors.Is(err, auth.ErrUnavailable) {
				t.Errorf("Check = %v, want ErrUnavailable", err)
			}
		})
	}
}

// Against a server without TLS, StartTLS fails and no bind follows in clear.
func TestLDAPStartTLSFailureNeverFallsBack(t *testing.T) {
	s := testenv.SharedSlapd(t, testenv.SlapdOptions{TLS: false})
	for _, mode := range []string{"templates", "lookup"} {
		t.Run(mode, func(t *testing.T) {
			o := plainOpts(s)
			if mode == "lookup" {
				o = lookupOpts(s)
			}
			o.TLS = "starttls"
			a := newLDAP(t, o, namer(t))
			off := s.LogOffset(t)
			_, err := a.Authenticate(context.Background(), "alice", "alice-pw")
			if !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), "StartTLS") {
				t.Fatalf("Authenticate = %v, want a StartTLS failure", err)
			}
			log := s.LogSince(t, off)
			if !strings.Contains(log, "oid=1.3.6.1.4.1.1466.20037") {
				t.Errorf("slapd never saw the StartTLS request, so this test shows nothing:\n%s", log)
			}
			if binds := testenv.BindLines(log); len(binds) != 0 {
				t.Errorf("plaintext bind after failed StartTLS: %q", binds)
			}
		})
	}
	// The control: the same server accepts the same login without TLS.
	if _, err := newLDAP(t, plainOpts(s), namer(t)).Authenticate(context.Background(), "alice", "alice-pw"); err != nil {
		t.Fatalf("plaintext control: %v", err)
	}
}

// blackHole accepts TCP connections and never answers, like a directory
// behind a firewall that drops replies or a hung server.
func blackHole(t *testing.T) (host string, port int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(done)
				return
			}
			conns = append(conns, c) // held open, never read
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	a := l.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func TestLDAPBlackHoleIsUnavailable(t *testing.T) {
	host, port := blackHole(t)
	for _, tlsMode := range []string{"none", "ldaps", "starttls"} {
		for _, lookup := range []bool{false, true} {
			t.Run(tlsMode+map[bool]string{false: "/templates", true: "/lookup"}[lookup], func(t *testing.T) {
				o := auth.LDAPOptions{
					ServerAddress: host, ServerPort: port, TLS: tlsMode,
					BindDNTemplates: []string{peopleTmpl},
					DialTimeout:     300 * time.Millisecond, OperationTimeout: 300 * time.Millisecond,
				}
				if lookup {
					o.BindDNTemplates, o.LookupDN, o.UserSearchBase = nil, true, "dc=example,dc=edu"
					o.BindDN, o.BindPassword = "cn=reader,ou=system,dc=example,dc=edu", "reader-secret"
				}
				a := newLDAP(t, o, namer(t))
				if _, err := a.Authenticate(context.Background(), "alice", "alice-pw"); !errors.Is(err, auth.ErrUnavailable) {
					t.Errorf("Authenticate = %v, want ErrUnavailable", err)
				}
				if err := a.Check(context.Background()); !errors.Is(err, auth.ErrUnavailable) {
					t.Errorf("Check = %v, want ErrUnavailable", err)
				}
			})
		}
	}
	t.Run("closed port", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		a := newLDAP(t, auth.LDAPOptions{ServerAddress: "127.0.0.1", ServerPort: p, TLS: "none", BindDNTemplates: []string{peopleTmpl}}, namer(t))
		if _, err := a.Authenticate(context.Background(), "alice", "alice-pw"); !errors.Is(err, auth.ErrUnavailable) {
			t.Errorf("Authenticate = %v, want ErrUnavailable", err)
		}
	})
	t.Run("cancelled request stops waiting", func(t *testing.T) {
		// Timeouts far beyond the test's own: only the context can end this.
		a := newLDAP(t, auth.LDAPOptions{
			ServerAddress: host, ServerPort: port, TLS: "none", BindDNTemplates: []string{peopleTmpl},
			DialTimeout: time.Hour, OperationTimeout: time.Hour,
		}, namer(t))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := a.Authenticate(ctx, "alice", "alice-pw")
		if !errors.Is(err, context.Canceled) || !errors.Is(err, auth.ErrUnavailable) {
			t.Errorf("Authenticate = %v, want ErrUnavailable wrapping context.Canceled", err)
		}
	})
}

func TestLDAPCheck(t *testing.T) {
	s := slapd(t)
	t.Run("plaintext warns", func(t *testing.T) {
		log, buf := newLogger(t)
		a, err := auth.NewLDAP(lookupOpts(s), namer(t), log)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "passwords cross the network in clear") {
			t.Errorf("no plaintext warning in log:\n%s", buf)
		}
	})
	t.Run("wrong service password fails the check", func(t *testing.T) {
		o := lookupOpts(s)
		o.BindPassword = "nope"
		err := newLDAP(t, o, namer(t)).Check(context.Background())
		if err == nil || !strings.Contains(err.Error(), s.AdminDN) {
			t.Fatalf("Check = %v, want an error naming the service account", err)
		}
	})
	t.Run("skipping verification is logged as an error at start", func(t *testing.T) {
		o := plainOpts(s)
		o.TLS, o.ServerPort, o.CAFile, o.InsecureSkipVerify = "ldaps", s.TLSPort, "", true
		log, buf := newLogger(t)
		a, err := auth.NewLDAP(o, namer(t), log)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "level=ERROR") {
			t.Errorf("no ERROR for insecure_skip_verify:\n%s", buf)
		}
		if err := a.Check(context.Background()); err != nil {
			t.Errorf("Check: %v", err)
		}
	})
}

func TestNewLDAPRejectsBadOptions(t *testing.T) {
	good := auth.LDAPOptions{ServerAddress: "ldap.example.edu", TLS: "ldaps", BindDNTemplates: []string{peopleTmpl}}
	tests := []struct {
		name string
		edit func(*auth.LDAPOptions)
		want string
	}{
		{"no address", func(o *auth.LDAPOptions) { o.ServerAddress = "" }, "server_address"},
		{"tls unset", func(o *auth.LDAPOptions) { o.TLS = "" }, "ldaps, starttls or none"},
		{"tls misspelt", func(o *auth.LDAPOptions) { o.TLS = "ssl" }, "ldaps, starttls or none"},
		{"no templates nor lookup", func(o *auth.LDAPOptions) { o.BindDNTemplates = nil }, "bind_dn_template"},
		{"template without placeholder", func(o *auth.LDAPOptions) { o.BindDNTemplates = []string{"uid=x,dc=e"} }, "{username}"},
		{"lookup without base", func(o *auth.LDAPOptions) { o.LookupDN = true }, "user_search_base"},
		{"bad extra filter", func(o *auth.LDAPOptions) { o.LookupDN, o.UserSearchBase, o.SearchFilter = true, "dc=e", "(&(x=1)" }, "search_filter"},
		{"service DN without password", func(o *auth.LDAPOptions) { o.BindDN = "cn=reader,dc=e" }, "bind_password"},
		{"allowed group not a DN", func(o *auth.LDAPOptions) { o.AllowedGroups = []string{"data8"} }, "allowed_groups"},
		{"missing CA file", func(o *auth.LDAPOptions) { o.CAFile = "/nonexistent/ca.pem" }, "ca_file"},
	}
	log, _ := newLogger(t)
	if _, err := auth.NewLDAP(good, namer(t), log); err != nil {
		t.Fatalf("good options refused: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			_, err := auth.NewLDAP(o, namer(t), log)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewLDAP = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// The fourth attempt inside the window is refused even with the right
// password, and spelling variants of one name share the counter: the login
// flow canonicalises before it counts.
func TestLDAPLoginRegulation(t *testing.T) {
	s := slapd(t)
	a := newLDAP(t, plainOpts(s), namer(t))
	n := namer(t)
	clk := testsupport.NewClock(time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC))
	reg := auth.NewRegulator(newMemCounter(clk.Now), auth.RegulationOptions{MaxFailures: 3, Window: 2 * time.Minute, Ban: 5 * time.Minute})
	// login is the web layer's order of calls.
	login := func(raw, pw, ip string) error {
		user, _ := n.Canonical(raw)
		if err := reg.Allowed(context.Background(), user, ip); err != nil {
			return err
		}
		r, err := a.Authenticate(context.Background(), raw, pw)
		if err != nil {
			if ferr := reg.Failed(context.Background(), user, ip); ferr != nil {
				return ferr
			}
			return err
		}
		return reg.Succeeded(context.Background(), r.Username, ip)
	}
	for i, raw := range []string{"Alice", "ALICE", " alice "} {
		if err := login(raw, "wrong", "192.0.2.1"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		clk.Advance(10 * time.Second)
	}
	off := s.LogOffset(t)
	err := login("alice", "alice-pw", "192.0.2.1")
	var ban *auth.BanError
	if !errors.Is(err, auth.ErrBanned) || !errors.As(err, &ban) || ban.Subject != "user at address" {
		t.Fatalf("4th attempt with the right password = %v, want a ban of alice at that address", err)
	}
	if binds := testenv.BindLines(s.LogSince(t, off)); len(binds) != 0 {
		t.Errorf("a banned login still reached the directory: %q", binds)
	}
	if err := login("bob", "bob-pw", "192.0.2.1"); err != nil {
		t.Errorf("another user from the same address: %v", err)
	}
	clk.Advance(5 * time.Minute)
	if err := login("alice", "alice-pw", "192.0.2.1"); err != nil {
		t.Errorf("after the ban: %v", err)
	}
}

func BenchmarkLDAPLogin(b *testing.B) {
	s := slapd(b)
	b.Run("bare bind", func(b *testing.B) {
		for b.Loop() {
			c, err := ldap.DialURL(s.URL)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Bind("uid=alice,ou=people,dc=example,dc=edu", "alice-pw"); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	one := plainOpts(s)
	one.BindDNTemplates = []string{peopleTmpl}
	for _, mode := range []struct {
		name string
		o    auth.LDAPOptions
	}{{"template", one}, {"second template", plainOpts(s)}, {"lookup", lookupOpts(s)}} {
		a, err := auth.NewLDAP(mode.o, namer(b), slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := a.Authenticate(context.Background(), "alice", "alice-pw"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+" parallel", func(b *testing.B) {
			b.SetParallelism(25) // 50 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.Authenticate(context.Background(), "alice", "alice-pw"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func sameDN(t *testing.T, a, b string) bool {
	t.Helper()
	da, err := ldap.ParseDN(a)
	if err != nil {
		t.Fatalf("parse %q: %v", a, err)
	}
	db, err := ldap.ParseDN(b)
	if err != nil {
		t.Fatalf("parse %q: %v", b, err)
	}
	return da.EqualFold(db)
}

// connOf returns the conn=N field of a slapd log line.
func connOf(line string) string {
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "conn=") {
			return f
		}
	}
	return ""
}
