package spawner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Line is the line of starts every replica shares (store.Store satisfies
// it): first come, first served; a start admitted from it holds a lease
// until the server is ready or failed.
type Line interface {
	JoinLine(ctx context.Context, user, options string, unattended bool, stale time.Duration) (store.LinePlace, error)
	SeenInLine(ctx context.Context, user string, stale time.Duration) (store.LinePlace, bool, error)
	AdmitFromLine(ctx context.Context, bound, n int, lease, stale time.Duration) ([]store.LineEntry, error)
	RefreshStart(ctx context.Context, user string, lease time.Duration) (bool, error)
	EndStart(ctx context.Context, user string) error
	LeaveLine(ctx context.Context, user string) error
	Line(ctx context.Context, stale time.Duration) ([]store.LineEntry, []string, error)
	StartsInFlight(ctx context.Context) ([]string, error)
	RecordStartDuration(ctx context.Context, d time.Duration) error
	StartDuration(ctx context.Context) (time.Duration, error)
}

// Room reports the bound on starts in flight and the servers that still
// fit (capacity.Reader satisfies it).
type Room interface {
	Report(ctx context.Context) (capacity.Report, error)
}

// Place is where a user's start stands in the line.
type Place struct {
	Position int  `json:"position"` // from 1 at the head
	Length   int  `json:"length"`
	Starting bool `json:"starting"` // admitted: the start is under way
	// Full: no node can take another server; the line moves when one stops
	// or a node is added.
	Full bool `json:"full"`
	// Wait estimates the time until the start begins; 0 when unknown.
	Wait time.Duration `json:"-"`
}

// QueuedError is returned by Start when the start waits in the line.
type QueuedError struct{ Place Place }

func (e *QueuedError) Error() string {
	if e.Place.Full {
		return fmt.Sprintf("no node can take another server now; you are number %d in line and start when a place frees", e.Place.Position)
	}
	return fmt.Sprintf("you are number %d of %d in line to start", e.Place.Position, e.Place.Length)
}

// startLease is how long an admitted start outlives the replica running it:
// a live start refreshes its lease every third of it.
const startLease = 15 * time.Second

const dispatchLock = "line-dispatch"

// Start starts the user's server, or returns the one already running or
// starting. With a Line, a start waits its turn there and Start returns a
// *QueuedError until it is admitted; otherwise, and once admitted, it
// returns once the service exists, and readiness is followed in the
// background and reported through the progress stream and the record.
func (m *Manager) Start(ctx context.Context, user string, so StartOptions) (store.Server, error) {
	if m.o.Line == nil {
		return m.begin(ctx, user, so, nil)
	}
	rec, err := m.getServer(ctx, user)
	if err != nil {
		return store.Server{}, err
	}
	if rec.State == store.StateStarting || rec.State == store.StateRunning {
		return m.begin(ctx, user, so, nil)
	}
	opts, err := json.Marshal(so)
	if err != nil {
		return store.Server{}, fmt.Errorf("encode start options: %w", err)
	}
	lp, err := m.o.Line.JoinLine(ctx, user, string(opts), so.Unattended, m.o.LineTimeout)
	if err != nil {
		return store.Server{}, err
	}
	if !lp.Starting {
		admitted, err := m.dispatch(ctx, user)
		if err != nil {
			m.log.Warn("admit starts from the line", "err", err)
		}
		if admitted {
			return m.runAdmitted(ctx, user, so)
		}
	}
	p, in, err := m.Place(ctx, user)
	if err != nil {
		return store.Server{}, err
	}
	if in && !p.Starting {
		return rec, &QueuedError{Place: p}
	}
	// Admitted by another admission (maybe on another replica), which
	// runs the start, or already ran it.
	cur, err := m.getServer(ctx, user)
	if err != nil {
		return store.Server{}, err
	}
	if p.Starting && cur.State != store.StateStarting && cur.State != store.StateRunning {
		return store.Server{User: user, State: store.StateStarting, Requested: m.o.Clock()}, nil
	}
	return cur, nil
}

// Place refreshes the user's sign of life in the line and returns where
// they stand; false when they neither wait nor start.
func (m *Manager) Place(ctx context.Context, user string) (Place, bool, error) {
	if m.o.Line == nil {
		return Place{}, false, nil
	}
	lp, in, err := m.o.Line.SeenInLine(ctx, user, m.o.LineTimeout)
	if err != nil || !in {
		return Place{}, false, err
	}
	p := Place{Position: lp.Position + 1, Length: lp.Length, Starting: lp.Starting}
	if p.Starting {
		return p, true, nil
	}
	bound := 0
	if m.o.Room != nil {
		rep, err := m.o.Room.Report(ctx)
		if err != nil {
			m.log.Warn("read capacity", "err", err)
		} else {
			bound = m.bound(ctx, rep)
			if rep.Fit != capacity.Unlimited {
				// Starts in flight are in the figure or about to be.
				starting, err := m.o.Line.StartsInFlight(ctx)
				p.Full = err == nil && m.free(ctx, rep, starting) <= 0
			}
		}
	}
	if m.o.Room == nil && m.o.SpawnLimit > 0 {
		bound = m.o.SpawnLimit
	}
	if !p.Full && bound > 0 {
		if avg, err := m.o.Line.StartDuration(ctx); err == nil && avg > 0 {
			rounds := (p.Position + bound - 1) / bound
			p.Wait = time.Duration(rounds) * avg
		}
	}
	return p, true, nil
}

// LineStatus is the line as admins see it.
type LineStatus struct {
	Waiting  []store.LineEntry
	Starting []string
	Bound    int // starts in flight allowed at once; 0: no bound
}

// LineStatus returns who waits, head first, and whose start is in flight.
func (m *Manager) LineStatus(ctx context.Context) (LineStatus, error) {
	if m.o.Line == nil {
		return LineStatus{Bound: max(0, m.o.SpawnLimit)}, nil
	}
	w, s, err := m.o.Line.Line(ctx, m.o.LineTimeout)
	if err != nil {
		return LineStatus{}, err
	}
	st := LineStatus{Waiting: w, Starting: s, Bound: m.o.SpawnLimit}
	if m.o.Room != nil {
		if rep, err := m.o.Room.Report(ctx); err == nil {
			st.Bound = m.bound(ctx, rep)
		}
	}
	return st, nil
}

// SettingStartsPerNode is the runtime setting that replaces
// notebook.starts_per_node while it is set (admins set it through the API).
const SettingStartsPerNode = "starts_per_node"

// Settings are the runtime settings the spawner reads (store.Store satisfies it).
type Settings interface {
	GetSetting(ctx context.Context, name string) (string, error)
}

// startsPerNode is the runtime override of the per-node start bound, if set.
func (m *Manager) startsPerNode(ctx context.Context) (int, bool) {
	if m.o.Settings == nil {
		return 0, false
	}
	v, err := m.o.Settings.GetSetting(ctx, SettingStartsPerNode)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			m.log.Warn("read the starts_per_node setting", "err", err)
		}
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < capacity.AutoStarts {
		m.log.Warn("ignoring an invalid starts_per_node setting", "value", v)
		return 0, false
	}
	return n, true
}

