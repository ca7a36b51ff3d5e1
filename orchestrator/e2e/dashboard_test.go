package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// dashShot saves a full-page PNG under orchestrator/e2e/artifacts.
func dashShot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join(repoRoot(), "orchestrator", "e2e", "artifacts")
	_ = os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "dashboard-"+name+".png"), png, 0o644); err != nil {
		t.Logf("saving screenshot %s: %v", name, err)
	}
}

// step runs chromedp actions with a deadline, saving a screenshot of the
// page when they fail.
func step(t *testing.T, ctx context.Context, what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := chromedp.Do(sctx, actions...)
	// Chromium aborts a page load when the host's interfaces change, which
	// Docker does whenever a parallel test creates or removes a network: do
	// the step again, as a student would reload.
	for i := 0; i < 3 && err != nil && strings.Contains(err.Error(), "ERR_NETWORK_CHANGED"); i++ {
		t.Logf("%s: %v; again", what, err)
		err = chromedp.Do(sctx, actions...)
	}
	if err != nil {
		dashShot(t, ctx, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v (page %s)", what, err, evalIn[string](t, ctx, "location.href"))
	}
}

// evalIn evaluates a JavaScript expression in the page.
func evalIn[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Logf("evaluate %s: %v", expr, err)
	}
	return v
}

// formLogin logs in through the real form on the page the browser is on.
func formLogin(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	step(t, ctx, "log in as "+user, 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#username_input"), user),
		chromedp.SendKeys(chromedp.CSS("#password_input"), password),
		chromedp.Click(chromedp.CSS("#login_submit")),
	)
}

func (b *browser) userState(t *testing.T, user string) (state string, blocked bool) {
	t.Helper()
	code, body := b.api(http.MethodGet, "/hub/api/users/"+user, nil)
	var u struct {
		State   string
		Blocked bool
	}
	if code != http.StatusOK || json.Unmarshal(body, &u) != nil {
		t.Fatalf("GET user %s: %d %s", user, code, body)
	}
	return u.State, u.Blocked
}

