package httpguard_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/httpguard"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLS: with TLS terminated in front of the guard, HTTP/1.1 and HTTP/2
// clients are served, handlers see Request.TLS, and a folded header is
// still refused.
func TestTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httpguard.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s tls=%v", r.Proto, r.TLS != nil)
	}), httpguard.Limits{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 32 << 10}, nil)
	go func() { _ = httpguard.Serve(hs, ln, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}, nil) }()
	t.Cleanup(func() { _ = hs.Close() })
	url := "https://" + ln.Addr().String() + "/hub/health"
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own certificate

	for _, tc := range []struct {
		name  string
		proto *http.Protocols
		want  string
	}{
		{"HTTP/1.1", protocols(func(p *http.Protocols) { p.SetHTTP1(true) }), "HTTP/1.1 tls=true"},
		{"HTTP/2", protocols(func(p *http.Protocols) { p.SetHTTP2(true) }), "HTTP/2.0 tls=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: insecure, Protocols: tc.proto}, Timeout: 30 * time.Second}
			resp, err := c.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if string(b) != tc.want {
				t.Fatalf("got %q, want %q", b, tc.want)
			}
		})
	}

	conn, err := tls.Dial("tcp", ln.Addr().String(), insecure)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(conn, "GET /hub/health HTTP/1.1\r\nHost: h\r\nX-Note: a\r\n Transfer-Encoding: chunked\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("folded header over TLS: %v %v, want 400", resp, err)
	}
}

func protocols(f func(*http.Protocols)) *http.Protocols {
	p := new(http.Protocols)
	f(p)
	return p
}
