// Package jobs wires the scheduled work (cull, archive, Redis snapshots,
// reconcile) onto the store and the spawner, and answers the web layer's
// lifecycle endpoints.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/archive"
	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/diskusage"
	"github.com/swarmhub/swarmhub/orchestrator/internal/lifecycle"
	"github.com/swarmhub/swarmhub/orchestrator/internal/prepull"
	"github.com/swarmhub/swarmhub/orchestrator/internal/prestart"
	"github.com/swarmhub/swarmhub/orchestrator/internal/redisbackup"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// Jobs is the orchestrator's scheduled work: cull, archive, Redis
// snapshots, reconcile, pre-start.
// Every run takes a Redis lock, so with several replicas each runs once.
type Jobs struct {
	sched    *lifecycle.Scheduler
	culler   *lifecycle.Culler
	recon    *lifecycle.Reconciler
	archiver *archive.Archiver
	backup   *redisbackup.Backup
	prestart *prestart.Runner
	starter  lateStarter
	puller   *prepull.Puller // nil: notebook.prepull is off
	meter    *diskusage.Meter
	st       *store.Store
	mgr      *spawner.Manager
	root     string
	log      *slog.Logger

	mu         sync.Mutex
	lastCull   lifecycle.CullReport
	lastRecon  lifecycle.ReconcileReport
	lastArchiv archive.Manifest
	onCull     func(n int)
	onArchive  func(m archive.Manifest)
}

const (
	jobCull      = "cull"
	jobArchive   = "archive"
	jobSnapshot  = "redis-snapshot"
	jobReconcile = "reconcile"
	jobPrestart  = "prestart"
	jobPrepull   = "prepull"
	jobDiskUsage = "disk-usage"
)

// prepullEvery is how often the nodes are checked for the image: a node
// that joins starts pulling at most this late.
const prepullEvery = "@every 30s"

// prestartTick is how often the schedules are looked at: a pre-start fires
// at most this late.
const prestartTick = "@every 20s"

