package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// testPKI is a CA made for one test and a server certificate it signed for
// 127.0.0.1, localhost and the test's further IP addresses.
type testPKI struct {
	pool      *x509.CertPool
	spki      []string // base64 SHA-256 of the CA's and the server's public keys
	cert, key []byte   // server certificate (with the CA) and key, PEM
}

func newTestPKI(t testing.TB, ips ...string) *testPKI {
	t.Helper()
	gen := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := gen(), gen()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarmhub e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	sans := []net.IP{net.ParseIP("127.0.0.1")}
	for _, ip := range ips {
		sans = append(sans, net.ParseIP(ip))
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		DNSNames: []string{"localhost"}, IPAddresses: sans,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := x509.ParseCertificate(srvDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	for _, c := range []*x509.Certificate{ca, srv} {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		p.spki = append(p.spki, base64.StdEncoding.EncodeToString(sum[:]))
	}
	p.cert = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	p.key = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return p
}

// transport trusts the test CA only.
func (p *testPKI) transport() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}
}

// TestHTTPS is issue 14's HTTPS end to end: the orchestrator serves TLS
// with a certificate from a CA the test makes, sends HSTS, sets only Secure
// cookies, redirects plain HTTP to the HTTPS URL, and Chromium, trusting
// the test CA, logs in over HTTPS and runs a notebook cell over wss.
func TestHTTPS(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	pki := newTestPKI(t)
	redirectPort := freePort(t)
	override := filepath.Join(t.TempDir(), "redirect.yml")
	writeFile(t, override, fmt.Appendf(nil, `version: "3.8"
services:
  orchestrator:
    ports:
      - {target: 8080, published: %d, protocol: tcp, mode: host}
`, redirectPort))
	h := deployStack(t, "https", stackOptions{
		overrides: []string{override},
		prepare: func(h *hub) {
			h.base = fmt.Sprintf("https://127.0.0.1:%d", h.port)
			h.client = &http.Client{Transport: pki.transport(), Timeout: 10 * time.Second}
		},
	}, func(h *hub) string {
		writeFile(t, filepath.Join(h.root, "tls", "hub.pem"), pki.cert)
		writeFile(t, filepath.Join(h.root, "tls", "hub.key"), pki.key)
		return testConfig(h, defaultLifecycle+`listen: {redirect_port: 8080}
tls: {cert_file: /srv/swarmhub/tls/hub.pem, key_file: /srv/swarmhub/tls/hub.key}
`)
	})
	https := func() *browser {
		b := newBrowser(t, h.base)
		b.accessName = "__Secure-" + accessCookieName
		b.c.Transport = accessTransport{b: b, next: pki.transport()}
		return b
	}

	t.Run("plain HTTP is redirected to the HTTPS URL", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/hub/login?next=%%2Fhub%%2Fhome", redirectPort))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := h.base + "/hub/login?next=%2Fhub%2Fhome"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Fatalf("redirect: %d to %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		// And the HTTPS port speaks only TLS.
		if resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/hub/login", h.port)); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Fatalf("plain HTTP on the HTTPS port answered %d", resp.StatusCode)
			}
		}
	})

	t.Run("HSTS and Secure cookies", func(t *testing.T) {
		b := https()
		resp, page := b.get("/hub/login")
		if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
			t.Fatalf("login page: Strict-Transport-Security %q, want max-age", hsts)
		}
		m := hiddenXSRF.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("login page has no _xsrf field:\n%s", page)
		}
		cookies := resp.Cookies()
		resp, err := b.c.PostForm(h.base+"/hub/login", url.Values{"username": {"alice"}, "password": {password}, "_xsrf": {m[1]}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("login over HTTPS: %d", resp.StatusCode)
		}
		cookies = append(cookies, resp.Cookies()...)
		session := false
		for _, c := range cookies {
			if !c.Secure {
				t.Errorf("cookie %s is set without Secure", c.Name)
			}
			session = session || (c.Name == "swarmhub-session" && c.HttpOnly)
		}
		if !session {
			t.Fatalf("no HttpOnly session cookie in %v", cookies)
		}
	})

	// The notebook the browser runs, written through the API over HTTPS.
	api := https()
	if code := api.login("alice", password); code != http.StatusFound {
		t.Fatalf("API login: %d", code)
	}
	api.startServer("alice")
	code, body := api.api(http.MethodPut, "/user/alice/api/contents/https.ipynb", map[string]any{
		"type": "notebook", "format": "json",
		"content": map[string]any{"nbformat": 4, "nbformat_minor": 5,
			"metadata": map[string]any{"kernelspec": map[string]any{"name": "python3", "display_name": "Python 3", "language": "python"}},
			"cells":    []map[string]any{{"cell_type": "code", "source": "6*7", "metadata": map[string]any{}, "outputs": []any{}, "execution_count": nil}}},
	})
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("write notebook: %d %s", code, body)
	}

	t.Run("Chromium logs in over HTTPS and runs a cell", func(t *testing.T) {
		ctx := newChrome(t, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(pki.spki, ",")))
		step(t, ctx, "open the login page", 30*time.Second, chromedp.Navigate(h.base+"/hub/login"))
		formLogin(t, ctx, "alice")
		step(t, ctx, "reach home", 30*time.Second, chromedp.WaitVisible(chromedp.CSS("#home")))
		if proto := evalIn[string](t, ctx, "location.protocol"); proto != "https:" {
			t.Fatalf("home over %s", proto)
		}
		step(t, ctx, "open the notebook", 2*time.Minute,
			chromedp.Navigate(h.base+"/user/alice/notebooks/https.ipynb"),
			chromedp.WaitVisible(chromedp.CSS("#notebook-container")))
		ready := `typeof Jupyter !== "undefined" && !!Jupyter.notebook && !!Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected()`
		for deadline := time.Now().Add(2 * time.Minute); !evalIn[bool](t, ctx, ready); time.Sleep(500 * time.Millisecond) {
			if time.Now().After(deadline) {
				screenshot(t, ctx, "failed")
				t.Fatal("the notebook's kernel did not connect")
			}
		}
		if ws := evalIn[string](t, ctx, "Jupyter.notebook.kernel.ws.url"); !strings.HasPrefix(ws, "wss://") {
			t.Fatalf("kernel websocket %q, want wss://", ws)
		}
		evalIn[bool](t, ctx, "Jupyter.notebook.get_cell(0).execute(), true")
		output := `Jupyter.notebook.get_cell(0).output_area.outputs.map(o => (o.data && o.data["text/plain"]) || o.text || "").join("")`
		var got string
		for deadline := time.Now().Add(time.Minute); got != "42"; time.Sleep(500 * time.Millisecond) {
			if time.Now().After(deadline) {
				screenshot(t, ctx, "failed")
				t.Fatalf("cell output %q, want 42", got)
			}
			got = evalIn[string](t, ctx, output)
		}
		screenshot(t, ctx, "cell")
	})
}