func (m *Manager) bound(ctx context.Context, rep capacity.Report) int {
	b := rep.Starts
	if n, ok := m.startsPerNode(ctx); ok {
		b = rep.StartsWith(n)
	}
	if m.o.SpawnLimit > 0 && (b == 0 || m.o.SpawnLimit < b) {
		b = m.o.SpawnLimit
	}
	return b
}

// free is how many more servers may be admitted: the capacity less the
// starts in flight whose service Docker did not report yet.
func (m *Manager) free(ctx context.Context, rep capacity.Report, starting []string) int {
	if rep.Fit == capacity.Unlimited {
		return math.MaxInt32
	}
	uncounted := 0
	for _, u := range starting {
		rec, err := m.getServer(ctx, u)
		if err != nil || rec.ServiceID == "" || !rep.Services[rec.ServiceID] {
			uncounted++
		}
	}
	return rep.Fit - uncounted
}

// dispatch admits starts from the head of the line while the bound and the
// capacity allow, one replica at a time, and runs them in the background,
// except self's, which the caller runs. It reports whether self was admitted.
func (m *Manager) dispatch(ctx context.Context, self string) (bool, error) {
	lock, err := m.st.Lock(ctx, dispatchLock, 30*time.Second)
	// A student who just joined waits a moment for an admission under way
	// (it takes a few Redis calls), so that a start with room goes ahead
	// in this request rather than at the next check.
	for tries := 0; self != "" && errors.Is(err, store.ErrLocked) && tries < 50; tries++ {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		lock, err = m.st.Lock(ctx, dispatchLock, 30*time.Second)
	}
	if errors.Is(err, store.ErrLocked) {
		return false, nil // another replica admits; the periodic check comes back
	}
	if err != nil {
		return false, fmt.Errorf("lock the line: %w", err)
	}
	defer m.release(lock, dispatchLock, false)
	waiting, starting, err := m.o.Line.Line(ctx, m.o.LineTimeout)
	if err != nil || len(waiting) == 0 {
		return false, err
	}
	bound, n := max(0, m.o.SpawnLimit), len(waiting)
	if m.o.Room != nil {
		// Without a reading the line still moves, within the spawn limit:
		// Docker then says itself when a server does not fit.
		if rep, err := m.o.Room.Report(ctx); err != nil {
			m.log.Warn("read capacity; admitting within the spawn limit only", "err", err)
		} else {
			bound = m.bound(ctx, rep)
			n = min(n, m.free(ctx, rep, starting))
		}
	}
	admitted, err := m.o.Line.AdmitFromLine(ctx, bound, n, startLease, m.o.LineTimeout)
	if err != nil {
		return false, err
	}
	selfAdmitted := false
	for _, e := range admitted {
		if e.User == self {
			selfAdmitted = true
			continue
		}
		var so StartOptions
		if err := json.Unmarshal([]byte(e.Options), &so); err != nil {
			m.log.Warn("start options in the line", "user", e.User, "err", err)
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.o.StartTimeout)
			defer cancel()
			if _, err := m.runAdmitted(ctx, e.User, so); err != nil {
				m.log.Warn("start from the line", "user", e.User, "err", err)
				if errors.Is(err, ErrBusy) {
					m.progress(ctx, e.User, store.Progress{Progress: 100, Failed: true, Message: "Spawn failed: " + err.Error()})
				}
			}
		}()
	}
	if len(admitted) > 0 {
		m.log.Info("admitted starts from the line", "n", len(admitted), "waiting", len(waiting)-len(admitted), "bound", bound)
	}
	return selfAdmitted, nil
}