// New builds the scheduler with the jobs; Start runs it.
// puller may be nil (pre-pulling off); room (nil: not known) stops a
// pre-start once the cluster is full.
func New(cfg config.Config, st *store.Store, mgr *spawner.Manager, puller *prepull.Puller, room CapacityReporter, log *slog.Logger) (*Jobs, error) {
	lc := cfg.Lifecycle
	events := eventSink{st: st, log: log}
	j := &Jobs{st: st, mgr: mgr, puller: puller, root: cfg.Storage.Mount, log: log}
	loc, err := lc.Archive.Location()
	if err != nil {
		return nil, fmt.Errorf("lifecycle.archive.timezone: %w", err)
	}
	j.sched = lifecycle.NewScheduler(lifecycle.LockerFunc(st.Lock, store.ErrLocked), events, lifecycle.SchedulerOptions{
		KeyPrefix: "lifecycle:", Location: loc, Logger: log,
	})
	// Lecture crons are read in the zone of the clock's times.
	po := prestart.Options{Events: events, Logger: log, Clock: func() time.Time { return time.Now().In(loc) }}
	if room != nil {
		po.Capacity = freeRoom{room}
	}
	j.prestart = prestart.New(st, members{st}, &j.starter, po)
	j.culler = lifecycle.NewCuller(cullServers{st}, activitySource{st}, lifecycle.NewHTTPStatusProber(nil), mgr, events, lifecycle.CullOptions{
		Timeout: lc.Cull.Timeout, MaxAge: lc.Cull.MaxAge, CullAdmins: lc.Cull.CullAdmins,
		BusyIsActive: lc.Cull.BusyKernelsAreActive, Concurrency: lc.Cull.Concurrency, Spares: j.prestart, Logger: log,
	})
	j.recon = lifecycle.NewReconciler(observer{mgr}, records{st: st, mgr: mgr}, userPolicy{st}, events, lifecycle.ReconcileOptions{
		StartTimeout: cfg.Notebook.StartTimeout + time.Minute, Logger: log,
	})
	a, err := archive.New(archive.Options{Root: cfg.Storage.Mount, Dir: ArchiveDir(cfg), Exclude: lc.Archive.Exclude,
		Concurrency: lc.Archive.Concurrency, Keep: lc.Archive.Keep,
		MaxFileSize: int64(lc.Archive.MaxFileSize), MaxBytes: int64(lc.Archive.MaxWorkspaceSize),
		MaxDuration: lc.Archive.MaxDuration, Events: events, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("lifecycle.archive: %w", err)
	}
	j.archiver = a
	j.backup, err = redisbackup.New(st.Client(), redisbackup.Options{Dir: RedisSnapshotDir(cfg), Prefix: cfg.Redis.KeyPrefix,
		Keep: lc.Snapshot.Keep, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("lifecycle.redis_snapshot: %w", err)
	}

	schedule := func(enabled bool, s string) string {
		if !enabled {
			return "off" // still available through the API
		}
		return s
	}
	if err := j.sched.Add(jobCull, schedule(lc.Cull.Enabled, lc.Cull.Schedule), j.cull); err != nil {
		return nil, fmt.Errorf("lifecycle.cull.schedule: %w", err)
	}
	if err := j.sched.Add(jobArchive, schedule(lc.Archive.Enabled, lc.Archive.Schedule), j.archiveAll); err != nil {
		return nil, fmt.Errorf("lifecycle.archive.schedule: %w", err)
	}
	if err := j.sched.Add(jobSnapshot, schedule(lc.Snapshot.Enabled, lc.Snapshot.Schedule), j.snapshot); err != nil {
		return nil, fmt.Errorf("lifecycle.redis_snapshot.schedule: %w", err)
	}
	if err := j.sched.Add(jobPrestart, prestartTick, j.prestart.Tick); err != nil {
		return nil, fmt.Errorf("lifecycle.prestart: %w", err)
	}
	if lc.DiskUsage.Interval > 0 {
		j.meter = diskusage.New(st, diskusage.Options{Root: cfg.Storage.Mount, SoftLimit: int64(lc.DiskUsage.SoftLimit),
			Valid: archive.ValidUser, Events: events, Logger: log})
		if err := j.sched.Add(jobDiskUsage, fmt.Sprintf("@every %s", lc.DiskUsage.Interval), func(ctx context.Context) error {
			_, err := j.meter.Run(ctx)
			return err
		}); err != nil {
			return nil, fmt.Errorf("lifecycle.disk_usage.interval: %w", err)
		}
	}
	if j.puller != nil {
		if err := j.sched.Add(jobPrepull, prepullEvery, j.prepull); err != nil {
			return nil, fmt.Errorf("notebook.prepull: %w", err)
		}
	}
	if err := j.sched.Add(jobReconcile, fmt.Sprintf("@every %s", lc.Reconcile.Interval), j.reconcile); err != nil {
		return nil, fmt.Errorf("lifecycle.reconcile.interval: %w", err)
	}
	return j, nil
}

func (j *Jobs) cull(ctx context.Context) error {
	rep, err := j.culler.Run(ctx)
	j.mu.Lock()
	j.lastCull = rep
	f := j.onCull
	j.mu.Unlock()
	if f != nil {
		f(len(rep.Culled))
	}
	return err
}

// prepull points the pre-pull job at the current image and runs it again
// for nodes that joined.
func (j *Jobs) prepull(ctx context.Context) error {
	h := j.starter.hub()
	if h == nil {
		return nil
	}
	return j.puller.Ensure(ctx, h.CurrentImage(ctx))
}

func (j *Jobs) reconcile(ctx context.Context) error {
	rep, err := j.recon.Run(ctx)
	j.mu.Lock()
	j.lastRecon = rep
	j.mu.Unlock()
	return err
}

// archiveAll archives every workspace directory under users/, including
// imported ones whose owners have not logged in yet.
func (j *Jobs) archiveAll(ctx context.Context) error {
	users, err := j.workspaces()
	if err != nil {
		return err
	}
	m, err := j.archiver.Run(ctx, users)
	j.mu.Lock()
	j.lastArchiv = m
	f := j.onArchive
	j.mu.Unlock()
	if f != nil {
		f(m)
	}
	return err
}

// snapshot writes a Redis snapshot next to the archives.
func (j *Jobs) snapshot(ctx context.Context) error {
	_, err := j.backup.Write(ctx)
	return err
}

// ArchiveDir is where archives and Redis snapshots go:
// lifecycle.archive.dir, or archives/ under the storage root.
func ArchiveDir(cfg config.Config) string {
	if d := cfg.Lifecycle.Archive.Dir; d != "" {
		return d
	}
	return filepath.Join(cfg.Storage.Mount, "archives")
}

// RedisSnapshotDir is where Redis snapshots go: redis/ in the archive
// directory (no archive run can be named so).
func RedisSnapshotDir(cfg config.Config) string { return filepath.Join(ArchiveDir(cfg), "redis") }

func (j *Jobs) workspaces() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(j.root, "users"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing workspaces: %w", err)
	}
	var users []string
	for _, e := range ents {
		if e.IsDir() && archive.ValidUser(e.Name()) {
			users = append(users, e.Name())
		}
	}
	sort.Strings(users)
	return users, nil
}

// The methods below are what the web layer's lifecycle endpoints call.

// webErr maps the packages' sentinels onto the web layer's.
func webErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lifecycle.ErrLocked):
		return fmt.Errorf("%w: %w", web.ErrJobRunning, err)
	case errors.Is(err, archive.ErrNotFound):
		return fmt.Errorf("%w: %w", web.ErrArchiveMissing, err)
	case errors.Is(err, archive.ErrExists):
		return fmt.Errorf("%w: %w", web.ErrRestoreExists, err)
	case errors.Is(err, archive.ErrDiskFull):
		return fmt.Errorf("%w: %w", web.ErrStorageFull, err)
	}
	return err
}

