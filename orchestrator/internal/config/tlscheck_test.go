package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

// writeCert makes a self-signed certificate valid from notBefore to
// notAfter and writes it and its key as PEM; it returns both paths.
func writeCert(t *testing.T, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "hub.example.edu"},
		DNSNames:     []string{"hub.example.edu"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
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
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestCheckCertificate(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tlsConfig := func(cert, key string) config.Config {
		c := valid()
		c.TLS.CertFile, c.TLS.KeyFile = cert, key
		return c
	}
	goodCert, goodKey := writeCert(t, now.Add(-day), now.Add(90*day))
	_, otherKey := writeCert(t, now.Add(-day), now.Add(90*day))

	for _, tc := range []struct {
		name     string
		cert     string
		key      string
		wantKey  string // "" = no problem
		wantText string
	}{
		{"valid for 90 days", goodCert, goodKey, "", ""},
		{"key of another certificate", goodCert, otherKey, "tls.key_file", "private key does not match"},
		{"expires in 13 days", first(writeCert(t, now.Add(-day), now.Add(13*day))), "", "tls.cert_file", "in 13 days (less than 14)"},
		{"expired", first(writeCert(t, now.Add(-30*day), now.Add(-day))), "", "tls.cert_file", "expired on 2026-12-03"},
		{"not valid yet", first(writeCert(t, now.Add(day), now.Add(90*day))), "", "tls.cert_file", "not valid before 2026-12-05"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, key := tc.cert, tc.key
			if key == "" {
				key = strings.TrimSuffix(cert, ".pem") + ".key"
			}
			errs := tlsConfig(cert, key).CheckCertificate(now, config.CertMinValidity)
			if tc.wantKey == "" {
				if len(errs) != 0 {
					t.Fatalf("want no problem, got %v", errs)
				}
				return
			}
			if !slices.Equal(errs.Keys(), []string{tc.wantKey}) || !strings.Contains(errs.Error(), tc.wantText) {
				t.Fatalf("want one problem with %s containing %q, got %q", tc.wantKey, tc.wantText, errs.Error())
			}
		})
	}

	if errs := valid().CheckCertificate(now, config.CertMinValidity); len(errs) != 0 {
		t.Errorf("TLS off: want no problem, got %v", errs)
	}
}

func first(a, _ string) string { return a }
