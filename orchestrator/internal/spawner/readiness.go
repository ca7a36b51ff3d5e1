package spawner

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// Readiness is followed on two clocks. Docker's task state is polled every
// ProbeInterval through the batcher (that bounds Docker calls per spawn and
// reports failures and progress). The server itself is probed on its own,
// much more often, from the moment its task has an address: a start then
// ends within a few milliseconds of the server answering instead of at the
// next poll, which made every start a multiple of the poll interval.
//
// Probes cost the server nothing before it listens (the connection is
// refused), but a storm of hundreds of starts must not turn into thousands
// of probes a second on the cores that boot the servers: the probes of all
// starts in flight on this replica share a budget, so one start is probed
// every minProbeGap and a storm no more often than ProbeInterval per server,
// as before.
const (
	minProbeGap = 10 * time.Millisecond
	// probesPerSecond is the budget shared by the starts in flight: up to
	// two of them get minProbeGap; 50 get ProbeInterval's default.
	probesPerSecond = 200
	// earlyProbeTimeout bounds a probe sent before Docker reports the task
	// starting: its address may not exist yet, and a connection to an
	// address nobody answers hangs rather than being refused.
	earlyProbeTimeout = 150 * time.Millisecond
)

// probePace hands out the gap between two probes of one start.
type probePace struct {
	active   atomic.Int64
	min, max time.Duration
}

func newProbePace(interval time.Duration) *probePace {
	return &probePace{min: min(minProbeGap, interval), max: interval}
}

func (p *probePace) gap() time.Duration {
	d := time.Duration(p.active.Load()) * time.Second / probesPerSecond
	return min(max(d, p.min), p.max)
}

// readyWatch is one start's fast prober.
type readyWatch struct {
	ready  chan string // the address, once the server answered
	early  atomic.Bool // Docker has not yet reported the task starting
	cancel context.CancelFunc

	mu      sync.Mutex
	lastErr string
}

func (w *readyWatch) err() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// taskStarted says whether the task's container has been started (its
// address then refuses connections quickly instead of not existing, and
// the server may answer before the managers list the task as running).
func taskStarted(s swarm.TaskState) bool {
	return s == swarm.TaskStateStarting || s == swarm.TaskStateRunning
}

// watchReady probes addr until the server answers as ready or ctx ends.
func (m *Manager) watchReady(ctx context.Context, addr, user, token string, started bool) *readyWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &readyWatch{ready: make(chan string, 1), cancel: cancel}
	w.early.Store(!started)
	m.pace.active.Add(1)
	go func() {
		defer m.pace.active.Add(-1)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			pctx, pcancel := ctx, context.CancelFunc(func() {})
			if w.early.Load() {
				pctx, pcancel = context.WithTimeout(ctx, earlyProbeTimeout)
			}
			err := m.probe.Probe(pctx, addr, user, token)
			pcancel()
			if err == nil {
				w.ready <- addr
				return
			}
			if ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			w.lastErr = err.Error()
			w.mu.Unlock()
			timer.Reset(m.pace.gap())
		}
	}()
	return w
}
