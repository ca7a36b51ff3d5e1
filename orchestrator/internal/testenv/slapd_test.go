package testenv_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

// The fixture itself: seeded data readable by the service account, StartTLS
// and LDAPS verified against the test CA, and every bind visible in the log.
func TestSlapdFixture(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{TLS: true})
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}

	off := s.LogOffset(t)
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(cfg); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatalf("service bind: %v", err)
	}
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=jsmith)", []string{"cn"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("search jsmith: %v %v", res, err)
	}
	if got := res.Entries[0].GetAttributeValue("cn"); got != `Smith, John + "Jr" #1` {
		t.Errorf("cn = %q", got)
	}
	log := s.LogSince(t, off)
	if binds := testenv.BindLines(log); len(binds) != 1 || !strings.Contains(binds[0], s.AdminDN) {
		t.Errorf("binds in log = %q, want the service bind only", binds)
	}

	lc, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(cfg))
	if err != nil {
		t.Fatalf("LDAPS: %v", err)
	}
	defer lc.Close()
	if err := lc.Bind("uid=alice,ou=people,"+s.BaseDN, "alice-pw"); err != nil {
		t.Fatalf("alice bind over LDAPS: %v", err)
	}
}

// ExtraLDIF adds entries beside the seed: its users can bind, the seed's
// still can.
func TestSlapdExtraLDIF(t *testing.T) {
	extra := t.TempDir() + "/extra.ldif"
	ldif := "dn: uid=extra1,ou=people,dc=example,dc=edu\nobjectClass: inetOrgPerson\nuid: extra1\ncn: Extra One\nsn: One\nuserPassword: extra-pw\n"
	if err := os.WriteFile(extra, []byte(ldif), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testenv.StartSlapd(t, testenv.SlapdOptions{ExtraLDIF: extra})
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind("uid=extra1,ou=people,"+s.BaseDN, "extra-pw"); err != nil {
		t.Errorf("extra1 bind: %v", err)
	}
	if err := c.Bind("uid=extra1,ou=people,"+s.BaseDN, "alice-pw"); err == nil {
		t.Error("extra1 bound with a wrong password")
	}
	if err := c.Bind("uid=alice,ou=people,"+s.BaseDN, "alice-pw"); err != nil {
		t.Errorf("alice bind: %v", err)
	}
}
