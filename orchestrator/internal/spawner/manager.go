package spawner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Server states kept in store.Server.State.
const (
	StateStopped  = "stopped"
	StateStarting = "starting"
	StateRunning  = "running"
	StateFailed   = "failed"
)

// Event kinds written to the event stream.
const (
	EventSpawn   = "spawn"
	EventReady   = "ready"
	EventFailure = "failure"
	EventStop    = "stop"
)

var (
	// ErrBusy means the global spawn limit is reached; errors.As a *BusyError
	// for the RetryAfter to send.
	ErrBusy = errors.New("too many servers are starting right now")
	// ErrNotRunning means the user has no running server.
	ErrNotRunning = errors.New("server is not running")
)

// BusyError is returned by Start when every spawn slot is taken.
type BusyError struct{ RetryAfter time.Duration }

func (e *BusyError) Error() string {
	return fmt.Sprintf("%v; try again in %s", ErrBusy, e.RetryAfter)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Docker is the part of the Docker client the spawner calls.
type Docker interface {
	ServiceCreate(ctx context.Context, spec swarm.ServiceSpec, o swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error)
	ServiceList(ctx context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error)
	ServiceInspectWithRaw(ctx context.Context, id string, o swarm.ServiceInspectOptions) (swarm.Service, []byte, error)
	ServiceRemove(ctx context.Context, id string) error
	TaskList(ctx context.Context, o swarm.TaskListOptions) ([]swarm.Task, error)
}

// Lock is a held Redis lock (store.Lock satisfies it).
type Lock interface {
	Release(ctx context.Context) error
}

// Store is the state the spawner reads and writes. WrapStore adapts
// *store.Store to it.
type Store interface {
	GetServer(ctx context.Context, user string) (store.Server, error)
	PutServer(ctx context.Context, s store.Server) error
	Lock(ctx context.Context, key string, ttl time.Duration) (Lock, error)
	AcquireSlot(ctx context.Context, holder string, limit int, ttl time.Duration) (bool, error)
	ReleaseSlot(ctx context.Context, holder string) error
	AddProgress(ctx context.Context, user string, p store.Progress) error
	ResetProgress(ctx context.Context, user string) error
	AddEvent(ctx context.Context, e store.Event) error
}

// Namer derives Docker names from a canonical username.
type Namer interface {
	ServiceName(user string) (string, error)
	VolumeName(user string) (string, error)
}

// Prober says whether the server at addr answers as ready; nil means ready.
type Prober interface {
	Probe(ctx context.Context, addr, user, token string) error
}

// ManagerOptions configures a Manager. Zero durations get defaults.
type ManagerOptions struct {
	Spec          Options
	Image         string // default image when StartOptions.Image is empty
	Namer         Namer
	StorageMount  string        // storage root as mounted in the orchestrator; empty: do not create directories
	StartTimeout  time.Duration // default 2m
	SpawnLimit    int           // concurrent spawns across replicas; <= 0: unlimited
	RetryAfter    time.Duration // suggested wait when busy; default 5s
	ProbeInterval time.Duration // default 250ms
	HTTPClient    *http.Client  // for the default prober
	Prober        Prober        // default: HTTP GET /user/NAME/api/status
	Clock         func() time.Time
	// UID and GID own new workspace directories; default 1000:100 (jovyan:users).
	UID, GID int
	// Metrics, when set, hears how each spawn of this replica ended.
	Metrics SpawnObserver
}

// SpawnObserver is told the outcome of every spawn: its duration from the
// request, and the failure text ("" when the server became ready).
type SpawnObserver interface {
	SpawnFinished(d time.Duration, failureReason string)
}

// StartOptions are per-start choices.
type StartOptions struct {
	Image      string
	Instructor bool
}

// Manager starts, stops and locates user servers.
type Manager struct {
	d     Docker
	st    Store
	o     ManagerOptions
	log   *slog.Logger
	probe Prober

	tasks *taskBatcher // task lookups of spawns in flight, one Docker call per round

	mu      sync.RWMutex
	targets map[string]target // user -> where the running server is
	wg      sync.WaitGroup    // background spawns
	spawns  map[string]*spawn // user -> this replica's spawn in flight
}

type spawn struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed once the lock and slot are released
}

