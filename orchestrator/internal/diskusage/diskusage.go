// Package diskusage measures every workspace in the background (never on a
// request): the space its files take on disk, stored in Redis for the
// student's home page, the dashboard and the metrics, with an event when a
// workspace goes over the course's soft limit or back under it.
package diskusage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// Store keeps the measurements (store.Store satisfies it).
type Store interface {
	WorkspaceUsage(ctx context.Context) (map[string]store.Usage, error)
	PutUsage(ctx context.Context, batch map[string]store.Usage) error
	DeleteUsage(ctx context.Context, users ...string) error
}

// EventSink records a workspace crossing the soft limit.
type EventSink interface {
	AddEvent(ctx context.Context, kind, user, message string)
}

// Options configures a Meter.
type Options struct {
	// Root is the storage root; workspaces are Root/users/NAME.
	Root string
	// SoftLimit > 0 raises an event when a workspace grows past it.
	SoftLimit int64
	// Valid says whether a directory name under users/ is a workspace.
	Valid func(name string) bool
	// Concurrency bounds workspaces measured at once (default 2: the
	// storage serves students meanwhile).
	Concurrency int
	Events      EventSink
	Clock       func() time.Time
	Logger      *slog.Logger
}

// Meter measures the workspaces.
type Meter struct {
	st  Store
	o   Options
	log *slog.Logger
}

// New returns a Meter.
func New(st Store, o Options) *Meter {
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Valid == nil {
		o.Valid = func(string) bool { return true }
	}
	return &Meter{st: st, o: o, log: o.Logger}
}

// Measure returns the bytes dir's files take on disk (allocated blocks, so
// a sparse file counts what it really uses; a file with several links
// once) and how many entries it holds. Symbolic links are not followed.
func Measure(ctx context.Context, dir string) (bytes, files int64, err error) {
	seen := map[[2]uint64]bool{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		files++
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			bytes += info.Size()
			return nil
		}
		if st.Nlink > 1 && !info.IsDir() {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		bytes += st.Blocks * 512
		return nil
	})
	return bytes, files, err
}

// Report says what one run measured.
type Report struct {
	Workspaces int               `json:"workspaces"`
	Bytes      int64             `json:"bytes"`
	OverLimit  []string          `json:"over_soft_limit"`
	Errors     map[string]string `json:"errors,omitempty"`
}

// Run measures every workspace, stores the results, forgets workspaces that
// are gone, and reports crossings of the soft limit.
func (m *Meter) Run(ctx context.Context) (Report, error) {
	rep := Report{OverLimit: []string{}, Errors: map[string]string{}}
	ents, err := os.ReadDir(filepath.Join(m.o.Root, "users"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("list workspaces: %w", err)
	}
	before, err := m.st.WorkspaceUsage(ctx)
	if err != nil {
		return rep, err
	}
	var users []string
	for _, e := range ents {
		if e.IsDir() && m.o.Valid(e.Name()) {
			users = append(users, e.Name())
		}
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, m.o.Concurrency)
		next = make(map[string]store.Usage, len(users))
	)
	for _, u := range users {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return rep, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			b, f, err := Measure(ctx, filepath.Join(m.o.Root, "users", u))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Errors[u] = err.Error()
				return
			}
			next[u] = store.Usage{Bytes: b, Files: f, Measured: m.o.Clock().UTC()}
		})
	}
	wg.Wait()
	if err := m.st.PutUsage(ctx, next); err != nil {
		return rep, err
	}
	var gone []string
	for u := range before {
		if _, ok := next[u]; !ok && rep.Errors[u] == "" {
			gone = append(gone, u)
		}
	}
	if err := m.st.DeleteUsage(ctx, gone...); err != nil {
		return rep, err
	}
	for u, now := range next {
		rep.Workspaces++
		rep.Bytes += now.Bytes
		if m.o.SoftLimit <= 0 {
			continue
		}
		was, measured := before[u]
		over, wasOver := now.Bytes > m.o.SoftLimit, measured && was.Bytes > m.o.SoftLimit
		if over {
			rep.OverLimit = append(rep.OverLimit, u)
		}
		switch {
		case over && !wasOver:
			m.event(ctx, u, fmt.Sprintf("workspace uses %s, over the soft limit of %s", human(now.Bytes), human(m.o.SoftLimit)))
		case !over && wasOver:
			m.event(ctx, u, fmt.Sprintf("workspace back under the soft limit: %s of %s", human(now.Bytes), human(m.o.SoftLimit)))
		}
	}
	sort.Strings(rep.OverLimit)
	for u, e := range rep.Errors {
		m.log.Warn("measuring a workspace", "user", u, "err", e)
	}
	return rep, nil
}

func (m *Meter) event(ctx context.Context, user, msg string) {
	m.log.Info("disk usage", "user", user, "msg", msg)
	if m.o.Events != nil {
		m.o.Events.AddEvent(ctx, "disk-usage", user, msg)
	}
}

// human writes bytes in binary units, as the configuration reads them.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Snapshot keeps the latest measurements in memory for readers that must
// not call Redis (a metrics scrape); Refresh reads them again.
type Snapshot struct {
	st interface {
		WorkspaceUsage(ctx context.Context) (map[string]store.Usage, error)
	}
	mu    sync.RWMutex
	bytes map[string]int64
}

// NewSnapshot returns an empty Snapshot over st.
func NewSnapshot(st interface {
	WorkspaceUsage(ctx context.Context) (map[string]store.Usage, error)
}) *Snapshot {
	return &Snapshot{st: st}
}

// Refresh reads every workspace's usage from the store.
func (s *Snapshot) Refresh(ctx context.Context) error {
	u, err := s.st.WorkspaceUsage(ctx)
	if err != nil {
		return err
	}
	b := make(map[string]int64, len(u))
	for k, v := range u {
		b[k] = v.Bytes
	}
	s.mu.Lock()
	s.bytes = b
	s.mu.Unlock()
	return nil
}

// Bytes is the last refreshed usage per workspace (do not modify).
func (s *Snapshot) Bytes() map[string]int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bytes
}

// Follow refreshes every interval until ctx ends (each replica runs it;
// the measuring itself runs on one).
func (s *Snapshot) Follow(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			log.Warn("reading disk usage", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
