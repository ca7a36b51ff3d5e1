package web_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// TestDashboardScreenshots renders the pages with 5,000 seeded users and a
// day of chart samples in Chromium and saves PNGs to
// $SWARMHUB_WEB_SCREENSHOTS, for looking at the design. Opt-in: it asserts
// nothing the other tests do not.
func TestDashboardScreenshots(t *testing.T) {
	dir := os.Getenv("SWARMHUB_WEB_SCREENSHOTS")
	if dir == "" {
		t.Skip("set SWARMHUB_WEB_SCREENSHOTS=DIR to save screenshots of the pages")
	}
	e := newDashEnv(t)
	seedUsers(t, e.st, 5000, 100, imgOld)
	ctx0 := context.Background()
	for i := 0; i < 24*60; i += 7 {
		n := 20 + (i/60)*4 + i%13
		if err := e.st.RecordRunning(ctx0, e.now.Add(-time.Duration(24*60-i)*time.Minute), n); err != nil {
			t.Fatal(err)
		}
	}
	_ = e.st.SetSetting(ctx0, "notebook_image", imgNew)
	_ = e.st.PutServer(ctx0, store.Server{User: "user-00007", State: store.StateFailed, Error: "No such image: registry.example/course/notebook:2025"})
	_ = e.st.PutServer(ctx0, store.Server{User: "user-00008", State: store.StateStarting, Image: imgNew})
	cookie := adminCookie(t, e)

	alloc, cancelA := chromedp.NewExecAllocator(ctx0, chromedp.ExecPath("/usr/bin/chromium"), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900))
	defer cancelA()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	setCookie := `document.cookie = "` + cookie + `; path=/"`
	if err := chromedp.Do(ctx, chromedp.Navigate(e.ts.URL+"/hub/login")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](setCookie)); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"admin": "/hub/admin", "admin-search": "/hub/admin?q=user-000&state=ready&sort=-started",
		"gitpuller": "/hub/admin/gitpuller?repo=https://github.com/org/course&branch=main", "home": "/hub/home", "login": "/hub/login"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(e.ts.URL+path)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
		if name != "admin" {
			continue
		}
		for _, part := range []string{"top", "bottom"} {
			if part == "bottom" {
				_, _ = chromedp.Run(ctx, chromedp.Evaluate[any]("window.scrollTo(0, document.body.scrollHeight)"))
			}
			if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
				_ = os.WriteFile(filepath.Join(dir, name+"-"+part+".png"), png, 0o644)
			}
		}
	}
}