type target struct{ addr, token string }

// NewManager returns a Manager; it starts no goroutines until Start.
func NewManager(d Docker, st Store, o ManagerOptions, log *slog.Logger) *Manager {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 5 * time.Second
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 250 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.UID == 0 && o.GID == 0 {
		o.UID, o.GID = 1000, 100
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := o.Prober
	if p == nil {
		p = &HTTPProber{Client: o.HTTPClient}
	}
	return &Manager{
		d: d, st: st, o: o, log: log.With("component", "spawner"), probe: p,
		tasks:   newTaskBatcher(d, min(defaultGather, o.ProbeInterval/5)),
		targets: map[string]target{},
		spawns:  map[string]*spawn{},
	}
}

// Wait blocks until every background spawn of this Manager has ended (each
// ends within StartTimeout) or ctx is done. Call it at shutdown so no spawn
// is left holding its lock and a "starting" record.
func (m *Manager) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func lockKey(user string) string { return "spawn:" + user }

// lockTTL covers a whole spawn so the lock never expires under a live one.
func (m *Manager) lockTTL() time.Duration { return m.o.StartTimeout + time.Minute }

// spawnLockTTL is how long a spawn's lock outlives the replica holding it:
// a live spawn refreshes it every third of that, so when a replica dies
// mid-spawn the student's next start request, on any replica, takes over
// (adopting the service already created) within seconds instead of after
// lockTTL.
const spawnLockTTL = 15 * time.Second

// refresher is a Lock that can be extended (store.Lock can).
type refresher interface {
	Refresh(ctx context.Context, ttl time.Duration) error
}

// keepLock shortens a refreshable lock to spawnLockTTL and keeps refreshing
// it until the returned stop is called; once slot is set it refreshes the
// user's spawn slot the same way, so a replica that dies mid-spawn frees
// its share of notebook.concurrent_spawn_limit within seconds too. A lock
// that cannot be refreshed keeps its full lockTTL (and so does the slot,
// see slotTTL). stop may be called more than once.
func (m *Manager) keepLock(lock Lock, user string, slot *atomic.Bool) (stop func()) {
	r, ok := lock.(refresher)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(spawnLockTTL / 3)
		defer t.Stop()
		for {
			if err := r.Refresh(ctx, spawnLockTTL); err != nil && ctx.Err() == nil {
				m.log.Warn("refresh spawn lock", "user", user, "err", err)
			}
			if slot != nil && slot.Load() && ctx.Err() == nil {
				// Acquiring a held slot again refreshes it, even at the limit.
				if _, err := m.st.AcquireSlot(ctx, user, m.o.SpawnLimit, spawnLockTTL); err != nil && ctx.Err() == nil {
					m.log.Warn("refresh spawn slot", "user", user, "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// slotTTL is how long a spawn slot lives unrefreshed: short when keepLock
// refreshes it, else the whole spawn.
func (m *Manager) slotTTL(lock Lock) time.Duration {
	if _, ok := lock.(refresher); ok {
		return spawnLockTTL
	}
	return m.lockTTL()
}

// Start starts the user's server, or returns the one already running or
// starting. It returns once the service exists; readiness is followed in the
// background and reported through the progress stream and the record.
func (m *Manager) Start(ctx context.Context, user string, so StartOptions) (store.Server, error) {
	lock, rec, err := m.lockOrCurrent(ctx, user)
	if err != nil || lock == nil {
		return rec, err
	}
	var slotKept atomic.Bool
	stopKeep := m.keepLock(lock, user, &slotKept)
	handedOff := false
	defer func() {
		if !handedOff {
			stopKeep()
			m.release(lock, user, false)
		}
	}()

	rec, err = m.getServer(ctx, user)
	if err != nil {
		return store.Server{}, err
	}
	if rec.State == StateRunning && rec.ServiceName != "" {
		_, _, err := m.d.ServiceInspectWithRaw(ctx, rec.ServiceName, swarm.ServiceInspectOptions{})
		if err == nil {
			return rec, nil
		}
		if !cerrdefs.IsNotFound(err) {
			return store.Server{}, fmt.Errorf("inspect service %s: %w", rec.ServiceName, err)
		}
		// Removed behind our back: start afresh.
		m.log.Info("running server's service is gone; starting again", "user", user, "service", rec.ServiceName)
	}

	serviceName, err := m.o.Namer.ServiceName(user)
	if err != nil {
		return store.Server{}, fmt.Errorf("service name for %s: %w", user, err)
	}
	volumeName, err := m.o.Namer.VolumeName(user)
	if err != nil {
		return store.Server{}, fmt.Errorf("volume name for %s: %w", user, err)
	}
	image := or(so.Image, m.o.Image)

	if m.o.SpawnLimit > 0 {
		ok, err := m.st.AcquireSlot(ctx, user, m.o.SpawnLimit, m.slotTTL(lock))
		if err != nil {
			return store.Server{}, fmt.Errorf("acquire spawn slot: %w", err)
		}
		if !ok {
			return store.Server{}, &BusyError{RetryAfter: m.o.RetryAfter}
		}
		slotKept.Store(true)
	}
	slotHeld := m.o.SpawnLimit > 0
	defer func() {
		if !handedOff && slotHeld {
			stopKeep() // no refresh may bring the slot back after its release
			m.releaseSlot(user)
		}
	}()

	// From here on the spawn must not depend on the caller staying connected.
	bg := context.WithoutCancel(ctx)
	token, err := newToken()
	if err != nil {
		return store.Server{}, err
	}
	now := m.o.Clock()
	rec = store.Server{
		User:        user,
		State:       StateStarting,
		ServiceName: serviceName,
		Token:       token,
		Image:       image,
		Instructor:  so.Instructor,
		Requested:   now,
	}
	m.Forget(user)
	if err := m.st.ResetProgress(bg, user); err != nil {
		return store.Server{}, fmt.Errorf("reset progress of %s: %w", user, err)
	}
	if err := m.st.PutServer(bg, rec); err != nil {
		return store.Server{}, fmt.Errorf("record server of %s: %w", user, err)
	}
	m.progress(bg, user, store.Progress{Progress: 0, Message: "Server requested"})
	m.event(bg, EventSpawn, user, "image "+image)

	fail := func(msg string) (store.Server, error) {
		rec = m.fail(bg, rec, msg)
		return rec, errors.New(msg)
	}

	if err := m.ensureDirs(user); err != nil {
		return fail(err.Error())
	}
	spec, err := BuildSpec(Request{
		User: user, ServiceName: serviceName, VolumeName: volumeName,
		Token: token, Image: image, Instructor: so.Instructor,
	}, m.o.Spec)
	if err != nil {
		return fail(err.Error())
	}
	if err := m.checkVolumes(bg, spec); err != nil {
		return fail(err.Error())
	}

	m.progress(bg, user, store.Progress{Progress: 10, Message: "Creating service " + serviceName})
	resp, err := m.d.ServiceCreate(bg, spec, swarm.ServiceCreateOptions{})
	switch {
	case err == nil:
		rec.ServiceID = resp.ID
	case isNameConflict(err):
		// Another replica, or a spawn before a restart, created it: adopt it.
		svc, _, ierr := m.d.ServiceInspectWithRaw(bg, serviceName, swarm.ServiceInspectOptions{})
		if ierr != nil {
			return fail(fmt.Sprintf("service %s exists but cannot be inspected: %v", serviceName, ierr))
		}
		if svc.Spec.Labels[LabelUser] != user || svc.Spec.Labels[LabelInstance] != m.instance() {
			// Never take over someone else's service (another hub on the
			// same swarm, or an unrelated service with that name).
			return fail(fmt.Sprintf("a service named %s exists but does not belong to %s on this hub (instance %q); an admin must remove it or set notebook.service_name", serviceName, user, m.instance()))
		}
		rec.ServiceID = svc.ID
		if t := serviceEnv(svc, EnvToken); t != "" {
			rec.Token = t
		}
		if img := serviceImage(svc); img != "" {
			rec.Image = img
		}
		rec.Instructor = serviceEnv(svc, EnvInstructor) == "1"
		m.log.Info("adopted existing service", "user", user, "service", serviceName, "id", svc.ID)
	default:
		return fail(fmt.Sprintf("create service %s: %v", serviceName, err))
	}
	if err := m.st.PutServer(bg, rec); err != nil {
		m.log.Error("record service id", "user", user, "err", err)
	}
	m.progress(bg, user, store.Progress{Progress: 20, Message: "Service created, waiting for a node to run it"})

	sctx, cancelCause := context.WithCancelCause(bg)
	wctx, cancel := context.WithTimeout(sctx, m.o.StartTimeout)
	sp := &spawn{cancel: cancelCause, done: make(chan struct{})}
	m.mu.Lock()
	m.spawns[user] = sp
	m.mu.Unlock()
	handedOff = true
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			cancel()
			cancelCause(nil)
			stopKeep()
			m.release(lock, user, slotHeld)
			m.mu.Lock()
			if m.spawns[user] == sp {
				delete(m.spawns, user)
			}
			m.mu.Unlock()
			close(sp.done)
		}()
		m.follow(wctx, rec)
	}()
	return rec, nil
}

// lockOrCurrent takes the user's lock. When someone else (maybe another
// replica) holds it, it returns that spawn's record once it shows as
// starting or running; a holder that is stopping the server or was refused
// a slot lets go quickly, so it tries again for a short while before
// answering busy.
func (m *Manager) lockOrCurrent(ctx context.Context, user string) (Lock, store.Server, error) {
	deadline := time.NewTimer(3 * time.Second)
	defer deadline.Stop()
	for {
		lock, err := m.st.Lock(ctx, lockKey(user), m.lockTTL())
		if err == nil {
			return lock, store.Server{}, nil
		}
		if !errors.Is(err, store.ErrLocked) {
			return nil, store.Server{}, fmt.Errorf("lock server of %s: %w", user, err)
		}
		rec, err := m.getServer(ctx, user)
		if err != nil {
			return nil, store.Server{}, err
		}
		if rec.State == StateStarting || rec.State == StateRunning {
			return nil, rec, nil
		}
		select {
		case <-ctx.Done():
			return nil, store.Server{}, ctx.Err()
		case <-deadline.C:
			return nil, store.Server{}, &BusyError{RetryAfter: time.Second}
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// follow polls the service's task until the server is ready, fails or the
// start timeout passes, and records the outcome.
func (m *Manager) follow(ctx context.Context, rec store.Server) {
	bg := context.WithoutCancel(ctx)
	user := rec.User
	var lastState swarm.TaskState
	var lastDetail, probeErr string
	tick := time.NewTicker(m.o.ProbeInterval)
	defer tick.Stop()
	for {
		task, found, err := m.spawnTask(ctx, rec.ServiceID)
		switch {
		case ctx.Err() != nil:
		case err != nil && cerrdefs.IsNotFound(err):
			m.serviceVanished(bg, rec)
			return
		case err != nil:
			m.log.Warn("list tasks", "user", user, "err", err)
		case found:
			if msg, failed := taskFailure(task); failed {
				m.fail(bg, rec, msg)
				m.removeService(bg, rec.ServiceID)
				return
			}
			state := task.Status.State
			detail := task.Status.Err
			if detail == "" {
				detail = task.Status.Message
			}
			if state != lastState || detail != lastDetail {
				lastState, lastDetail = state, detail
				m.progress(bg, user, taskProgress(task))
			}
			if state == swarm.TaskStateRunning {
				addr := taskAddr(task, m.o.Spec.Network, m.port())
				if addr == "" {
					probeErr = "task has no address on network " + m.o.Spec.Network + " yet"
					break
				}
				perr := m.probe.Probe(ctx, addr, user, rec.Token)
				if perr == nil {
					m.ready(bg, rec, addr)
					return
				}
				probeErr = perr.Error()
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errStopped) {
				m.stoppedWhileStarting(bg, rec)
				return
			}
			msg := fmt.Sprintf("the server did not become ready within %s", m.o.StartTimeout)
			if lastState != "" {
				msg += fmt.Sprintf(" (task %s", lastState)
				if lastDetail != "" {
					msg += ": " + lastDetail
				}
				if lastState == swarm.TaskStateRunning && probeErr != "" {
					msg += "; last readiness check: " + probeErr
				}
				msg += ")"
			}
			m.fail(bg, rec, msg+hint(lastDetail+" "+probeErr))
			m.removeService(bg, rec.ServiceID)
			return
		case <-tick.C:
		}
	}
}

var errStopped = errors.New("server stopped while starting")

func (m *Manager) ready(ctx context.Context, rec store.Server, addr string) {
	now := m.o.Clock()
	rec.State = StateRunning
	rec.Addr = addr
	rec.Error = ""
	rec.Started = now
	rec.Ready = now
	if err := m.st.PutServer(ctx, rec); err != nil {
		m.log.Error("record ready server", "user", rec.User, "err", err)
	}
	m.mu.Lock()
	m.targets[rec.User] = target{addr: addr, token: rec.Token}
	m.mu.Unlock()
	if m.o.Metrics != nil {
		m.o.Metrics.SpawnFinished(now.Sub(rec.Requested), "")
	}
	url := BaseURL(rec.User)
	m.progress(ctx, rec.User, store.Progress{Progress: 100, Message: "Server ready at " + url, Ready: true, URL: url})
	m.event(ctx, EventReady, rec.User, fmt.Sprintf("ready after %s", now.Sub(rec.Requested).Round(time.Millisecond)))
	m.log.Info("server ready", "user", rec.User, "addr", addr, "after", now.Sub(rec.Requested))
}

// fail records a failed spawn and returns the updated record.
func (m *Manager) fail(ctx context.Context, rec store.Server, msg string) store.Server {
	rec.State = StateFailed
	rec.Error = msg
	rec.Addr = ""
	if err := m.st.PutServer(ctx, rec); err != nil {
		m.log.Error("record failed server", "user", rec.User, "err", err)
	}
	m.progress(ctx, rec.User, store.Progress{Progress: 100, Message: "Spawn failed: " + msg, Failed: true})
	m.event(ctx, EventFailure, rec.User, msg)
	m.log.Warn("spawn failed", "user", rec.User, "reason", msg)
	if m.o.Metrics != nil {
		if msg == "" {
			msg = "unknown"
		}
		m.o.Metrics.SpawnFinished(m.o.Clock().Sub(rec.Requested), msg)
	}
	return rec
}

// serviceVanished handles a service removed during its spawn: by Stop on
// another replica (the record says stopped) or by hand (it does not).
func (m *Manager) serviceVanished(ctx context.Context, rec store.Server) {
	cur, err := m.getServer(ctx, rec.User)
	if err == nil && cur.State == StateStarting && cur.ServiceID == rec.ServiceID {
		m.fail(ctx, rec, "the service "+rec.ServiceName+" was removed while the server was starting")
		return
	}
	m.stoppedWhileStarting(ctx, rec)
}

func (m *Manager) stoppedWhileStarting(ctx context.Context, rec store.Server) {
	m.progress(ctx, rec.User, store.Progress{Progress: 100, Message: "Spawn failed: the server was stopped while starting", Failed: true})
	m.log.Info("server stopped while starting", "user", rec.User)
}

func (m *Manager) release(lock Lock, user string, slot bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if slot {
		m.releaseSlot(user)
	}
	if err := lock.Release(ctx); err != nil {
		m.log.Warn("release spawn lock", "user", user, "err", err)
	}
}

func (m *Manager) releaseSlot(user string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.st.ReleaseSlot(ctx, user); err != nil {
		m.log.Warn("release spawn slot", "user", user, "err", err)
	}
}

// Stop removes the user's service and keeps the workspace volume.
func (m *Manager) Stop(ctx context.Context, user, reason string) error {
	// A spawn in flight on this replica holds the lock: end it first.
	m.mu.Lock()
	sp := m.spawns[user]
	m.mu.Unlock()
	if sp != nil {
		sp.cancel(errStopped)
		select {
		case <-sp.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	lock, err := m.st.Lock(ctx, lockKey(user), m.lockTTL())
	switch {
	case errors.Is(err, store.ErrLocked):
		// Another replica is starting it; removing the service ends that
		// spawn, which sees the service gone.
		m.log.Info("stopping a server another replica is starting", "user", user)
	case err != nil:
		return fmt.Errorf("lock server of %s: %w", user, err)
	default:
		defer m.release(lock, user, false)
	}

	rec, err := m.getServer(ctx, user)
	if err != nil {
		return err
	}
	name := rec.ServiceName
	if name == "" {
		if name, err = m.o.Namer.ServiceName(user); err != nil {
			return fmt.Errorf("service name for %s: %w", user, err)
		}
	}
	if err := m.d.ServiceRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove service %s of %s: %w", name, user, err)
	}
	m.Forget(user)
	wasActive := rec.State == StateRunning || rec.State == StateStarting
	rec.User = user
	rec.State = StateStopped
	rec.Error = ""
	rec.Addr = ""
	rec.ServiceID = ""
	if err := m.st.PutServer(ctx, rec); err != nil {
		return fmt.Errorf("record stopped server of %s: %w", user, err)
	}
	if wasActive || sp != nil {
		m.event(ctx, EventStop, user, reason)
	}
	m.log.Info("server stopped", "user", user, "reason", reason)
	return nil
}

// Target returns where the user's running server listens and its token.
// It answers from memory. On a miss it asks Docker for the task's address
// rather than trusting the one in the store: after a restart of dockerd (or
// of a node) tasks come back with new addresses, and an old address may by
// then belong to another student's server. Only when Docker cannot be
// asked does it fall back to the stored address; Retarget corrects that
// once Docker answers again.
func (m *Manager) Target(ctx context.Context, user string) (addr, token string, err error) {
	m.mu.RLock()
	t, ok := m.targets[user]
	m.mu.RUnlock()
	if ok {
		return t.addr, t.token, nil
	}
	rec, err := m.getServer(ctx, user)
	if err != nil {
		return "", "", err
	}
	if rec.State != StateRunning {
		return "", "", ErrNotRunning
	}
	task, found, err := m.currentTask(ctx, or(rec.ServiceID, rec.ServiceName))
	switch {
	case err != nil && !cerrdefs.IsNotFound(err):
		if rec.Addr == "" {
			return "", "", fmt.Errorf("find task of %s: %w", user, err)
		}
		m.log.Warn("Docker unreachable: routing to the stored server address until it answers", "user", user, "err", err)
		addr = rec.Addr
	case !found || task.Status.State != swarm.TaskStateRunning:
		return "", "", ErrNotRunning
	default:
		if addr = taskAddr(task, m.o.Spec.Network, m.port()); addr == "" {
			return "", "", ErrNotRunning
		}
		if addr != rec.Addr {
			rec.Addr = addr
			if err := m.st.PutServer(ctx, rec); err != nil {
				m.log.Warn("record new server address", "user", user, "err", err)
			}
		}
	}
	m.mu.Lock()
	m.targets[user] = target{addr: addr, token: rec.Token}
	m.mu.Unlock()
	return addr, rec.Token, nil
}

// Forget drops the cached address so the next Target asks Docker again.
func (m *Manager) Forget(user string) {
	m.mu.Lock()
	delete(m.targets, user)
	m.mu.Unlock()
}

// Retarget brings the cached addresses in line with what Docker reports
// (WatchAddresses calls it on every replica): a task that moved or came
// back with a new address is routed to at once, and a server whose task is
// not running is asked for again on its next request. Without it a restarted
// task whose old address went to another server would go on receiving the
// first one's requests until a connection failed.
func (m *Manager) Retarget(obs []Observed) (moved []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range obs {
		t, ok := m.targets[o.User]
		if !ok {
			continue
		}
		switch {
		case o.Addr == "":
			delete(m.targets, o.User)
			moved = append(moved, o.User)
		case o.Addr != t.addr:
			m.targets[o.User] = target{addr: o.Addr, token: or(o.Token, t.token)}
			moved = append(moved, o.User)
		}
	}
	if len(moved) > 0 {
		m.log.Info("server addresses changed in Docker; routes updated", "users", moved)
	}
	return moved
}

// Observed is a swarmhub service as Docker reports it.
type Observed struct {
	User        string
	ServiceID   string
	ServiceName string
	Image       string
	Created     time.Time
	Token       string
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
			Token:       serviceEnv(s, EnvToken),
			Instructor:  serviceEnv(s, EnvInstructor) == "1",
		}
		if t, ok := byService[s.ID]; ok {
			o.TaskState = t.Status.State
			if t.Status.State == swarm.TaskStateRunning {
				o.Addr = taskAddr(t, m.o.Spec.Network, m.port())
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// Adopt records an observed service with a running task as the user's
// running server. It returns store.ErrLocked when a start or stop of that
// user is in progress.
func (m *Manager) Adopt(ctx context.Context, o Observed) (store.Server, error) {
	if o.User == "" || o.Token == "" || o.Addr == "" {
		return store.Server{}, fmt.Errorf("service %s cannot be adopted: it lacks a user label, a token or a running task", o.ServiceName)
	}
	lock, err := m.st.Lock(ctx, lockKey(o.User), m.lockTTL())
	if err != nil {
		return store.Server{}, fmt.Errorf("lock server of %s: %w", o.User, err)
	}
	defer m.release(lock, o.User, false)
	rec, err := m.getServer(ctx, o.User)
	if err != nil {
		return store.Server{}, err
	}
	now := m.o.Clock()
	rec.User = o.User
	rec.State = StateRunning
	rec.ServiceID = o.ServiceID
	rec.ServiceName = o.ServiceName
	rec.Token = o.Token
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
	m.targets[o.User] = target{addr: o.Addr, token: o.Token}
	m.mu.Unlock()
	m.log.Info("adopted running service", "user", o.User, "service", o.ServiceName)
	return rec, nil
}

// RemoveService removes a service by ID or name; a missing one is not an error.
func (m *Manager) RemoveService(ctx context.Context, id string) error {
	if err := m.d.ServiceRemove(ctx, id); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove service %s: %w", id, err)
	}
	return nil
}

func (m *Manager) removeService(ctx context.Context, id string) {
	if err := m.RemoveService(ctx, id); err != nil {
		m.log.Error("remove service of failed spawn", "service", id, "err", err)
	}
}

func (m *Manager) getServer(ctx context.Context, user string) (store.Server, error) {
	rec, err := m.st.GetServer(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return store.Server{User: user, State: StateStopped}, nil
	}
	if err != nil {
		return store.Server{}, fmt.Errorf("read server of %s: %w", user, err)
	}
	return rec, nil
}

func (m *Manager) port() int {
	if m.o.Spec.Port == 0 {
		return DefaultPort
	}
	return m.o.Spec.Port
}

func (m *Manager) progress(ctx context.Context, user string, p store.Progress) {
	if err := m.st.AddProgress(ctx, user, p); err != nil {
		m.log.Warn("write progress", "user", user, "err", err)
	}
}

func (m *Manager) event(ctx context.Context, kind, user, msg string) {
	e := store.Event{Time: m.o.Clock(), Kind: kind, User: user, Actor: "spawner", Message: msg}
	if err := m.st.AddEvent(ctx, e); err != nil {
		m.log.Warn("write event", "kind", kind, "user", user, "err", err)
	}
}

// currentTask returns the newest task of a service. A missing service is
// reported as a NotFound error.
func (m *Manager) currentTask(ctx context.Context, service string) (swarm.Task, bool, error) {
	tasks, err := m.d.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", service))})
	return m.newestTask(ctx, service, tasks, err)
}

// newestTask picks the newest of a service's tasks. An empty list can mean
// the service is gone (stopped elsewhere): that is checked and reported as
// a NotFound error.
func (m *Manager) newestTask(ctx context.Context, service string, tasks []swarm.Task, err error) (swarm.Task, bool, error) {
	if err != nil {
		return swarm.Task{}, false, err
	}
	if len(tasks) == 0 {
		if _, _, err := m.d.ServiceInspectWithRaw(ctx, service, swarm.ServiceInspectOptions{}); err != nil {
			return swarm.Task{}, false, err
		}
		return swarm.Task{}, false, nil
	}
	best := tasks[0]
	for _, t := range tasks[1:] {
		if newer(t, best) {
			best = t
		}
	}
	return best, true, nil
}

func newer(a, b swarm.Task) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.Version.Index > b.Version.Index
}

// taskFailure reports whether the task ended the spawn, with Docker's text.
func taskFailure(t swarm.Task) (string, bool) {
	switch t.Status.State {
	case swarm.TaskStateFailed, swarm.TaskStateRejected:
	case swarm.TaskStateShutdown, swarm.TaskStateComplete:
		if t.Status.Err == "" && t.Status.State == swarm.TaskStateShutdown {
			return "", false
		}
	default:
		return "", false
	}
	msg := t.Status.Err
	if msg == "" {
		msg = t.Status.Message
	}
	if cs := t.Status.ContainerStatus; cs != nil && cs.ExitCode != 0 {
		msg += fmt.Sprintf(" (exit code %d)", cs.ExitCode)
	}
	if msg == "" {
		msg = "the server exited"
	}
	return fmt.Sprintf("task %s: %s", t.Status.State, msg) + hint(msg), true
}

// taskProgress turns a task state into a JupyterHub-like progress event.
func taskProgress(t swarm.Task) store.Progress {
	pct := map[swarm.TaskState]int{
		swarm.TaskStateNew: 30, swarm.TaskStateAllocated: 30, swarm.TaskStatePending: 30,
		swarm.TaskStateAssigned: 40, swarm.TaskStateAccepted: 40,
		swarm.TaskStatePreparing: 50, swarm.TaskStateReady: 60, swarm.TaskStateStarting: 60,
		swarm.TaskStateRunning: 80,
	}[t.Status.State]
	if t.Status.State == swarm.TaskStateRunning {
		return store.Progress{Progress: pct, Message: "Task running, waiting for Jupyter"}
	}
	msg := "Task " + string(t.Status.State)
	detail := t.Status.Err
	if detail == "" {
		detail = t.Status.Message
	}
	if detail != "" {
		msg += ": " + detail
	}
	return store.Progress{Progress: pct, Message: msg}
}

// taskAddr is ip:port of the task on the named network, without the /prefix.
func taskAddr(t swarm.Task, network string, port int) string {
	for _, na := range t.NetworksAttachments {
		if na.Network.Spec.Name != network && na.Network.ID != network {
			continue
		}
		for _, a := range na.Addresses {
			ip, _, _ := strings.Cut(a, "/")
			if ip == "" {
				continue
			}
			if strings.Contains(ip, ":") {
				ip = "[" + ip + "]"
			}
			return fmt.Sprintf("%s:%d", ip, port)
		}
	}
	return ""
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

func (m *Manager) instance() string {
	if m.o.Spec.Instance == "" {
		return DefaultInstance
	}
	return m.o.Spec.Instance
}

func isNameConflict(err error) bool {
	if cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "name conflicts with an existing object") || strings.Contains(msg, "AlreadyExists")
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate server token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// hint adds what a person can do about a Docker error we recognise.
func hint(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "no such image"), strings.Contains(m, "pull access denied"),
		strings.Contains(m, "manifest unknown"), strings.Contains(m, "repository does not exist"):
		return " — the notebook image is not on this node; ask an admin to load it or fix the configured image"
	case strings.Contains(m, "no such device") || strings.Contains(m, "nfs"):
		return " — the node could not mount the workspace (NFS client missing or export unreachable); ask an admin"
	case strings.Contains(m, "no suitable node"), strings.Contains(m, "insufficient resources"):
		return " — no node has enough free CPU or memory, or matches the placement constraints; try again later or ask an admin"
	case strings.Contains(m, "exit code 137"), strings.Contains(m, "oom"):
		return " — the server ran out of memory; ask an admin about the memory limit"
	case strings.Contains(m, "no such file or directory") && strings.Contains(m, "mount"):
		return " — the workspace directory is missing on the node; ask an admin"
	}
	return ""
}

// WatchAddresses runs Retarget every interval until ctx ends. Every replica
// runs it, since each has its own route cache; it costs two Docker calls
// per interval, none per proxied request. A cache that is empty (no student
// online) is not worth a listing.
func (m *Manager) WatchAddresses(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.RLock()
		n := len(m.targets)
		m.mu.RUnlock()
		if n == 0 {
			continue
		}
		obs, err := m.Services(ctx)
		if err != nil {
			m.log.Debug("watch server addresses", "err", err)
			continue
		}
		m.Retarget(obs)
	}
}
