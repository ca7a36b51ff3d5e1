package spawner_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// fakeDocker keeps services in memory. The tasks of a service come from
// taskFn, so a test decides what Docker reports (running, failed, pending).
type fakeDocker struct {
	mu       sync.Mutex
	services map[string]swarm.Service // by name
	nextID   int
	calls    []string
	creates  int
	// taskFn returns the task list of a service; nil: one running task at 10.0.0.5.
	taskFn func(svc swarm.Service) []swarm.Task
}

func newFakeDocker() *fakeDocker { return &fakeDocker{services: map[string]swarm.Service{}} }

func runningTask(svc swarm.Service, ip string) swarm.Task {
	return swarm.Task{
		ID: "task-" + svc.ID, ServiceID: svc.ID,
		Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Message: "started"},
		NetworksAttachments: []swarm.NetworkAttachment{
			{Network: swarm.Network{ID: "ingressid", Spec: swarm.NetworkSpec{Annotations: swarm.Annotations{Name: "ingress"}}}, Addresses: []string{"10.255.0.9/16"}},
			{Network: swarm.Network{ID: "netid", Spec: swarm.NetworkSpec{Annotations: swarm.Annotations{Name: "swarmhub-users"}}}, Addresses: []string{ip + "/24"}},
		},
	}
}

func (d *fakeDocker) record(call string) {
	d.calls = append(d.calls, call)
}

func (d *fakeDocker) ServiceCreate(_ context.Context, spec swarm.ServiceSpec, _ swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("ServiceCreate " + spec.Name)
	if _, ok := d.services[spec.Name]; ok {
		return swarm.ServiceCreateResponse{}, fmt.Errorf("Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: %w", cerrdefs.ErrConflict)
	}
	d.creates++
	d.nextID++
	svc := swarm.Service{ID: fmt.Sprintf("svc%d", d.nextID), Spec: spec}
	svc.CreatedAt = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	d.services[spec.Name] = svc
	return swarm.ServiceCreateResponse{ID: svc.ID}, nil
}

func (d *fakeDocker) find(idOrName string) (swarm.Service, bool) {
	if s, ok := d.services[idOrName]; ok {
		return s, true
	}
	for _, s := range d.services {
		if s.ID == idOrName {
			return s, true
		}
	}
	return swarm.Service{}, false
}

func (d *fakeDocker) ServiceList(_ context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("ServiceList")
	var out []swarm.Service
	for _, s := range d.services {
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

func (d *fakeDocker) ServiceInspectWithRaw(_ context.Context, id string, _ swarm.ServiceInspectOptions) (swarm.Service, []byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("ServiceInspect " + id)
	if s, ok := d.find(id); ok {
		return s, nil, nil
	}
	return swarm.Service{}, nil, fmt.Errorf("service %s not found: %w", id, cerrdefs.ErrNotFound)
}

func (d *fakeDocker) ServiceRemove(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("ServiceRemove " + id)
	s, ok := d.find(id)
	if !ok {
		return fmt.Errorf("service %s not found: %w", id, cerrdefs.ErrNotFound)
	}
	delete(d.services, s.Spec.Name)
	return nil
}

func (d *fakeDocker) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("TaskList")
	var svcs []swarm.Service
	if ids := o.Filters.Get("service"); len(ids) > 0 {
		for _, id := range ids {
			if s, ok := d.find(id); ok {
				svcs = append(svcs, s)
			}
		}
	} else {
		for _, s := range d.services {
			svcs = append(svcs, s)
		}
	}
	var out []swarm.Task
	for _, s := range svcs {
		if d.taskFn == nil {
			out = append(out, runningTask(s, "10.0.0.5"))
			continue
		}
		out = append(out, d.taskFn(s)...)
	}
	return out, nil
}

func (d *fakeDocker) setTasks(fn func(svc swarm.Service) []swarm.Task) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.taskFn = fn
}

// createAttempts counts ServiceCreate calls, conflicts included.
func (d *fakeDocker) createAttempts() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if strings.HasPrefix(c, "ServiceCreate ") {
			n++
		}
	}
	return n
}

func (d *fakeDocker) createCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.creates
}

func (d *fakeDocker) serviceNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for n := range d.services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (d *fakeDocker) addService(spec swarm.ServiceSpec) swarm.Service {
	if _, err := d.ServiceCreate(context.Background(), spec, swarm.ServiceCreateOptions{}); err != nil {
		panic(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.creates = 0
	return d.services[spec.Name]
}

// fakeStore is an in-memory Store with the semantics the contract gives
// the Redis one (lock NX, slot semaphore).
type fakeStore struct {
	mu       sync.Mutex
	servers  map[string]store.Server
	locks    map[string]bool
	slots    map[string]bool
	progress map[string][]store.Progress
	events   []store.Event
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		servers: map[string]store.Server{}, locks: map[string]bool{},
		slots: map[string]bool{}, progress: map[string][]store.Progress{},
	}
}

func (s *fakeStore) GetServer(_ context.Context, user string) (store.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.servers[user]
	if !ok {
		return store.Server{}, store.ErrNotFound
	}
	return rec, nil
}

func (s *fakeStore) PutServer(_ context.Context, rec store.Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servers[rec.User] = rec
	return nil
}

type fakeLock struct {
	s   *fakeStore
	key string
}

func (l fakeLock) Release(context.Context) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	delete(l.s.locks, l.key)
	return nil
}

func (s *fakeStore) Lock(_ context.Context, key string, _ time.Duration) (spawner.Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[key] {
		return nil, store.ErrLocked
	}
	s.locks[key] = true
	return fakeLock{s, key}, nil
}

func (s *fakeStore) AcquireSlot(_ context.Context, holder string, limit int, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots[holder] {
		return true, nil
	}
	if len(s.slots) >= limit {
		return false, nil
	}
	s.slots[holder] = true
	return true, nil
}

func (s *fakeStore) ReleaseSlot(_ context.Context, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.slots, holder)
	return nil
}

func (s *fakeStore) AddProgress(_ context.Context, user string, p store.Progress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress[user] = append(s.progress[user], p)
	return nil
}

func (s *fakeStore) ResetProgress(_ context.Context, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.progress, user)
	return nil
}

func (s *fakeStore) AddEvent(_ context.Context, e store.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

func (s *fakeStore) server(user string) store.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servers[user]
}

func (s *fakeStore) progressOf(user string) []store.Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Progress(nil), s.progress[user]...)
}

func (s *fakeStore) eventKinds(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kinds []string
	for _, e := range s.events {
		if e.User == user {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

func (s *fakeStore) heldLocks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locks) + len(s.slots)
}
