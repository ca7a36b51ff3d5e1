package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

// HTTPStatusProber asks a Jupyter server for /api/status and /api/kernels,
// the way JupyterHub's idle culler reads activity.
type HTTPStatusProber struct {
	Client *http.Client // default: a client with a 10 s timeout
}

// NewHTTPStatusProber returns a prober using client (nil for a default).
func NewHTTPStatusProber(client *http.Client) *HTTPStatusProber {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &HTTPStatusProber{Client: client}
}

// Status returns the server's last_activity (the later of /api/status and
// its kernels') and how many kernels are busy (or still starting).
//
// Both requests carry no_track_activity=1: Jupyter Server counts any other
// API request as activity, so a probed server would never look idle.
func (p *HTTPStatusProber) Status(ctx context.Context, addr, user, token string) (time.Time, int, error) {
	base := &url.URL{Scheme: "http", Host: addr, Path: identity.UserPath(user) + "api/", RawQuery: "no_track_activity=1"}
	var status struct {
		LastActivity time.Time `json:"last_activity"`
	}
	if err := p.get(ctx, base.JoinPath("status"), token, &status); err != nil {
		return time.Time{}, 0, err
	}
	var kernels []struct {
		ExecutionState string    `json:"execution_state"`
		LastActivity   time.Time `json:"last_activity"`
	}
	if err := p.get(ctx, base.JoinPath("kernels"), token, &kernels); err != nil {
		return time.Time{}, 0, err
	}
	last, busy := status.LastActivity, 0
	for _, k := range kernels {
		// "starting" counts too: Jupyter reports it until it hears the
		// kernel's first status message, and when that message is lost
		// (seen under load with Notebook 6.4) a kernel running a long job
		// stays "starting" with an old last_activity. Culling it would
		// lose the student's work; cull.max_age still bounds it.
		if k.ExecutionState == "busy" || k.ExecutionState == "starting" {
			busy++
		}
		if k.LastActivity.After(last) {
			last = k.LastActivity
		}
	}
	return last, busy, nil
}

func (p *HTTPStatusProber) get(ctx context.Context, u *url.URL, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := p.Client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s", u.Path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: bad JSON: %w", u.Path, err)
	}
	return nil
}
