package testenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// SlapdOptions selects how the test directory server is set up.
type SlapdOptions struct {
	// TLS gives slapd a certificate signed by a CA made for the test, so it
	// answers StartTLS on URL and LDAPS on LDAPSURL. Without it slapd has no
	// TLS at all (StartTLS is refused), which tests use to show that a failed
	// StartTLS never falls back to a plaintext bind.
	TLS bool
	// ListenHost is the address slapd listens on and the server
	// certificate names, besides localhost; default 127.0.0.1. End-to-end
	// tests use the docker_gwbridge gateway so that containers on an overlay
	// network reach the directory.
	ListenHost string
	// ExtraLDIF is an LDIF file of more entries under the base DN, loaded
	// after the seed (the course bench adds its students this way).
	ExtraLDIF string
}

// Slapd is a private OpenLDAP server seeded from testdata/ldap/people.ldif.
type Slapd struct {
	URL      string // ldap://HOST:PORT
	LDAPSURL string // ldaps://HOST:PORT, empty without TLS
	Host     string // SlapdOptions.ListenHost, default 127.0.0.1
	Port     int    // port of URL
	TLSPort  int    // port of LDAPSURL, 0 without TLS

	CAFile      string // CA that signed the server certificate (localhost, 127.0.0.1, ::1, Host)
	WrongCAFile string // an unrelated CA: verification against it must fail

	BaseDN        string // dc=example,dc=edu
	AdminDN       string // service account allowed to search (lookup_dn)
	AdminPassword string

	// LogPath holds slapd's `-d stats` output: one line per connection and
	// operation (ACCEPT, BIND dn=..., SRCH ..., RESULT ...). Tests read it to
	// show what reached the server; see LogOffset and LogSince.
	LogPath string

	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	marks  int
	mu     sync.Mutex
}

// ErrSlapdMissing is returned by LaunchSlapd when slapd or slapadd is not installed.
var ErrSlapdMissing = errors.New("slapd/slapadd not installed (Debian: apt-get install -y slapd ldap-utils)")

// StartSlapd starts a slapd for one test and stops it in t.Cleanup. When slapd
// is not installed the test is skipped, or fails when env CI is set.
func StartSlapd(t testing.TB, o SlapdOptions) *Slapd {
	t.Helper()
	slapdBinary(t)
	s, err := LaunchSlapd(o)
	if err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

var shared struct {
	mu sync.Mutex
	m  map[SlapdOptions]*Slapd
}

// SharedSlapd returns one slapd per options value for the whole test binary
// (starting it costs about a second). Tests that use it must not change the
// directory. Call StopSharedSlapd from TestMain after m.Run.
func SharedSlapd(t testing.TB, o SlapdOptions) *Slapd {
	t.Helper()
	slapdBinary(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if s := shared.m[o]; s != nil {
		return s
	}
	s, err := LaunchSlapd(o)
	if err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	if shared.m == nil {
		shared.m = map[SlapdOptions]*Slapd{}
	}
	shared.m[o] = s
	return s
}

// StopSharedSlapd stops every server SharedSlapd started.
func StopSharedSlapd() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for k, s := range shared.m {
		s.Stop()
		delete(shared.m, k)
	}
}

// slapdBinary skips (or, under CI, fails) the test when slapd is missing.
func slapdBinary(t testing.TB) string {
	t.Helper()
	p, err := lookSlapd("slapd")
	if err == nil {
		_, err = lookSlapd("slapadd")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v", ErrSlapdMissing)
		}
		t.Skipf("skipping: %v", ErrSlapdMissing)
	}
	return p
}

// lookSlapd finds an OpenLDAP server binary; Debian puts them in /usr/sbin,
// which is not always on a test's PATH.
func lookSlapd(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: %s not found", ErrSlapdMissing, name)
	}
	return p, nil
}

