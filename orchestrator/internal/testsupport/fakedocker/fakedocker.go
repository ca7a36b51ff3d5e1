// Package fakedocker is an in-memory stand-in for the Docker Swarm calls
// the spawner makes (services, their tasks, the nodes), for tests of pure logic:
// the fake keeps services in a map and each test decides which tasks
// Docker reports (running, failed, pending). Tests of behaviour against
// Docker itself use a real swarm instead.
package fakedocker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"
)

// Network is the users' network the default running task is attached to.
const Network = "swarmhub-users"

// DefaultIP is the address of the default running task on Network.
const DefaultIP = "10.0.0.5"

// TaskFunc returns the tasks Docker reports for a service.
type TaskFunc func(svc swarm.Service) []swarm.Task

// Client keeps services in memory. Errors match the real client's:
// a missing service is a NotFound error, a name taken a Conflict.
// It is safe for concurrent use.
type Client struct {
	mu       sync.Mutex
	services map[string]swarm.Service // by name
	nextID   int
	calls    []string
	creates  int
	tasks    TaskFunc // nil: one running task at DefaultIP
	nodes    []swarm.Node
}

// New returns a Client with no services, whose services each report one
// running task at DefaultIP until SetTasks says otherwise.
func New() *Client { return &Client{services: map[string]swarm.Service{}} }

// SetTasks decides what TaskList reports from now on.
func (c *Client) SetTasks(fn TaskFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tasks = fn
}

// AddService creates a service as if it had existed before the test; it
// does not count as a create.
func (c *Client) AddService(spec swarm.ServiceSpec) swarm.Service {
	if _, err := c.ServiceCreate(context.Background(), spec, swarm.ServiceCreateOptions{}); err != nil {
		panic(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.creates = 0
	return c.services[spec.Name]
}

// CreateAttempts counts ServiceCreate calls, conflicts included.
func (c *Client) CreateAttempts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, call := range c.calls {
		if strings.HasPrefix(call, "ServiceCreate ") {
			n++
		}
	}
	return n
}

// Calls counts the calls whose record is name (e.g. "TaskList", or
// "ServiceRemove ID").
func (c *Client) Calls(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, call := range c.calls {
		if call == name {
			n++
		}
	}
	return n
}

// Creates counts the services ServiceCreate created.
func (c *Client) Creates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.creates
}

// ServiceNames lists the services that exist, sorted.
func (c *Client) ServiceNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for n := range c.services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ServiceCreate creates a service; a taken name is a Conflict error with
// the text dockerd sends.
func (c *Client) ServiceCreate(_ context.Context, spec swarm.ServiceSpec, _ swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "ServiceCreate "+spec.Name)
	if _, ok := c.services[spec.Name]; ok {
		return swarm.ServiceCreateResponse{}, fmt.Errorf("Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: %w", cerrdefs.ErrConflict)
	}
	c.creates++
	c.nextID++
	svc := swarm.Service{ID: fmt.Sprintf("svc%d", c.nextID), Spec: spec}
	svc.CreatedAt = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c.services[spec.Name] = svc
	return swarm.ServiceCreateResponse{ID: svc.ID}, nil
}

// ServiceList lists the services whose labels match every "label" filter
// (key=value), sorted by ID.
func (c *Client) ServiceList(_ context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "ServiceList")
	var out []swarm.Service
	for _, s := range c.services {
		ok := true
		for _, l := range o.Filters.Get("label") {
			k, v, _ := strings.Cut(l, "=")
			if s.Spec.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ServiceInspectWithRaw finds a service by name or ID.
func (c *Client) ServiceInspectWithRaw(_ context.Context, id string, _ swarm.ServiceInspectOptions) (swarm.Service, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "ServiceInspect "+id)
	if s, ok := c.find(id); ok {
		return s, nil, nil
	}
	return swarm.Service{}, nil, fmt.Errorf("service %s not found: %w", id, cerrdefs.ErrNotFound)
}

// ServiceRemove removes a service by name or ID.
func (c *Client) ServiceRemove(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "ServiceRemove "+id)
	s, ok := c.find(id)
	if !ok {
		return fmt.Errorf("service %s not found: %w", id, cerrdefs.ErrNotFound)
	}
	delete(c.services, s.Spec.Name)
	return nil
}

// TaskList reports the tasks of the services named by the "service"
// filters, or of every service without one. Other filters are ignored.
func (c *Client) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "TaskList")
	var svcs []swarm.Service
	if ids := o.Filters.Get("service"); len(ids) > 0 {
		for _, id := range ids {
			if s, ok := c.find(id); ok {
				svcs = append(svcs, s)
			}
		}
	} else {
		for _, s := range c.services {
			svcs = append(svcs, s)
		}
	}
	var out []swarm.Task
	for _, s := range svcs {
		if c.tasks == nil {
			out = append(out, RunningTask(s, DefaultIP))
			continue
		}
		out = append(out, c.tasks(s)...)
	}
	return out, nil
}

func (c *Client) find(idOrName string) (swarm.Service, bool) {
	if s, ok := c.services[idOrName]; ok {
		return s, true
	}
	for _, s := range c.services {
		if s.ID == idOrName {
			return s, true
		}
	}
	return swarm.Service{}, false
}
