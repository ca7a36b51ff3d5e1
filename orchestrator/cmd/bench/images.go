package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

// benchImage is one Jupyter image of the images suite.
type benchImage struct {
	label    string // notebook-debian, notebook-server, notebook-singleuser
	short    string // in usernames
	image    string
	contract string
}

// benchImages finds the three Jupyter images among the allowed ones, with
// the start contract the configuration gives each.
func (e *env) benchImages() ([]benchImage, error) {
	opts := e.specOptions(e.cfg.Instance)
	var out []benchImage
	for _, b := range []benchImage{{label: "notebook-debian", short: "deb"}, {label: "notebook-server", short: "srv"}, {label: "notebook-singleuser", short: "su"}} {
		img, err := e.imageNamed(b.label)
		if err != nil {
			return nil, err
		}
		b.image, b.contract = img, opts.Contract(img)
		out = append(out, b)
	}
	return out, nil
}

// suiteImages: for each Jupyter image, time to ready through swarmhub beside
// a bare service of the same image, and the kernel round trip through the
// proxy beside the same server reached at its task IP.
func (e *env) suiteImages(ctx context.Context) ([]table, error) {
	imgs, err := e.benchImages()
	if err != nil {
		return nil, err
	}
	t := table{Title: fmt.Sprintf("Jupyter images: time to ready (median of %d sequential starts per side) and kernel round trip (median of %d per side)", e.o.ImageRuns, e.o.WSRounds),
		Head: []string{"image", "contract", "swarmhub ready", "bare ready", "ratio", "kernel 1+1 direct", "through proxy", "added", "ratio"}}
	for _, im := range imgs {
		var orch, bare []time.Duration
		var kd, kp time.Duration
		for i := 1; i <= e.o.ImageRuns; i++ {
			u := fmt.Sprintf("im%s%02d", im.short, i)
			// Interleaved, so that drift in the machine's load hits both sides.
			d, s, err := e.timedStart(ctx, u, im.image)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", im.label, err)
			}
			orch = append(orch, d)
			if i == e.o.ImageRuns {
				// On the last server only: the round trips do not delay the other starts.
				direct, proxied, err := e.imageKernel(ctx, im, s, u)
				if err != nil {
					t.Notes = append(t.Notes, fmt.Sprintf("%s: kernel round trip skipped: %v.", im.label, err))
				} else {
					kd, kp = median(direct), median(proxied)
				}
			}
			if err := e.stopServers(ctx, []string{u}); err != nil {
				return nil, err
			}
			d, err = e.bareSpawn(ctx, fmt.Sprintf("imbare%s%02d", im.short, i), im.image, floorInterval)
			if err != nil {
				return nil, fmt.Errorf("%s baseline: %w", im.label, err)
			}
			bare = append(bare, d)
			if err := e.removeBare(ctx); err != nil {
				return nil, err
			}
		}
		mo, mb := median(orch), median(bare)
		row := []string{im.label, im.contract, secs(mo), secs(mb), ratio(mo.Seconds(), mb.Seconds())}
		if kd > 0 {
			row = append(row, ms(kd), ms(kp), signed(kp-kd), ratio(kp.Seconds(), kd.Seconds()))
		} else {
			row = append(row, "–", "–", "–", "–")
		}
		t.add(row...)
		t.Notes = append(t.Notes, fmt.Sprintf("%s (%s): swarmhub %s s; bare %s s.", im.label, im.image, joinSecs(orch), joinSecs(bare)))
	}
	t.Notes = append(t.Notes,
		"Time to ready: swarmhub from POST /hub/api/users/NAME/server (the admin choosing the image) to the progress stream's ready; bare: the spawner's service spec created straight through the Docker API, then task state and readiness URL polled every 10 ms (the floor) until it answers (/api/status with the token; /api for jupyterhub-singleuser, as the spawner does). Each start is a new user; each server is removed before the next start.",
		"Kernel: one kernel on the last swarmhub-started server, execute_request 1+1 → reply and idle, one websocket per side, sequential, in four alternating blocks after 10 warm-up round trips. Direct to the task IP with the server token, or for jupyterhub-singleuser with the cookie the server set at the end of the OAuth round trip (GET /user/NAME/tree → /hub/api/oauth2/authorize → /user/NAME/oauth_callback); through the proxy with the session cookies and the hub's Origin, as a browser.")
	return []table{t}, nil
}

// imageKernel measures kernel round trips on user's running server, direct
// and through the proxy. A jupyterhub-singleuser server first logs the
// student in through the hub's OAuth provider, as a browser would.
func (e *env) imageKernel(ctx context.Context, im benchImage, s *session, user string) (direct, proxied []time.Duration, err error) {
	addr, token, err := e.serverTarget(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	if err := s.serverAccess(ctx, user); err != nil {
		return nil, nil, err
	}
	tg := proxyTarget{label: im.label, user: user, s: s, addr: addr, token: token}
	ks := kernelServer(tg)
	if im.contract == spawner.ContractSingleUser {
		if err := s.serverLogin(ctx, user); err != nil {
			return nil, nil, fmt.Errorf("the OAuth round trip failed (%w), so the bench cannot authenticate to the server", err)
		}
		// Its token is its own hub credential, not a key to it.
		tg.token = ""
		ks = kernelclient.Server{URL: s.base + "/user/" + user, Client: s.c,
			Header: http.Header{"X-XSRFToken": {s.cookie("/user/"+user+"/", "_xsrf")}}}
	}
	id, err := ks.StartKernel(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer ks.DeleteKernel(context.WithoutCancel(ctx), id)
	return e.wsCompare(ctx, tg, "/api/kernels/"+id+"/channels", e.o.WSRounds, kernelExchange("bench-"+im.short))
}

// serverLogin opens owner's server as a browser does, following redirects
// by hand (the session's client stops at each): a jupyterhub-singleuser
// server sends the student to the hub's /hub/api/oauth2/authorize, which
// sends them back to /user/NAME/oauth_callback, where the server sets its
// own cookie.
func (s *session) serverLogin(ctx context.Context, owner string) error {
	next := s.base + "/user/" + owner + "/tree"
	var hops []string
	for range 10 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "text/html")
		resp, err := s.c.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", next, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		u, _ := url.Parse(next)
		hops = append(hops, fmt.Sprintf("%d %s", resp.StatusCode, u.Path))
		if resp.StatusCode == http.StatusOK {
			if !strings.Contains(strings.Join(hops, " "), "/oauth_callback") {
				return fmt.Errorf("reached the server without the OAuth round trip (%s)", strings.Join(hops, " → "))
			}
			return nil
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			return fmt.Errorf("%s at %s: %s (%s)", resp.Status, u.Path, trim(body), strings.Join(hops, " → "))
		}
		nu, err := u.Parse(loc)
		if err != nil {
			return fmt.Errorf("redirect to %q: %w", loc, err)
		}
		next = nu.String()
	}
	return fmt.Errorf("too many redirects: %s", strings.Join(hops, " → "))
}

// cookie is the value of the cookie named name that a browser would send to path.
func (s *session) cookie(path, name string) string {
	u, _ := url.Parse(s.base + path)
	for _, c := range s.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}
