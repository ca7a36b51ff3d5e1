package spawner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// HTTPProber checks readiness the way the contract says: GET
// /user/NAME/api/status with the server token answers 200. Without a token
// (ContractSingleUser, whose server would ask the hub about any token) it
// asks GET /user/NAME/api instead, which answers without authentication,
// as JupyterHub's own readiness check does.
type HTTPProber struct {
	Client *http.Client // default: a client with a 2s timeout
}

// Probe returns nil when the server at addr (ip:port) is ready.
func (p *HTTPProber) Probe(ctx context.Context, addr, user, token string) error {
	c := p.Client
	if c == nil {
		c = defaultProbeClient
	}
	path := BaseURL(user) + "api/status"
	if token == "" {
		path = BaseURL(user) + "api"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("build readiness request: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("readiness check: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readiness check: %s answered %s", addr, resp.Status)
	}
	return nil
}

var defaultProbeClient = &http.Client{
	Timeout: 2 * time.Second,
	// A server that redirects (e.g. to a login page) is not ready for us.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}
