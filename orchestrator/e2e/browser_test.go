package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserLoginStartJupyter is issue 3's browser test: a student logs in
// against the directory through the real form in Chromium, reaches home,
// presses Start, watches the progress page and lands in Jupyter.
func TestBrowserLoginStartJupyter(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := startDirectory(t)
	h := deployWith(t, "ldap-browser", func(h *hub) string {
		return withAuth(t, h, fmt.Sprintf(`auth:
  authenticator: ldap
  admin_users: [data8]
  allowed_users: [alice]
  ldap:
    server_address: %s
    server_port: %d
    tls: starttls
    ca_file: %s
    bind_dn_templates: [%q]
`, dir.Host, dir.Port, copyCA(t, h, dir), peopleTemplate))
	})

	tab := newChrome(t)
	do := func(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, d)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			screenshot(t, tab, "failed")
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Logf("evaluate %s: %v", expr, err)
		}
		return v
	}
	location := func() string { return eval("location.href") }

	do("open the login page", 60*time.Second,
		chromedp.Navigate(h.base+"/hub/login"),
		chromedp.WaitVisible(chromedp.CSS("#username_input")),
		chromedp.SendKeys(chromedp.CSS("#username_input"), " Alice"),
		chromedp.SendKeys(chromedp.CSS("#password_input"), "alice-pw"),
	)
	screenshot(t, tab, "1-login")

	do("log in", 60*time.Second,
		chromedp.Click(chromedp.CSS("#login_submit")),
		chromedp.WaitVisible(chromedp.CSS("#home")),
	)
	who := eval(`document.getElementById("home").dataset.user`)
	if loc := location(); !strings.HasSuffix(loc, "/hub/home") || who != "alice" {
		t.Fatalf("after login: at %s as %q, want /hub/home as alice", loc, who)
	}
	screenshot(t, tab, "2-home")

	waitLoaded(t, tab, "/hub/home")
	do("press Start", 60*time.Second,
		chromedp.WaitVisible(chromedp.CSS("#start")),
		chromedp.Click(chromedp.CSS("#start")),
		chromedp.WaitVisible(chromedp.CSS("#spawn")),
	)
	screenshot(t, tab, "3-progress")

	// The page follows the progress stream, then opens the server, which
	// sends the browser on to its file list.
	var loc string
	shotProgress := false
	for deadline := time.Now().Add(4 * time.Minute); ; {
		loc = location()
		if strings.Contains(loc, "/user/alice/tree") {
			break
		}
		if msg := eval(`(function(){var m=document.getElementById("msg");return m&&!m.hidden?m.textContent:""})()`); msg != "" {
			screenshot(t, tab, "failed")
			t.Fatalf("the progress page shows an error: %s", msg)
		}
		if !shotProgress && strings.Contains(loc, "/hub/spawn-pending/") {
			if log := eval(`(function(){var l=document.getElementById("log");return l?l.textContent:""})()`); log != "" {
				screenshot(t, tab, "3b-progress-events")
				shotProgress = true
			}
		}
		if time.Now().After(deadline) {
			screenshot(t, tab, "failed")
			t.Fatalf("not in Jupyter 4 minutes after Start; at %s", loc)
		}
		time.Sleep(500 * time.Millisecond)
	}

	do("Jupyter's file list", 2*time.Minute, chromedp.WaitVisible(chromedp.CSS("#notebook_list")))
	title := eval("document.title")
	screenshot(t, tab, "4-jupyter")
	if !strings.Contains(title, "Home") && !strings.Contains(title, "Jupyter") {
		t.Fatalf("Jupyter page title %q", title)
	}
	t.Logf("landed on %s (title %q)", loc, title)
}
