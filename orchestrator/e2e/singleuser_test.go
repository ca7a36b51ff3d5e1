package e2e_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// serverLogin opens owner's jupyterhub-singleuser server the way a browser
// does: the server sends b to the hub's OAuth authorize endpoint, the hub
// (which knows b by its session) sends it back to the server's
// oauth_callback with a code, and the server, having exchanged the code
// for a token, sets its own cookie. It returns the hops it took.
func (b *browser) serverLogin(t *testing.T, owner string) []string {
	t.Helper()
	next := b.base + "/user/" + owner + "/tree"
	var hops []string
	for range 10 {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", next, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		u, _ := url.Parse(next)
		hops = append(hops, resp.Status+" "+u.Path)
		if resp.StatusCode == http.StatusOK {
			return hops
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			t.Fatalf("opening %s's server: %s at %s: %s (hops %v)", owner, resp.Status, u, body, hops)
		}
		nu, err := u.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		next = nu.String()
	}
	t.Fatalf("opening %s's server: too many redirects: %v", owner, hops)
	return nil
}

func hopped(hops []string, path string) bool {
	for _, h := range hops {
		if strings.HasSuffix(h, " "+path) {
			return true
		}
	}
	return false
}

// TestSingleUserImage runs an unmodified jupyterhub-singleuser image (Debian's
// JupyterHub 3.0 with Notebook 6.4), started as DockerSpawner starts it:
// the server logs the student in itself through the hub's OAuth provider.
// A real browser does the round trip; two students then run 1+1 over the
// kernel websocket through the proxy and get 403 on each other's servers;
// the server's hub API token never reaches a page.
func TestSingleUserImage(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deployWith(t, "singleuser", func(h *hub) string { return testConfig(h, defaultLifecycle) },
		"SWARMHUB_NOTEBOOK_IMAGE=swarmhub/notebook-singleuser:"+imageTag())

	t.Run("browser", func(t *testing.T) {
		tab := newChrome(t)
		step(t, tab, "open the login page", 60*time.Second, chromedp.Navigate(h.base+"/hub/login"))
		formLogin(t, tab, "alice")
		eval := func(expr string) string { t.Helper(); return evalIn[string](t, tab, expr) }
		step(t, tab, "reach home", 60*time.Second, chromedp.WaitVisible(chromedp.CSS("#start")))
		waitLoaded(t, tab, "/hub/home")
		step(t, tab, "press Start", 60*time.Second, chromedp.Click(chromedp.CSS("#start")))
		var loc string
		for deadline := time.Now().Add(4 * time.Minute); !strings.Contains(loc, "/user/alice/tree"); time.Sleep(500 * time.Millisecond) {
			loc = eval("location.href")
			if time.Now().After(deadline) {
				screenshot(t, tab, "failed")
				t.Fatalf("not in Jupyter 4 minutes after Start; at %s", loc)
			}
		}
		step(t, tab, "Jupyter's file list", 2*time.Minute, chromedp.WaitVisible(chromedp.CSS("#notebook_list")))
		screenshot(t, tab, "jupyter")
		apiToken := h.serviceEnv(t, "alice", "JUPYTERHUB_API_TOKEN")
		page := eval("document.documentElement.outerHTML + '\\n' + document.cookie + '\\n' + JSON.stringify(localStorage)")
		if page == "" {
			t.Fatal("could not read the page")
		}
		if strings.Contains(page, apiToken) {
			t.Fatal("the server's hub API token is visible to the page")
		}
	})

	alice, bob := h.student(t, "alice"), h.student(t, "bob")
	bob.startServer("bob")
	for _, b := range []*browser{alice, bob} {
		hops := b.serverLogin(t, b.user)
		if !hopped(hops, "/hub/api/oauth2/authorize") || !hopped(hops, "/user/"+b.user+"/oauth_callback") {
			t.Fatalf("%s reached the server without the OAuth round trip: %v", b.user, hops)
		}
		runOnePlusOne(t, b)
	}
	refusedAcross(t, alice, bob)
}
