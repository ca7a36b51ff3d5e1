package spawner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Observed is a swarmhub service as Docker reports it.
type Observed struct {
	User        string
	ServiceID   string
	ServiceName string
	Image       string
	Created     time.Time
	Token       string
	HubToken    bool // Token is the server's hub API token (ContractSingleUser)
	Instructor  bool
	TaskState   swarm.TaskState // of the newest task; empty when none
	Addr        string          // ip:port of a running task, else empty
}

// Services lists this instance's user services with their running task's address.
func (m *Manager) Services(ctx context.Context) ([]Observed, error) {
	f := filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelInstance+"="+or(m.o.Spec.Instance, DefaultInstance)),
	)
	svcs, err := m.d.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list user services: %w", err)
	}
	if len(svcs) == 0 {
		return nil, nil
	}
	// One task listing for all services instead of one per service.
	tasks, err := m.d.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("desired-state", "running"))})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	byService := map[string]swarm.Task{}
	for _, t := range tasks {
		if cur, ok := byService[t.ServiceID]; !ok || newer(t, cur) {
			byService[t.ServiceID] = t
		}
	}
	out := make([]Observed, 0, len(svcs))
	for _, s := range svcs {
		o := Observed{
			User:        s.Spec.Labels[LabelUser],
			ServiceID:   s.ID,
			ServiceName: s.Spec.Name,
			Image:       serviceImage(s),
			Created:     s.CreatedAt,
			Instructor:  serviceEnv(s, EnvInstructor) == "1",
		}
		o.Token, o.HubToken = serviceToken(s)
		if t, ok := byService[s.ID]; ok {
			o.TaskState = t.Status.State
			if m.serving(t) {
				o.Addr = taskAddr(t, m.o.Spec.Network, m.port())
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// ErrServiceGone means an observed service was removed before it could be
// adopted.
var ErrServiceGone = errors.New("the service was removed meanwhile")

// Adopt records an observed service with a running task as the user's
// running server. It returns store.ErrLocked when a start or stop of that
// user is in progress, and ErrServiceGone when the service no longer exists.
func (m *Manager) Adopt(ctx context.Context, o Observed) (store.Server, error) {
	if o.User == "" || o.Token == "" || o.Addr == "" {
		return store.Server{}, fmt.Errorf("service %s cannot be adopted: it lacks a user label, a token or a running task", o.ServiceName)
	}
	lock, err := m.st.Lock(ctx, lockKey(o.User), m.lockTTL())
	if err != nil {
		return store.Server{}, fmt.Errorf("lock server of %s: %w", o.User, err)
	}
	defer m.release(lock, o.User, false)
	// The observation may be stale: a stop that held the lock until just
	// now may have removed the service (a culled server must not come
	// back as "running").
	if _, _, err := m.d.ServiceInspectWithRaw(ctx, o.ServiceID, swarm.ServiceInspectOptions{}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return store.Server{}, fmt.Errorf("%w: %s", ErrServiceGone, o.ServiceName)
		}
		return store.Server{}, fmt.Errorf("inspect service %s of %s: %w", o.ServiceName, o.User, err)
	}
	rec, err := m.getServer(ctx, o.User)
	if err != nil {
		return store.Server{}, err
	}
	now := m.o.Clock()
	rec.User = o.User
	rec.State = store.StateRunning
	rec.ServiceID = o.ServiceID
	rec.ServiceName = o.ServiceName
	rec.Token = o.Token
	rec.HubToken = o.HubToken
	rec.Image = o.Image
	rec.Instructor = o.Instructor
	rec.Addr = o.Addr
	rec.Error = ""
	if rec.Requested.IsZero() {
		rec.Requested = o.Created
	}
	if rec.Started.IsZero() {
		rec.Started = o.Created
	}
	if rec.Ready.IsZero() {
		rec.Ready = now
	}
	if err := m.st.PutServer(ctx, rec); err != nil {
		return store.Server{}, fmt.Errorf("record adopted server of %s: %w", o.User, err)
	}
	m.mu.Lock()
	m.targets[o.User] = target{addr: o.Addr, token: proxyToken(rec)}
	m.mu.Unlock()
	m.log.Info("adopted running service", "user", o.User, "service", o.ServiceName)
	return rec, nil
}

// serviceToken is the server token in a service's spec, and whether it is a
// hub API token (the jupyterhub-singleuser contract).
func serviceToken(s swarm.Service) (token string, hub bool) {
	if t := serviceEnv(s, EnvHubAPIToken); t != "" {
		return t, true
	}
	return serviceEnv(s, EnvToken), false
}

// proxyToken is the token to inject for this service, keeping old when the
// spec named none.
func (o Observed) proxyToken(old string) string {
	switch {
	case o.HubToken:
		return ""
	case o.Token != "":
		return o.Token
	}
	return old
}

func serviceEnv(s swarm.Service, name string) string {
	cs := s.Spec.TaskTemplate.ContainerSpec
	if cs == nil {
		return ""
	}
	for _, e := range cs.Env {
		if k, v, ok := strings.Cut(e, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func serviceImage(s swarm.Service) string {
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		// Docker may pin the image by digest: keep what the user would recognise.
		img, _, _ := strings.Cut(cs.Image, "@sha256:")
		return img
	}
	return ""
}
