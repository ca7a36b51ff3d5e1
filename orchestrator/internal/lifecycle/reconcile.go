package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// ObservedService is a swarm service labelled as one of ours. It carries
// all that adopting it needs, so a pass lists Docker once.
type ObservedService struct {
	User        string
	ServiceID   string
	ServiceName string
	Image       string
	Created     time.Time
	Token       string // the server token from the service spec
	HubToken    bool   // Token is also a hub API token (jupyterhub-singleuser)
	Instructor  bool
	Addr        string // task address, "" when no task runs
	Running     bool   // a task is in state running
}

// Record is the store's view of one user's server.
type Record struct {
	User      string
	State     string // stopped, starting, running, stopping, failed
	ServiceID string
	Token     string
	Addr      string    // where the store says the server listens
	Requested time.Time // when the start was requested
}

// Observer lists what runs in the swarm and removes services.
type Observer interface {
	ListObserved(ctx context.Context) ([]ObservedService, error)
	RemoveService(ctx context.Context, user, serviceID string) error
}

// Records is the store side of reconciliation.
type Records interface {
	ListRecords(ctx context.Context) ([]Record, error)
	// Adopt makes the record say "running" with the service's id, token and
	// address.
	Adopt(ctx context.Context, svc ObservedService) error
	// MarkStopped sets the state to stopped and clears the token.
	MarkStopped(ctx context.Context, user, reason string) error
	// ClearToken forgets the token of a server that no longer runs, leaving
	// the state (e.g. failed with its message) alone.
	ClearToken(ctx context.Context, user string) error
	// SetAddress records addr for the user's running server on serviceID;
	// a record that changed meanwhile (stopped, another service) is left
	// alone.
	SetAddress(ctx context.Context, user, serviceID, addr string) error
}

// UserPolicy says whether a user may no longer run a server.
type UserPolicy interface {
	IsDeletedOrBlocked(ctx context.Context, user string) (bool, error)
}

// ReconcileOptions configures a Reconciler.
type ReconcileOptions struct {
	// StartTimeout is how long a "starting" record without a service is left
	// alone (the spawner may not have created it yet). Default 5 minutes.
	StartTimeout time.Duration
	Clock        func() time.Time
	Logger       *slog.Logger
}

// Reconciler makes the store agree with the swarm, which is the source of
// truth for what runs.
type Reconciler struct {
	obs    Observer
	recs   Records
	users  UserPolicy
	events EventSink
	o      ReconcileOptions
	log    *slog.Logger
}

// ReconcileReport lists what one pass changed.
type ReconcileReport struct {
	Adopted       []string          `json:"adopted"`
	MarkedStopped []string          `json:"marked_stopped"`
	Removed       []string          `json:"removed"`
	TokensCleared []string          `json:"tokens_cleared"`
	Readdressed   []string          `json:"readdressed"`
	Errors        map[string]string `json:"errors,omitempty"`
}

// NewReconciler returns a Reconciler; events may be nil.
func NewReconciler(obs Observer, recs Records, users UserPolicy, events EventSink, o ReconcileOptions) *Reconciler {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 5 * time.Minute
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{obs: obs, recs: recs, users: users, events: events, o: o, log: o.Logger}
}

// Job adapts Run for Scheduler.Add.
func (r *Reconciler) Job(ctx context.Context) error {
	_, err := r.Run(ctx)
	return err
}