// LaunchSlapd starts a slapd outside any test's lifetime; the caller must
// call Stop. Prefer StartSlapd or SharedSlapd in tests.
func LaunchSlapd(o SlapdOptions) (*Slapd, error) {
	slapd, err := lookSlapd("slapd")
	if err != nil {
		return nil, err
	}
	slapadd, err := lookSlapd("slapadd")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "swarmhub-slapd-")
	if err != nil {
		return nil, err
	}
	host := o.ListenHost
	if host == "" {
		host = "127.0.0.1"
	}
	s := &Slapd{
		Host:          host,
		BaseDN:        "dc=example,dc=edu",
		AdminDN:       "cn=reader,ou=system,dc=example,dc=edu",
		AdminPassword: "reader-secret",
		LogPath:       filepath.Join(dir, "slapd.log"),
		dir:           dir,
	}
	// A port taken between choosing and binding makes slapd exit at once;
	// try again with fresh ports.
	for attempt := 0; ; attempt++ {
		err = s.launch(o, slapd, slapadd)
		if err == nil {
			return s, nil
		}
		if attempt == 2 {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if e := os.RemoveAll(dir); e != nil {
			return nil, e
		}
		if e := os.MkdirAll(dir, 0o700); e != nil {
			return nil, e
		}
	}
}

func (s *Slapd) launch(o SlapdOptions, slapd, slapadd string) error {
	confDir := filepath.Join(s.dir, "slapd.d")
	dataDir := filepath.Join(s.dir, "data")
	for _, d := range []string{confDir, dataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	var err error
	if s.Port, err = slapdFreePort(s.Host); err != nil {
		return err
	}
	s.URL = "ldap://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	listen := s.URL + "/"
	s.LDAPSURL, s.TLSPort, s.CAFile, s.WrongCAFile = "", 0, "", ""
	var tlsConf string
	if o.TLS {
		if s.TLSPort, err = slapdFreePort(s.Host); err != nil {
			return err
		}
		s.LDAPSURL = "ldaps://" + net.JoinHostPort(s.Host, strconv.Itoa(s.TLSPort))
		listen += " " + s.LDAPSURL + "/"
		certFile, keyFile, err := s.writeCerts()
		if err != nil {
			return fmt.Errorf("make test certificates: %w", err)
		}
		tlsConf = fmt.Sprintf("olcTLSCACertificateFile: %s\nolcTLSCertificateFile: %s\nolcTLSCertificateKeyFile: %s\n",
			s.CAFile, certFile, keyFile)
	}

	config := fmt.Sprintf(configLDIF, filepath.Join(s.dir, "slapd.pid"), tlsConf, s.BaseDN, dataDir)
	configPath := filepath.Join(s.dir, "config.ldif")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(slapadd, "-n", "0", "-F", confDir, "-l", configPath).CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd cn=config: %w: %s", err, out)
	}
	if out, err := exec.Command(slapadd, "-F", confDir, "-b", s.BaseDN, "-l", seedLDIF()).CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd %s: %w: %s", seedLDIF(), err, out)
	}
	if o.ExtraLDIF != "" {
		if out, err := exec.Command(slapadd, "-F", confDir, "-b", s.BaseDN, "-l", o.ExtraLDIF).CombinedOutput(); err != nil {
			return fmt.Errorf("slapadd %s: %w: %s", o.ExtraLDIF, err, out)
		}
	}

	logf, err := os.Create(s.LogPath)
	if err != nil {
		return err
	}
	// -d stats keeps slapd in the foreground and logs every operation.
	cmd := exec.Command(slapd, "-d", "stats", "-F", confDir, "-h", listen)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies without Stop, take slapd with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", slapd, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	addrs := []string{net.JoinHostPort(s.Host, strconv.Itoa(s.Port))}
	if o.TLS {
		addrs = append(addrs, net.JoinHostPort(s.Host, strconv.Itoa(s.TLSPort)))
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				log, _ := os.ReadFile(s.LogPath)
				return fmt.Errorf("slapd exited during start: %s", tail(log, 2000))
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				s.Stop()
				return fmt.Errorf("slapd did not listen on %s within 15s", a)
			}
		}
	}
	return nil
}

// Stop ends slapd and removes its files.
func (s *Slapd) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	_ = os.RemoveAll(s.dir)
}

