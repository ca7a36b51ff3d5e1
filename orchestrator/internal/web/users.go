package web

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// userQuery selects a page of users: the API and the dashboard share it so
// both stay fast with thousands of users (one pipelined read of users,
// servers and activity, then filtering and sorting in memory).
type userQuery struct {
	State  string // "", active, ready, inactive, outdated, blocked, failed
	Filter string // case-insensitive substring of the name
	Sort   string // name, -name, last_activity, -last_activity, started, -started, state
	Offset int
	Limit  int
}

var userSorts = map[string]bool{"name": true, "-name": true, "last_activity": true, "-last_activity": true,
	"started": true, "-started": true, "state": true, "-state": true, "disk": true, "-disk": true}

var userStates = map[string]bool{"": true, "active": true, "ready": true, "inactive": true,
	"outdated": true, "blocked": true, "failed": true}

// parseUserQuery reads state, name_filter (or q/search), sort, offset and
// limit, with messages that say what is accepted.
func parseUserQuery(c echo.Context, defLimit, maxLimit int) (userQuery, error) {
	q := userQuery{State: c.QueryParam("state"), Sort: c.QueryParam("sort")}
	for _, k := range []string{"name_filter", "q", "search"} {
		if v := strings.TrimSpace(c.QueryParam(k)); v != "" {
			q.Filter = strings.ToLower(v)
			break
		}
	}
	if !userStates[q.State] {
		return q, apiError(400, fmt.Sprintf("state %q is not one of active, ready, inactive, outdated, blocked, failed", q.State))
	}
	if q.Sort == "" {
		q.Sort = "name"
	}
	if !userSorts[q.Sort] {
		return q, apiError(400, fmt.Sprintf("sort %q is not one of name, last_activity, started, state, disk (prefix - to reverse)", q.Sort))
	}
	var err error
	if q.Offset, err = intParam(c, "offset", 0); err != nil {
		return q, err
	}
	if q.Limit, err = intParam(c, "limit", defLimit); err != nil {
		return q, err
	}
	if q.Limit == 0 || q.Limit > maxLimit {
		q.Limit = maxLimit
	}
	return q, nil
}

// userCounts summarise all users, whatever the filter.
type userCounts struct {
	Users, Running, Starting, Failed, Blocked, Outdated int
}

// snapshot is every user joined with its server and activity.
type snapshot struct {
	Users  []userModel
	Counts userCounts
	Image  string // the current notebook image
}

// loadUsers reads users, servers, activity, groups and the current image:
// a few round trips to Redis whatever the number of users.
func (s *Server) loadUsers(ctx context.Context) (snapshot, error) {
	users, err := s.d.Store.ListUsers(ctx)
	if err != nil {
		return snapshot{}, err
	}
	servers, err := s.d.Store.ListServers(ctx)
	if err != nil {
		return snapshot{}, err
	}
	act, err := s.d.Store.Activity(ctx)
	if err != nil {
		return snapshot{}, err
	}
	groups, err := s.d.Store.Groups(ctx)
	if err != nil {
		return snapshot{}, err
	}
	memberOf := groupsOf(groups)
	usage, err := s.d.Store.WorkspaceUsage(ctx)
	if err != nil {
		return snapshot{}, err
	}
	image := s.currentImage(ctx)
	byUser := make(map[string]store.Server, len(servers))
	for _, sv := range servers {
		byUser[sv.User] = sv
	}
	snap := snapshot{Users: make([]userModel, 0, len(users)), Image: image}
	for _, u := range users {
		m := makeUserModel(u, byUser[u.Name], act[u.Name], image)
		if gs := memberOf[u.Name]; gs != nil {
			m.Groups = gs
		}
		if us, ok := usage[u.Name]; ok {
			m.DiskBytes = &us.Bytes
		}
		snap.Users = append(snap.Users, m)
		c := &snap.Counts
		c.Users++
		switch m.State {
		case store.StateRunning:
			c.Running++
		case store.StateStarting:
			c.Starting++
		case store.StateFailed:
			c.Failed++
		}
		if m.Blocked {
			c.Blocked++
		}
		if m.Outdated {
			c.Outdated++
		}
	}
	s.running.Store(int64(snap.Counts.Running))
	return snap, nil
}

// userModels joins user records with server records, sorted by name.
func (s *Server) userModels(ctx context.Context) ([]userModel, error) {
	snap, err := s.loadUsers(ctx)
	return snap.Users, err
}

func isActive(state string) bool {
	return state == store.StateRunning || state == store.StateStarting || state == store.StateStopping
}

// selectUsers filters, sorts and pages; it returns the page and the number
// of users that matched.
func selectUsers(all []userModel, q userQuery) ([]userModel, int) {
	out := make([]userModel, 0, min(len(all), q.Limit))
	matched := all[:0:0]
	for _, u := range all {
		if q.Filter != "" && !strings.Contains(u.Name, q.Filter) {
			continue
		}
		keep := true
		switch q.State {
		case "active":
			keep = isActive(u.State)
		case "ready":
			keep = u.State == store.StateRunning
		case "inactive":
			keep = !isActive(u.State)
		case "outdated":
			keep = u.Outdated
		case "blocked":
			keep = u.Blocked
		case "failed":
			keep = u.State == store.StateFailed
		}
		if keep {
			matched = append(matched, u)
		}
	}
	key := strings.TrimPrefix(q.Sort, "-")
	desc := strings.HasPrefix(q.Sort, "-")
	less := func(a, b *userModel) int {
		switch key {
		case "last_activity":
			return cmpTime(a.LastActivity, b.LastActivity)
		case "started":
			return cmpTime(a.Started, b.Started)
		case "state":
			return strings.Compare(a.State, b.State)
		case "disk":
			return cmpInt(a.DiskBytes, b.DiskBytes)
		}
		return 0
	}
	sort.SliceStable(matched, func(i, j int) bool {
		c := less(&matched[i], &matched[j])
		if c == 0 {
			c = strings.Compare(matched[i].Name, matched[j].Name)
		}
		if desc {
			return c > 0
		}
		return c < 0
	})
	total := len(matched)
	lo := min(q.Offset, total)
	hi := min(lo+q.Limit, total)
	out = append(out, matched[lo:hi]...)
	return out, total
}

func cmpInt(a, b *int64) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return cmp.Compare(*a, *b)
}

func cmpTime(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Compare(*b)
}
