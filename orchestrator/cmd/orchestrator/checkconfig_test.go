package main

import (
	"bytes"
	"context"
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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

// selfSigned writes a certificate for hub.example.edu that expires in
// validFor, and its key; it returns both paths.
func selfSigned(t *testing.T, validFor time.Duration) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub.example.edu"},
		DNSNames: []string{"hub.example.edu"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(validFor)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "hub.pem"), filepath.Join(dir, "hub.key")
	writeTestFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeTestFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkConfigRun runs check-config with p and returns its output and exit code.
func checkConfigRun(t *testing.T, p prober, env map[string]string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := checkConfig(context.Background(), args, envMap(env), &out, &errOut, p)
	var ee exitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String() + errOut.String(), int(ee)
	}
	t.Fatalf("check-config: %v", err)
	return "", 0
}

func TestCheckConfigCertificate(t *testing.T) {
	env := func(cert, key string) map[string]string {
		return map[string]string{"SWARMHUB_TLS_CERT_FILE": cert, "SWARMHUB_TLS_KEY_FILE": key, "SWARMHUB_AUTH_DUMMY_PASSWORD": "s3cret"}
	}
	cert, key := selfSigned(t, 90*24*time.Hour)
	if out, code := checkConfigRun(t, defaultProber, env(cert, key), stackConfig); code != 0 {
		t.Fatalf("a certificate valid for 90 days: exit %d\n%s", code, out)
	}
	soon, soonKey := selfSigned(t, 3*24*time.Hour)
	out, code := checkConfigRun(t, defaultProber, env(soon, soonKey), stackConfig)
	if code != 1 || !strings.Contains(out, "tls.cert_file: ") || !strings.Contains(out, "less than 14") {
		t.Fatalf("a certificate expiring in 3 days: exit %d\n%s", code, out)
	}
	out, code = checkConfigRun(t, defaultProber, env(cert, soonKey), stackConfig)
	if code != 1 || !strings.Contains(out, "tls.key_file: ") {
		t.Fatalf("another certificate's key: exit %d\n%s", code, out)
	}
	if out, code := checkConfigRun(t, defaultProber, nil, "--probe", "dns", stackConfig); code != 2 {
		t.Fatalf("--probe dns: exit %d, want 2\n%s", code, out)
	}
}

// TestCheckConfigProbe runs --probe against a real slapd (StartTLS with the
// test CA, as with a university CA) and a TCP listener standing in for the
// NFS server, then against the wrong CA and a closed port.
func TestCheckConfigProbe(t *testing.T) {
	dir := testenv.StartSlapd(t, testenv.SlapdOptions{TLS: true})
	nfs, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer nfs.Close()
	go func() {
		for {
			c, err := nfs.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	_, nfsPort, _ := net.SplitHostPort(nfs.Addr().String())
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()

	file := func(caFile string) string {
		path := filepath.Join(t.TempDir(), "orchestrator.yaml")
		writeTestFile(t, path, fmt.Sprintf(`auth:
  authenticator: ldap
  ldap:
    server_address: 127.0.0.1
    server_port: %d
    tls: starttls
    ca_file: %s
    bind_dn_templates: ["uid={username},ou=people,%s"]
storage:
  backend: nfs
  nfs: {server: 127.0.0.1, export: /export/swarmhub}
`, dir.Port, caFile, dir.BaseDN))
		return path
	}
	good := prober{nfsPort: nfsPort, timeout: 10 * time.Second}
	if out, code := checkConfigRun(t, good, nil, "--probe", "ldap,nfs", file(dir.CAFile)); code != 0 {
		t.Fatalf("directory and NFS answer: exit %d\n%s", code, out)
	}
	// Without --probe nothing is dialled: the closed port is no problem.
	noNFS := prober{nfsPort: closedPort, timeout: 10 * time.Second}
	if out, code := checkConfigRun(t, noNFS, nil, file(dir.WrongCAFile)); code != 0 {
		t.Fatalf("without --probe: exit %d\n%s", code, out)
	}
	// Each probe on its own: a worker checks only NFS.
	if out, code := checkConfigRun(t, noNFS, nil, "--probe", "ldap", file(dir.CAFile)); code != 0 {
		t.Fatalf("--probe ldap with NFS down: exit %d\n%s", code, out)
	}
	out, code := checkConfigRun(t, noNFS, nil, "--probe", "nfs", file(dir.WrongCAFile))
	if code != 1 || strings.Contains(out, "auth.ldap") || !strings.Contains(out, "storage.nfs.server") {
		t.Fatalf("--probe nfs with the wrong CA and NFS down: exit %d\n%s", code, out)
	}
	out, code = checkConfigRun(t, noNFS, nil, "--probe", "ldap,nfs", file(dir.WrongCAFile))
	if code != 1 || !strings.Contains(out, "auth.ldap.server_address: 127.0.0.1 does not answer") ||
		!strings.Contains(out, "storage.nfs.server: NFS at "+net.JoinHostPort("127.0.0.1", closedPort)) {
		t.Fatalf("wrong CA and NFS down: exit %d\n%s", code, out)
	}
}