func (j *Jobs) TriggerCull(ctx context.Context) (any, error) {
	if err := j.sched.Trigger(ctx, jobCull); err != nil {
		return nil, webErr(err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastCull, nil
}

func (j *Jobs) TriggerReconcile(ctx context.Context) (any, error) {
	if err := j.sched.Trigger(ctx, jobReconcile); err != nil {
		return nil, webErr(err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastRecon, nil
}

// TriggerArchive starts a full run in the background: it can take long.
func (j *Jobs) TriggerArchive(ctx context.Context) error {
	go func() {
		bg, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
		defer cancel()
		if err := j.sched.Trigger(bg, jobArchive); err != nil {
			j.log.Warn("archive run", "err", err)
		}
	}()
	return nil
}

func (j *Jobs) ArchiveUser(ctx context.Context, user string) (any, error) {
	m, err := j.archiver.ArchiveNow(ctx, user)
	return m, webErr(err)
}

func (j *Jobs) Runs(ctx context.Context) (any, error) { return j.archiver.Runs(ctx) }

func (j *Jobs) OpenArchive(run, user string) (io.ReadCloser, int64, error) {
	rc, n, err := j.archiver.Open(run, user)
	return rc, n, webErr(err)
}

func (j *Jobs) Restore(ctx context.Context, run, user string, overwrite bool) (string, error) {
	dest, err := j.archiver.Restore(ctx, run, user, overwrite)
	return dest, webErr(err)
}

func (j *Jobs) StreamWorkspace(ctx context.Context, w io.Writer, user string) error {
	return j.archiver.StreamWorkspace(ctx, w, user)
}

// RemoveData archives a workspace, then deletes it (DELETE user with
// remove_data=true). The archive must succeed first: nothing is lost.
func (j *Jobs) RemoveData(ctx context.Context, user string) error {
	dir := filepath.Join(j.root, "users", user)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	m, err := j.archiver.ArchiveNow(ctx, user)
	if err != nil {
		return fmt.Errorf("archiving before removal failed, nothing was deleted: %w", err)
	}
	if m.Errors() > 0 {
		return fmt.Errorf("archiving before removal reported errors (run %s), nothing was deleted", m.Run)
	}
	if m.Limited() > 0 {
		return fmt.Errorf("the archive limits left files out of run %s (see its manifest), nothing was deleted", m.Run)
	}
	return os.RemoveAll(dir)
}

// eventSink writes job events to the Redis event stream.
type eventSink struct {
	st  *store.Store
	log *slog.Logger
}

func (e eventSink) AddEvent(ctx context.Context, kind, user, message string) {
	if err := e.st.AddEvent(ctx, store.Event{Time: time.Now().UTC(), Kind: kind, User: user, Actor: "swarmhub", Message: message}); err != nil {
		e.log.Warn("recording event", "kind", kind, "err", err)
	}
}

type cullServers struct{ st *store.Store }

func (c cullServers) ListRunning(ctx context.Context) ([]lifecycle.ServerInfo, error) {
	servers, err := c.st.ListServers(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range servers {
		if s.State == store.StateRunning {
			names = append(names, s.User)
		}
	}
	users, err := c.st.GetUsers(ctx, names)
	if err != nil {
		return nil, err
	}
	admin := make(map[string]bool, len(users))
	for name, u := range users {
		admin[name] = u.Admin
	}
	out := make([]lifecycle.ServerInfo, 0, len(servers))
	for _, s := range servers {
		if s.State != store.StateRunning {
			continue
		}
		out = append(out, lifecycle.ServerInfo{User: s.User, Admin: admin[s.User], State: s.State,
			Started: s.Started, Ready: s.Ready, Addr: s.Addr, Token: s.Token})
	}
	return out, nil
}

type activitySource struct{ st *store.Store }

func (a activitySource) LastActivity(ctx context.Context) (map[string]time.Time, error) {
	return a.st.Activity(ctx)
}

type observer struct{ mgr *spawner.Manager }

func (o observer) ListObserved(ctx context.Context) ([]lifecycle.ObservedService, error) {
	obs, err := o.mgr.Services(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]lifecycle.ObservedService, 0, len(obs))
	for _, s := range obs {
		out = append(out, lifecycle.ObservedService{User: s.User, ServiceID: s.ServiceID, ServiceName: s.ServiceName,
			Image: s.Image, Created: s.Created, Token: s.Token, HubToken: s.HubToken, Instructor: s.Instructor,
			Addr: s.Addr, Running: s.TaskState == "running"})
	}
	return out, nil
}

func (o observer) RemoveService(ctx context.Context, user, id string) error {
	o.mgr.Forget(user)
	return o.mgr.RemoveService(ctx, id)
}

type records struct {
	st  *store.Store
	mgr *spawner.Manager
}

func (r records) ListRecords(ctx context.Context) ([]lifecycle.Record, error) {
	servers, err := r.st.ListServers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]lifecycle.Record, 0, len(servers))
	for _, s := range servers {
		out = append(out, lifecycle.Record{User: s.User, State: s.State, ServiceID: s.ServiceID, Token: s.Token, Addr: s.Addr, Requested: s.Requested})
	}
	return out, nil
}

func (r records) Adopt(ctx context.Context, svc lifecycle.ObservedService) error {
	_, err := r.mgr.Adopt(ctx, spawner.Observed{User: svc.User, ServiceID: svc.ServiceID, ServiceName: svc.ServiceName,
		Image: svc.Image, Created: svc.Created, Token: svc.Token, HubToken: svc.HubToken, Instructor: svc.Instructor, Addr: svc.Addr})
	if errors.Is(err, spawner.ErrServiceGone) {
		return fmt.Errorf("%w: %w", lifecycle.ErrGone, err)
	}
	return err
}

func (r records) MarkStopped(ctx context.Context, user, reason string) error {
	r.mgr.Forget(user)
	_, err := r.st.UpdateServer(ctx, user, func(v *store.Server, exists bool) error {
		v.User = user
		v.State = store.StateStopped
		v.Token = ""
		v.Addr = ""
		return nil
	})
	return err
}

func (r records) SetAddress(ctx context.Context, user, serviceID, addr string) error {
	_, err := r.st.UpdateServer(ctx, user, func(v *store.Server, _ bool) error {
		if v.State != store.StateRunning || v.ServiceID != serviceID {
			return errRecordChanged
		}
		v.Addr = addr
		return nil
	})
	if errors.Is(err, errRecordChanged) {
		return nil
	}
	return err
}

// errRecordChanged aborts an update of a record that changed since it was read.
var errRecordChanged = errors.New("record changed meanwhile")

func (r records) ClearToken(ctx context.Context, user string) error {
	_, err := r.st.UpdateServer(ctx, user, func(v *store.Server, exists bool) error {
		v.Token = ""
		return nil
	})
	return err
}

type userPolicy struct{ st *store.Store }

func (p userPolicy) IsDeletedOrBlocked(ctx context.Context, user string) (bool, error) {
	u, err := p.st.GetUser(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		// Only a real deletion counts: a Redis that lost its data must not
		// take every student's server down.
		return p.st.WasDeleted(ctx, user)
	}
	if err != nil {
		return false, err
	}
	return u.Blocked, nil
}

// OnCull reports every finished cull run; set before Start.
func (j *Jobs) OnCull(f func(n int)) {
	j.mu.Lock()
	j.onCull = f
	j.mu.Unlock()
}

// OnArchive reports every finished archive run.
func (j *Jobs) OnArchive(f func(m archive.Manifest)) {
	j.mu.Lock()
	j.onArchive = f
	j.mu.Unlock()
}

// Archiver is the archiver behind the archive endpoints.
func (j *Jobs) Archiver() *archive.Archiver { return j.archiver }

// Start runs the schedule until ctx ends.
func (j *Jobs) Start(ctx context.Context) { j.sched.Start(ctx) }

// Stop waits for running jobs until ctx ends.
func (j *Jobs) Stop(ctx context.Context) error { return j.sched.Stop(ctx) }