// TestDashboardInBrowser is issue 5's browser test: an admin works the
// dashboard, and a logged-out student follows a user-redirect link through
// login and the spawn progress page to the target path.
func TestDashboardInBrowser(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "dashboard", "")
	adminAPI := newBrowser(t, h.base)
	if code := adminAPI.login("admin", password); code != http.StatusFound {
		t.Fatalf("admin API login: %d", code)
	}
	adminAPI.startServer("bob")

	ctx := newChrome(t)
	t.Run("admin logs in and sees both students", func(t *testing.T) {
		step(t, ctx, "open login page", 30*time.Second, chromedp.Navigate(h.base+"/hub/login"))
		dashShot(t, ctx, "login")
		formLogin(t, ctx, "admin")
		step(t, ctx, "reach home", 30*time.Second, chromedp.WaitVisible(chromedp.CSS("#home")))
		step(t, ctx, "open dashboard", 30*time.Second,
			chromedp.Navigate(h.base+"/hub/admin"),
			chromedp.WaitVisible(chromedp.CSS(`#users tr[data-user="alice"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#users tr[data-user="bob"][data-state="running"]`)),
		)
		running := evalIn[string](t, ctx, `document.getElementById("running-count").textContent`)
		if running != "1" {
			t.Errorf("dashboard says %s servers running, want 1 (bob)", running)
		}
		dashShot(t, ctx, "admin")
	})

	t.Run("admin stops a student's server", func(t *testing.T) {
		step(t, ctx, "stop bob", 90*time.Second,
			chromedp.Click(chromedp.CSS(`#users tr[data-user="bob"] button.stop-user`)),
			chromedp.WaitVisible(chromedp.CSS("#confirm-dialog")),
			chromedp.Func(func(context.Context, *chromedp.Target) error { dashShot(t, ctx, "confirm-stop"); return nil }),
			chromedp.Click(chromedp.CSS("#confirm-ok")),
			chromedp.WaitVisible(chromedp.CSS(`#users tr[data-user="bob"][data-state="stopped"]`)),
		)
		if state, _ := adminAPI.userState(t, "bob"); state != "stopped" {
			t.Fatalf("bob's server is %s after Stop on the dashboard", state)
		}
		if n := len(h.servicesOf(t, "bob")); n != 0 {
			t.Fatalf("bob still has %d services", n)
		}
	})

	t.Run("admin blocks and unblocks a user", func(t *testing.T) {
		step(t, ctx, "block alice", 60*time.Second,
			chromedp.Click(chromedp.CSS(`#users tr[data-user="alice"] button.block-user`)),
			chromedp.WaitVisible(chromedp.CSS("#confirm-dialog")),
			chromedp.Click(chromedp.CSS("#confirm-ok")),
			chromedp.WaitVisible(chromedp.CSS(`#users tr[data-user="alice"] .badge-blocked`)),
		)
		if _, blocked := adminAPI.userState(t, "alice"); !blocked {
			t.Fatal("alice is not blocked after Block on the dashboard")
		}
		dashShot(t, ctx, "blocked")
		student := newBrowser(t, h.base)
		if code := student.login("alice", password); code == http.StatusFound {
			t.Fatal("a blocked student logged in")
		}
		step(t, ctx, "unblock alice", 60*time.Second,
			chromedp.Click(chromedp.CSS(`#users tr[data-user="alice"] button.unblock-user`)),
			chromedp.WaitVisible(chromedp.CSS(`#users tr[data-user="alice"] button.block-user`)),
		)
		if _, blocked := adminAPI.userState(t, "alice"); blocked {
			t.Fatal("alice is still blocked after Unblock")
		}
	})

	t.Run("admin builds an nbgitpuller link", func(t *testing.T) {
		step(t, ctx, "invalid repository", 30*time.Second,
			chromedp.Navigate(h.base+"/hub/admin/gitpuller"),
			chromedp.WaitVisible(chromedp.CSS("#gp-repo")),
			chromedp.SendKeys(chromedp.CSS("#gp-repo"), "git@github.com:org/course.git"),
			chromedp.Click(chromedp.CSS("#gp-build")),
			chromedp.WaitVisible(chromedp.CSS("#error-repo")),
		)
		dashShot(t, ctx, "gitpuller-error")
		step(t, ctx, "valid link", 30*time.Second,
			chromedp.Navigate(h.base+"/hub/admin/gitpuller"),
			chromedp.WaitVisible(chromedp.CSS("#gp-repo")),
			chromedp.SendKeys(chromedp.CSS("#gp-repo"), "https://github.com/org/course-material"),
			chromedp.SendKeys(chromedp.CSS("#gp-branch"), "main"),
			chromedp.Click(chromedp.CSS("#gp-build")),
			chromedp.WaitVisible(chromedp.CSS("#gitpuller-link")),
		)
		link := evalIn[string](t, ctx, `document.getElementById("gitpuller-link").value`)
		copyButtons := evalIn[int](t, ctx, `document.querySelectorAll("#copy-link").length`)
		step(t, ctx, "copy the link", 30*time.Second,
			chromedp.Click(chromedp.CSS("#copy-link")),
			chromedp.WaitVisible(chromedp.CSS("#toast")),
		)
		want := h.base + "/hub/user-redirect/git-pull?branch=main&repo=" + url.QueryEscape("https://github.com/org/course-material") +
			"&urlpath=" + url.QueryEscape("tree/course-material/")
		if link != want {
			t.Errorf("link %q, want %q", link, want)
		}
		if copyButtons != 1 {
			t.Errorf("%d copy buttons, want 1", copyButtons)
		}
		dashShot(t, ctx, "gitpuller")
	})

	t.Run("logged-out student follows a user-redirect link", func(t *testing.T) {
		sctx := newChrome(t)
		step(t, sctx, "follow the link", 30*time.Second,
			chromedp.Navigate(h.base+"/hub/user-redirect/tree?x=1"),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
		)
		loc := evalIn[string](t, sctx, "location.href")
		if !strings.Contains(loc, "/hub/login?next=") {
			t.Fatalf("logged-out visitor landed on %s, want the login form with next=", loc)
		}
		formLogin(t, sctx, "alice")
		step(t, sctx, "spawn progress page", 60*time.Second, chromedp.WaitVisible(chromedp.CSS("#spawn")))
		barCount := evalIn[int](t, sctx, `document.querySelectorAll("#spawn .progress #bar").length`)
		dashShot(t, sctx, "spawn-progress")
		if barCount != 1 {
			t.Fatalf("spawn page has %d progress bars, want 1", barCount)
		}
		step(t, sctx, "land on the Jupyter tree", 4*time.Minute,
			chromedp.WaitVisible(chromedp.CSS("#notebook_list")),
		)
		loc = evalIn[string](t, sctx, "location.href")
		if !strings.HasSuffix(loc, "/user/alice/tree?x=1") {
			t.Fatalf("student landed on %s, want /user/alice/tree?x=1", loc)
		}
		dashShot(t, sctx, "jupyter-tree")
		step(t, sctx, "student home", 30*time.Second,
			chromedp.Navigate(h.base+"/hub/home"),
			chromedp.WaitVisible(chromedp.CSS("#open")),
		)
		dashShot(t, sctx, "student-home")
	})

	step(t, ctx, "dashboard at the end", 30*time.Second,
		chromedp.Navigate(h.base+"/hub/admin"),
		chromedp.WaitVisible(chromedp.CSS(`#users tr[data-user="alice"][data-state="running"]`)),
	)
	dashShot(t, ctx, "admin-end")
}
