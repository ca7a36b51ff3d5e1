// Package dockerclient builds the Docker API client of the orchestrator and
// the bench, with a count of the requests it sends (Docker calls per spawn
// are a figure the benchmarks report).
package dockerclient

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/docker/docker/client"
	"github.com/docker/go-connections/sockets"
)

// Counter counts the requests that pass through it.
type Counter struct {
	base http.RoundTripper
	n    atomic.Uint64
}

// RoundTrip counts r and sends it on.
func (c *Counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// Requests is how many requests were sent so far.
func (c *Counter) Requests() uint64 { return c.n.Load() }

// New is a client for host (unix:///var/run/docker.sock, tcp://HOST:PORT)
// that negotiates the API version and counts its requests.
func New(host string) (*client.Client, *Counter, error) {
	u, err := client.ParseHostURL(host)
	if err != nil {
		return nil, nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	// What the client builds by default for host, wrapped by the counter.
	tr := &http.Transport{}
	if err := sockets.ConfigureTransport(tr, u.Scheme, u.Host); err != nil {
		return nil, nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	cnt := &Counter{base: tr}
	// WithHost first: it configures the default transport, which the
	// counting client then replaces.
	c, err := client.NewClientWithOpts(client.WithHost(host),
		client.WithHTTPClient(&http.Client{Transport: cnt, CheckRedirect: client.CheckRedirect}),
		client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, nil, fmt.Errorf("docker client for %s: %w", host, err)
	}
	return c, cnt, nil
}