// LogOffset is the current length of slapd's log; pass it to LogSince.
func (s *Slapd) LogOffset(t testing.TB) int64 {
	t.Helper()
	fi, err := os.Stat(s.LogPath)
	if err != nil {
		t.Fatalf("slapd log: %v", err)
	}
	return fi.Size()
}

// LogSince returns what slapd logged after off. slapd logs asynchronously, so
// it first sends a marker search and waits until slapd has logged it: every
// operation that reached the server before the marker is in the text
// returned (the marker's own lines are not). The text holds every client's
// traffic: a test that reads it must not run in parallel with other users of
// the same server.
func (s *Slapd) LogSince(t testing.TB, off int64) string {
	t.Helper()
	s.mu.Lock()
	s.marks++
	marker := fmt.Sprintf("swarmhub-log-marker-%d-%d", os.Getpid(), s.marks)
	s.mu.Unlock()

	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatalf("marker search: %v", err)
	}
	c.SetTimeout(5 * time.Second)
	_, err = c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(uid="+marker+")", []string{"1.1"}, nil))
	c.Close()
	// Anonymous clients may not read entries here, so the search itself is
	// refused; it is logged all the same, which is all the marker needs.
	if err != nil && ldap.IsErrorWithCode(err, ldap.ErrorNetwork) {
		t.Fatalf("marker search: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, err := os.ReadFile(s.LogPath)
		if err != nil {
			t.Fatalf("slapd log: %v", err)
		}
		if i := bytes.Index(b, []byte(marker)); i >= 0 && int64(i) >= off {
			text := string(b[off:i])
			lines := strings.SplitAfter(text, "\n")
			// The last, partial line is the marker's SRCH line; drop it
			// and every other line of the marker's connection.
			markerConn := ""
			for _, f := range strings.Fields(lines[len(lines)-1]) {
				if strings.HasPrefix(f, "conn=") {
					markerConn = f + " "
				}
			}
			var out strings.Builder
			for _, l := range lines[:len(lines)-1] {
				if markerConn == "" || !strings.Contains(l, markerConn) {
					out.WriteString(l)
				}
			}
			return out.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd did not log the marker search within 10s; log tail:\n%s", tail(b, 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BindLines returns the BIND requests in a piece of slapd's log (slapd logs
// each as `conn=N op=M BIND dn="..." method=128` when it arrives, and a
// second line with the outcome, which is not returned).
func BindLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, " BIND ") && strings.Contains(l, " method=") {
			out = append(out, l)
		}
	}
	return out
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func slapdFreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func seedLDIF() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "ldap", "people.ldif")
}

// writeCerts makes a throw-away CA, a server certificate it signs for
// localhost/127.0.0.1/::1 and s.Host, and an unrelated second CA.
func (s *Slapd) writeCerts() (certFile, keyFile string, err error) {
	caKey, caCert, caDER, err := newCA("swarmhub test CA")
	if err != nil {
		return "", "", err
	}
	_, _, wrongDER, err := newCA("swarmhub unrelated CA")
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(48 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(s.Host); ip != nil {
		if !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else if s.Host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, s.Host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	s.CAFile = filepath.Join(s.dir, "ca.pem")
	s.WrongCAFile = filepath.Join(s.dir, "wrong-ca.pem")
	certFile = filepath.Join(s.dir, "server.pem")
	keyFile = filepath.Join(s.dir, "server-key.pem")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{
		{s.CAFile, "CERTIFICATE", caDER},
		{s.WrongCAFile, "CERTIFICATE", wrongDER},
		{certFile, "CERTIFICATE", der},
		{keyFile, "PRIVATE KEY", keyDER},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return "", "", err
		}
	}
	return certFile, keyFile, nil
}

func newCA(name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, der, err
}

// configLDIF is the cn=config tree: pid file, TLS lines, suffix, data dir.
// Entries are readable by bound users only; anonymous clients may only bind.
const configLDIF = `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: %s
%s
dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif
include: file:///etc/ldap/schema/nis.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: %s
olcDbDirectory: %s
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: member,uniqueMember,memberUid eq
olcAccess: {0}to attrs=userPassword by anonymous auth by * none
olcAccess: {1}to * by users read by anonymous auth
`