// Run performs one reconciliation pass:
//   - the service of a deleted or blocked user is removed (and its record
//     marked stopped);
//   - a running labelled service without a record, or whose record says
//     stopped or failed, or names another service, is adopted;
//   - a record whose service is gone is marked stopped, unless it is
//     "starting" and younger than StartTimeout;
//   - a stopped or failed record that still holds a token loses it;
//   - a running record whose task came back at another address (after a
//     dockerd or node restart) gets the new one, so the culler's probes and
//     a replica starting afresh reach the right server.
func (r *Reconciler) Run(ctx context.Context) (ReconcileReport, error) {
	rep := ReconcileReport{Errors: map[string]string{}}
	observed, err := r.obs.ListObserved(ctx)
	if err != nil {
		return rep, fmt.Errorf("reconcile: list services: %w", err)
	}
	records, err := r.recs.ListRecords(ctx)
	if err != nil {
		return rep, fmt.Errorf("reconcile: list server records: %w", err)
	}
	byUser := make(map[string]Record, len(records))
	for _, rec := range records {
		byUser[rec.User] = rec
	}
	now := r.o.Clock()
	fail := func(user, what string, err error) {
		rep.Errors[user] = what + ": " + err.Error()
	}

	seen := map[string]bool{}
	sort.Slice(observed, func(i, j int) bool { return observed[i].User < observed[j].User })
	for _, svc := range observed {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		seen[svc.User] = true
		gone, err := r.users.IsDeletedOrBlocked(ctx, svc.User)
		if err != nil {
			fail(svc.User, "check user", err)
			continue
		}
		rec, hasRec := byUser[svc.User]
		if gone {
			if err := r.obs.RemoveService(ctx, svc.User, svc.ServiceID); err != nil {
				fail(svc.User, "remove service", err)
				continue
			}
			rep.Removed = append(rep.Removed, svc.User)
			r.event(ctx, "stop", svc.User, "reconcile: removed the server of a deleted or blocked user")
			if hasRec && rec.State != store.StateStopped {
				if err := r.recs.MarkStopped(ctx, svc.User, "user deleted or blocked"); err != nil {
					fail(svc.User, "mark stopped", err)
				}
			}
			continue
		}
		if !svc.Running {
			continue // starting, or failing: the spawner reports that
		}
		// A record stuck in "starting" past the start timeout with its task
		// running lost its spawner (the replica died): take over.
		stale := rec.State == store.StateStarting && !rec.Requested.IsZero() && now.Sub(rec.Requested) > r.o.StartTimeout
		adopt := !hasRec || rec.State == store.StateStopped || rec.State == store.StateFailed || stale ||
			(rec.State == store.StateRunning && rec.ServiceID != svc.ServiceID)
		if !adopt {
			if rec.State == store.StateRunning && svc.Addr != "" && rec.Addr != svc.Addr {
				if err := r.recs.SetAddress(ctx, svc.User, svc.ServiceID, svc.Addr); err != nil {
					fail(svc.User, "record address", err)
				} else {
					rep.Readdressed = append(rep.Readdressed, svc.User)
				}
			}
			continue
		}
		if err := r.recs.Adopt(ctx, svc); err != nil {
			if !errors.Is(err, ErrGone) {
				fail(svc.User, "adopt", err)
			}
			continue
		}
		rep.Adopted = append(rep.Adopted, svc.User)
		r.event(ctx, "spawn", svc.User, "reconcile: adopted a running service")
	}

	sort.Slice(records, func(i, j int) bool { return records[i].User < records[j].User })
	for _, rec := range records {
		if seen[rec.User] {
			continue
		}
		switch rec.State {
		case store.StateStopped, store.StateFailed:
			if rec.Token == "" {
				continue
			}
			if err := r.recs.ClearToken(ctx, rec.User); err != nil {
				fail(rec.User, "clear token", err)
				continue
			}
			rep.TokensCleared = append(rep.TokensCleared, rec.User)
		case store.StateStarting:
			if !rec.Requested.IsZero() && now.Sub(rec.Requested) < r.o.StartTimeout {
				continue
			}
			fallthrough
		default:
			if err := r.recs.MarkStopped(ctx, rec.User, "service gone"); err != nil {
				fail(rec.User, "mark stopped", err)
				continue
			}
			rep.MarkedStopped = append(rep.MarkedStopped, rec.User)
			r.event(ctx, "stop", rec.User, fmt.Sprintf("reconcile: the server (%s) is gone", rec.State))
		}
	}
	for u, e := range rep.Errors {
		r.log.Warn("reconcile", "user", u, "err", e)
	}
	if n := len(rep.Adopted) + len(rep.MarkedStopped) + len(rep.Removed) + len(rep.TokensCleared) + len(rep.Readdressed); n > 0 {
		r.log.Info("reconciled", "adopted", rep.Adopted, "marked_stopped", rep.MarkedStopped, "removed", rep.Removed,
			"tokens_cleared", rep.TokensCleared, "readdressed", rep.Readdressed)
	}
	return rep, nil
}

func (r *Reconciler) event(ctx context.Context, kind, user, msg string) {
	if r.events != nil {
		r.events.AddEvent(ctx, kind, user, msg)
	}
}