// runAdmitted runs a start admitted from the line, keeping its lease until
// the spawn is over, and then lets the next one in.
func (m *Manager) runAdmitted(ctx context.Context, user string, so StartOptions) (store.Server, error) {
	kctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(startLease / 3)
		defer t.Stop()
		for {
			select {
			case <-kctx.Done():
				return
			case <-t.C:
			}
			if _, err := m.o.Line.RefreshStart(kctx, user, startLease); err != nil && kctx.Err() == nil {
				m.log.Warn("refresh start lease", "user", user, "err", err)
			}
		}
	}()
	return m.begin(ctx, user, so, func() {
		cancel()
		<-done
		ectx, ecancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ecancel()
		if err := m.o.Line.EndStart(ectx, user); err != nil {
			m.log.Warn("end start", "user", user, "err", err)
		}
		m.kickLine()
	})
}

// kickLine makes RunLine look at the line now rather than at its next tick:
// a start ended or a server stopped.
func (m *Manager) kickLine() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// RunLine admits waiting starts whenever a start ends, a server stops, and
// every interval (a server stopped or a node added elsewhere), until ctx
// ends. Every replica runs it; one at a time admits.
func (m *Manager) RunLine(ctx context.Context) {
	if m.o.Line == nil {
		return
	}
	t := time.NewTicker(m.o.LineInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		if _, err := m.dispatch(ctx, ""); err != nil && ctx.Err() == nil {
			m.log.Warn("admit starts from the line", "err", err)
		}
	}
}
