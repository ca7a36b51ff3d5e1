package spawner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
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
	// UID and GID own new workspace and course data directories; default
	// 1000:100 (jovyan:users).
	UID, GID int
	// Metrics, when set, hears how each spawn of this replica ended.
	Metrics SpawnObserver
	// Line, when set, is where starts wait their turn; nil: every start
	// goes ahead at once, up to SpawnLimit.
	Line Line
	// Room, when set with Line, bounds the starts in flight and admits no
	// more servers than fit.
	Room Room
	// LineTimeout: a waiting user not seen for this long leaves the line
	// (their page stopped asking); default 1m.
	LineTimeout time.Duration
	// LineInterval is how often RunLine looks at the line without being
	// kicked; default 2s.
	LineInterval time.Duration
	// Settings, when set, may override the per-node start bound at runtime
	// (SettingStartsPerNode).
	Settings Settings
	// AddressGone, when set, hears the old address of every route that
	// Retarget dropped or moved (the task is no longer running there), so
	// that the proxy can close its connections to it at once.
	AddressGone func(addr string)
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
	// Unattended: nobody follows this start's progress (a start an admin
	// scheduled), so it keeps its place in the line without signs of life.
	Unattended bool `json:",omitempty"`
}

// Manager starts, stops and locates user servers.
type Manager struct {
	d     Docker
	st    Store
	o     ManagerOptions
	log   *slog.Logger
	probe Prober

	tasks *taskBatcher // task lookups of spawns in flight, one Docker call per round
	pace  *probePace   // spacing of the readiness probes of spawns in flight

	mu      sync.RWMutex
	targets map[string]target // user -> where the running server is
	down    downNodes         // swarm nodes reported down (WatchAddresses)
	wg      sync.WaitGroup    // background spawns
	spawns  map[string]*spawn // user -> this replica's spawn in flight
	kick    chan struct{}     // wakes RunLine
}

type spawn struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed once the lock and slot are released
}

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
	if o.LineTimeout <= 0 {
		o.LineTimeout = time.Minute
	}
	if o.LineInterval <= 0 {
		o.LineInterval = 2 * time.Second
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
		pace:    newProbePace(o.ProbeInterval),
		targets: map[string]target{},
		spawns:  map[string]*spawn{},
		kick:    make(chan struct{}, 1),
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

func (m *Manager) getServer(ctx context.Context, user string) (store.Server, error) {
	rec, err := m.st.GetServer(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return store.Server{User: user, State: store.StateStopped}, nil
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

func (m *Manager) instance() string {
	if m.o.Spec.Instance == "" {
		return DefaultInstance
	}
	return m.o.Spec.Instance
}
