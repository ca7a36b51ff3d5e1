package e2e_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// runOnePlusOne has each student run 1+1 in a fresh kernel of their own
// server, through the proxy.
func runOnePlusOne(t *testing.T, students ...*browser) {
	t.Helper()
	for _, b := range students {
		out, err := b.runCode(b.user, "1+1")
		if err != nil {
			t.Fatalf("%s: %v", b.user, err)
		}
		if strings.TrimSpace(out) != "2" {
			t.Fatalf("%s: 1+1 gave %q", b.user, out)
		}
	}
}

// refusedAcross checks that a and b get 403 on each other's servers.
func refusedAcross(t *testing.T, a, b *browser) {
	t.Helper()
	for _, c := range []struct {
		b     *browser
		other string
	}{{a, b.user}, {b, a.user}} {
		if code, _, _ := c.b.apiErr(http.MethodGet, "/user/"+c.other+"/api/contents", nil); code != http.StatusForbidden {
			t.Errorf("%s reading %s's server: %d, want 403", c.b.user, c.other, code)
		}
	}
}

// keepBusy sends b's proxied traffic to its own server every period until
// the test ends.
func keepBusy(t *testing.T, b *browser, path string, period time.Duration) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(period):
				_, _, _ = b.apiErr(http.MethodGet, "/user/"+b.user+path, nil)
			}
		}
	}()
}

// TestJupyterServerImage runs the Jupyter Server image (the server API that
// JupyterLab and Notebook 7 sit on) through the whole path: two students log
// in through the form, start, run 1+1 over the kernel websocket through the
// proxy, and cannot reach each other's servers; a request carrying the
// server token as JupyterLab's page sends it gets through; a server that
// only the culler's probe touches is culled, one with a busy kernel is kept.
// Jupyter Server counts any API request without no_track_activity=1 as
// activity, so a probe that forgets it would keep every server alive.
func TestJupyterServerImage(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deployWith(t, "jserver", func(h *hub) string {
		return testConfig(h, `lifecycle:
  cull: {enabled: true, schedule: "@every 5s", timeout: 45s}
  archive: {enabled: false}
`)
	}, "SWARMHUB_NOTEBOOK_IMAGE=swarmhub/notebook-server:"+imageTag())
	admin := h.admin(t)
	alice, bob := h.student(t, "alice"), h.student(t, "bob")
	var wg sync.WaitGroup
	for _, b := range []*browser{alice, bob} {
		wg.Add(1)
		go func(b *browser) { defer wg.Done(); b.startServer(b.user) }(b)
	}
	wg.Wait()

	runOnePlusOne(t, alice, bob)
	refusedAcross(t, alice, bob)

	// JupyterLab's page sends the server token it was given as
	// Authorization, next to the hub cookie.
	tok := h.serverToken(t, "alice")
	req, _ := http.NewRequest(http.MethodGet, alice.base+"/user/alice/api/contents", nil)
	req.Header.Set("Authorization", "token "+tok)
	resp, err := alice.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("request with the server token from the page: %d %s", resp.StatusCode, body)
	}
	// The same token from bob's browser is still bob's request.
	req, _ = http.NewRequest(http.MethodGet, bob.base+"/user/alice/api/contents", nil)
	req.Header.Set("Authorization", "token "+tok)
	if resp, err := bob.c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob with alice's server token: %v %v, want 403", resp.Status, err)
	}

	// bob's kernel works for five minutes; alice does nothing more.
	busy := make(chan error, 2)
	work := func() {
		_, err := bob.runCodeFor("bob", "import time\nfor _ in range(300): time.sleep(1)", 6*time.Minute)
		busy <- err
	}
	go work()
	started, sent := time.Now(), time.Now()
	retried := false
	for {
		_, body, _ := bob.apiErr(http.MethodGet, "/user/bob/api/kernels", nil)
		state := kernelState(body)
		if state == "busy" || (state == "starting" && time.Since(started) > 75*time.Second) {
			break
		}
		// An execute_request sent the moment the kernel's websocket opens
		// was once lost (the kernel stayed idle with the socket connected):
		// run the cell once more in a second kernel, as a student would.
		if state == "idle" && !retried && time.Since(sent) > 45*time.Second {
			t.Logf("bob's kernel still idle 45 s after the cell was sent; running it again: %s", body)
			retried, sent = true, time.Now()
			go work()
		}
		select {
		case err := <-busy:
			t.Fatalf("bob's kernel ended early: %v", err)
		default:
		}
		if time.Since(started) > 3*time.Minute {
			t.Fatalf("bob's kernel is not busy after 3 minutes: %s", body)
		}
		time.Sleep(time.Second)
	}
	bobLast := time.Now()
	deadline := time.Now().Add(3 * time.Minute)
	for admin.state(t, "alice") != "stopped" && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
	}
	if s := admin.state(t, "alice"); s != "stopped" {
		t.Fatalf("a server only the culler probed was not culled: state %s", s)
	}
	if rest := time.Until(bobLast.Add(45*time.Second + 20*time.Second)); rest > 0 {
		time.Sleep(rest)
	}
	if s := admin.state(t, "bob"); s != "running" {
		t.Fatalf("bob's server with a busy kernel was culled (state %s); events: %+v", s, admin.events(t))
	}
}
