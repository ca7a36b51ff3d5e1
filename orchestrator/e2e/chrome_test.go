package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's Chromium (apt-get install -y chromium).
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SWARMHUB_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not installed (Debian: apt-get install -y chromium); CI must run the browser tests")
	}
	t.Skip("skipping browser test: chromium not installed (Debian: apt-get install -y chromium)")
	return ""
}

// newChrome starts a headless Chromium with a fresh profile for one test and
// returns a browser tab's context; everything is torn down in t.Cleanup.
// chromedp.Do/Run with this context (or a child with a deadline) talk to
// that tab. A failed test leaves the tab's record (recordPage) in artifacts. extra adds Chromium options (e.g. a flag trusting a test CA).
func newChrome(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	// Start the browser now so a broken Chromium fails here, with its error.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		// Closing the tab context closes the browser; the allocator then
		// waits for the process and removes nothing we did not create.
		cancelCtx()
		cancelAlloc()
	})
	recordPage(t, ctx)
	return ctx
}

// artifactsDir is orchestrator/e2e/artifacts (git-ignored).
func artifactsDir(t testing.TB) string {
	dir := filepath.Join(repoRoot(), "orchestrator", "e2e", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	return dir
}

// screenshot saves the current viewport of ctx's tab as
// artifacts/<test name>-<name>.png. A failed screenshot is logged, not
// fatal: it is evidence, not the thing under test.
func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-" + name + ".png"
	path := filepath.Join(artifactsDir(t), file)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", path)
}

// waitLoaded waits until the page at path has run its scripts: a button
// is visible before app.js binds it, and a click before that does nothing.
func waitLoaded(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); evalIn[string](t, ctx, `location.pathname + " " + document.readyState`) != path+" complete"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("page %s not loaded: at %s", path, evalIn[string](t, ctx, `location.href + " " + document.readyState`))
		}
	}
}
