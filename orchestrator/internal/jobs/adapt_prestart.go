package jobs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/prestart"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// members lists a group's members, or every allowed and unblocked user.
type members struct{ st *store.Store }

func (m members) Members(ctx context.Context, group string) ([]string, error) {
	if group == "" {
		users, err := m.st.ListUsers(ctx)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, u := range users {
			if (u.Allowed || u.Admin) && !u.Blocked {
				out = append(out, u.Name)
			}
		}
		return out, nil
	}
	groups, err := m.st.Groups(ctx)
	if err != nil {
		return nil, err
	}
	us, ok := groups[group]
	if !ok {
		return nil, fmt.Errorf("no such group: %q; create it (dashboard or POST /hub/api/groups/%s) or change the schedule", group, group)
	}
	return us, nil
}

// Hub is what the jobs need from the web layer, which exists only after
// the jobs are built: an admin's start, and the image new starts get.
type Hub interface {
	prestart.Starter
	CurrentImage(ctx context.Context) string
}

// lateStarter is the web layer's StartServer.
type lateStarter struct {
	mu sync.RWMutex
	s  Hub
}

func (l *lateStarter) hub() Hub {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s
}

var errNoStarter = errors.New("the orchestrator is still starting; servers cannot be started yet")

func (l *lateStarter) StartServer(ctx context.Context, user string) (bool, error) {
	s := l.hub()
	if s == nil {
		return false, errNoStarter
	}
	return s.StartServer(ctx, user)
}

// UseHub sets how pre-starts start a server (the web layer's StartServer,
// so a pre-start is exactly an admin's start) and which image is pre-pulled.
func (j *Jobs) UseHub(s Hub) {
	j.starter.mu.Lock()
	j.starter.s = s
	j.starter.mu.Unlock()
}

// Prestarts is the schedules' runner, for the API.
func (j *Jobs) Prestarts() *prestart.Runner { return j.prestart }

// CapacityReporter says how many more servers fit (capacity.Reader).
type CapacityReporter interface {
	Report(ctx context.Context) (capacity.Report, error)
}

// freeRoom is prestart's view of the capacity: without guarantees there is
// no limit.
type freeRoom struct{ r CapacityReporter }

func (f freeRoom) Free(ctx context.Context) (int, error) {
	rep, err := f.r.Report(ctx)
	if err != nil {
		return 0, err
	}
	if rep.Fit == capacity.Unlimited {
		return math.MaxInt, nil
	}
	return rep.Fit, nil
}
