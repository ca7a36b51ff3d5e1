package web_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// TestMeasureLoginLatency is issue 3's "measured, not tested": login latency
// with 50 concurrent logins through the real handler (form token, regulation,
// LDAP bind against a local slapd, admission, session in a real Redis),
// beside the bare LDAP bind (dial, bind, close) measured in the same run.
// It prints a table and asserts nothing about time.
//
//	SWARMHUB_MEASURE=1 go test -count=1 -v -run TestMeasureLoginLatency ./orchestrator/internal/web/
func TestMeasureLoginLatency(t *testing.T) {
	if os.Getenv("SWARMHUB_MEASURE") == "" {
		t.Skip("measurement only: set SWARMHUB_MEASURE=1")
	}
	const (
		workers = 50
		perWkr  = 20 // 1000 samples per concurrent row
		serial  = 200
	)
	dir := testenv.StartSlapd(t, testenv.SlapdOptions{TLS: true})
	tlsConf := tlsConfig(t, dir)
	users := []struct{ name, pw string }{{"alice", "alice-pw"}, {"bob", "bob-pw"}, {"mixedcase", "mixed-pw"}}
	tmpl := "uid={username},ou=people,dc=example,dc=edu"

	type row struct {
		what    string
		tls     string
		conc    int
		samples []time.Duration
	}
	var rows []row

	for _, mode := range []string{"none", "starttls"} {
		// Bare bind: what the directory itself costs per login.
		bare := func(i int) time.Duration {
			u := users[i%len(users)]
			start := time.Now()
			c, err := ldap.DialURL(dir.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
			if err != nil {
				t.Errorf("dial: %v", err)
				return 0
			}
			defer c.Close()
			if mode == "starttls" {
				if err := c.StartTLS(tlsConf); err != nil {
					t.Errorf("starttls: %v", err)
					return 0
				}
			}
			if err := c.Bind(strings.ReplaceAll(tmpl, "{username}", u.name), u.pw); err != nil {
				t.Errorf("bind: %v", err)
				return 0
			}
			return time.Since(start)
		}
		rows = append(rows, row{"bare LDAP bind", mode, 1, runSerial(serial, bare)})
		rows = append(rows, row{"bare LDAP bind", mode, workers, runConcurrent(workers, perWkr, bare)})

		base := newMeasureHub(t, dir, mode)
		login := func(i int) time.Duration {
			u := users[i%len(users)]
			return measuredLogin(t, base, u.name, u.pw)
		}
		rows = append(rows, row{"POST /hub/login", mode, 1, runSerial(serial, login)})
		rows = append(rows, row{"POST /hub/login", mode, workers, runConcurrent(workers, perWkr, login)})
	}
	if t.Failed() {
		return
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nlogin latency against a local slapd (%d CPUs)\n", numCPU())
	fmt.Fprintf(&b, "%-18s %-9s %11s %7s %9s %9s %9s\n", "what", "ldap tls", "concurrency", "n", "p50", "p99", "max")
	for _, r := range rows {
		s := slices.Clone(r.samples)
		slices.Sort(s)
		fmt.Fprintf(&b, "%-18s %-9s %11d %7d %9s %9s %9s\n", r.what, r.tls, r.conc, len(s),
			pct(s, 50), pct(s, 99), s[len(s)-1].Round(10*time.Microsecond))
	}
	fmt.Print(b.String())
}

// tlsConfig verifies the test directory's certificate with its CA.
func tlsConfig(t *testing.T, dir *testenv.Slapd) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(dir.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", dir.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: dir.Host, MinVersion: tls.VersionTLS12}
}

func numCPU() int { return runtime.NumCPU() }

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i].Round(10 * time.Microsecond)
}

func runSerial(n int, f func(int) time.Duration) []time.Duration {
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, f(i))
	}
	return out
}

// runConcurrent starts workers goroutines at once, each doing per samples.
func runConcurrent(workers, per int, f func(int) time.Duration) []time.Duration {
	var (
		mu   sync.Mutex
		out  = make([]time.Duration, 0, workers*per)
		wg   sync.WaitGroup
		gate = make(chan struct{})
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			for i := 0; i < per; i++ {
				d := f(w*per + i)
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}
		}()
	}
	close(gate)
	wg.Wait()
	return out
}

type measureHub struct {
	base string
	tr   *http.Transport
}

// newMeasureHub runs web.Server in process with the real LDAP authenticator,
// policy and regulator over a private Redis.
func newMeasureHub(t *testing.T, dir *testenv.Slapd, mode string) measureHub {
	t.Helper()
	rdb := testenv.RedisClient(t)
	st := store.New(rdb, "m:")
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	authn, err := auth.NewLDAP(auth.LDAPOptions{
		ServerAddress: dir.Host, ServerPort: dir.Port, TLS: mode, CAFile: caIf(mode, dir.CAFile),
		BindDNTemplates: []string{"uid={username},ou=people,dc=example,dc=edu"},
	}, namer, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []string{"alice", "bob", "mixedcase"} {
		if err := st.PutUser(ctx, store.User{Name: n, Allowed: true}); err != nil {
			t.Fatal(err)
		}
	}
	srv := web.New(web.Options{Version: "measure", Logger: log}, web.Deps{
		Store:     st,
		Auth:      authn,
		Policy:    auth.NewPolicy(false),
		Regulator: auth.NewRegulator(st, auth.RegulationOptions{}),
		Namer:     namer,
		Servers:   &fakeServers{st: st},
		Proxy:     &fakeProxy{},
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	tr := &http.Transport{MaxIdleConns: 200, MaxIdleConnsPerHost: 200}
	t.Cleanup(tr.CloseIdleConnections)
	return measureHub{base: ts.URL, tr: tr}
}

func caIf(mode, ca string) string {
	if mode == "none" {
		return ""
	}
	return ca
}

// measuredLogin fetches the form (not timed), then times the POST.
func measuredLogin(t *testing.T, h measureHub, user, pw string) time.Duration {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: h.tr, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(h.base + "/hub/login")
	if err != nil {
		t.Errorf("login form: %v", err)
		return 0
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formXSRF.FindSubmatch(page)
	if m == nil {
		t.Errorf("login form has no _xsrf")
		return 0
	}
	form := url.Values{"username": {user}, "password": {pw}, "_xsrf": {string(m[1])}}
	start := time.Now()
	resp, err = c.PostForm(h.base+"/hub/login", form)
	d := time.Since(start)
	if err != nil {
		t.Errorf("login: %v", err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("login as %s: %d", user, resp.StatusCode)
	}
	return d
}
