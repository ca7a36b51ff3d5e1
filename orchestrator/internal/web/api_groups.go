package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// groupModel is JupyterHub's group model; swarmhub keeps no group
// properties or roles, so those are always empty.
type groupModel struct {
	Kind       string         `json:"kind"`
	Name       string         `json:"name"`
	Users      []string       `json:"users"`
	Properties map[string]any `json:"properties"`
	Roles      []string       `json:"roles"`
}

func makeGroupModel(name string, users []string) groupModel {
	if users == nil {
		users = []string{}
	}
	return groupModel{Kind: "group", Name: name, Users: users, Properties: map[string]any{}, Roles: []string{}}
}

// groupsOf inverts the group table: each user's groups, sorted.
func groupsOf(groups map[string][]string) map[string][]string {
	out := map[string][]string{}
	for g, users := range groups {
		for _, u := range users {
			out[u] = append(out[u], g)
		}
	}
	for _, gs := range out {
		sort.Strings(gs)
	}
	return out
}

func groupParam(c echo.Context) (string, error) {
	g := c.Param("name")
	if g == "" || strings.ContainsAny(g, "/\x00") {
		return "", apiError(http.StatusBadRequest, "a group name must be non-empty and contain no /")
	}
	return g, nil
}

// apiListGroups is GET /groups, sorted by name, with offset and limit.
func (s *Server) apiListGroups(c echo.Context) error {
	groups, err := s.d.Store.Groups(c.Request().Context())
	if err != nil {
		return err
	}
	offset, err := intParam(c, "offset", 0)
	if err != nil {
		return err
	}
	limit, err := intParam(c, "limit", 200)
	if err != nil {
		return err
	}
	if limit == 0 || limit > 1000 {
		limit = 1000
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	page := []groupModel{}
	for i := offset; i < len(names) && i < offset+limit; i++ {
		page = append(page, makeGroupModel(names[i], groups[names[i]]))
	}
	return s.writePage(c, page, offset, limit, len(names))
}

func (s *Server) writeGroup(c echo.Context, status int, name string) error {
	groups, err := s.d.Store.Groups(c.Request().Context())
	if err != nil {
		return err
	}
	users, ok := groups[name]
	if !ok {
		return apiError(http.StatusNotFound, fmt.Sprintf("no such group: %q", name))
	}
	return c.JSON(status, makeGroupModel(name, users))
}

func (s *Server) apiGetGroup(c echo.Context) error {
	name, err := groupParam(c)
	if err != nil {
		return err
	}
	return s.writeGroup(c, http.StatusOK, name)
}

// groupUsers reads {"users": [...]} and canonicalises the names; every
// user must exist (JupyterHub answers 400 for unknown users).
func (s *Server) groupUsers(c echo.Context) ([]string, error) {
	var body struct {
		Users []string `json:"users"`
	}
	if err := bindJSON(c, &body); err != nil {
		return nil, err
	}
	return s.knownUsers(c.Request().Context(), body.Users)
}

func (s *Server) knownUsers(ctx context.Context, raw []string) ([]string, error) {
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		n, err := s.d.Namer.Canonical(r)
		if err != nil {
			return nil, apiError(http.StatusBadRequest, fmt.Sprintf("%q: %v", r, err))
		}
		if _, err := s.d.Store.GetUser(ctx, n); errors.Is(err, store.ErrNotFound) {
			return nil, apiError(http.StatusBadRequest, fmt.Sprintf("no such user: %q", n))
		} else if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// apiCreateGroup is POST /groups/NAME, optionally with {"users": [...]}.
func (s *Server) apiCreateGroup(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := groupParam(c)
	if err != nil {
		return err
	}
	users, err := s.groupUsers(c)
	if err != nil {
		return err
	}
	if err := s.d.Store.CreateGroup(ctx, name); errors.Is(err, store.ErrGroupExists) {
		return apiError(http.StatusConflict, fmt.Sprintf("group %q already exists", name))
	} else if err != nil {
		return err
	}
	if err := s.d.Store.AddGroupMembers(ctx, name, users); err != nil {
		return err
	}
	id, _ := identityOf(c)
	s.event(ctx, "group-created", "", id.Actor(), fmt.Sprintf("group %s created with %d users", name, len(users)))
	return s.writeGroup(c, http.StatusCreated, name)
}

func (s *Server) apiDeleteGroup(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := groupParam(c)
	if err != nil {
		return err
	}
	if err := s.d.Store.DeleteGroup(ctx, name); errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, fmt.Sprintf("no such group: %q", name))
	} else if err != nil {
		return err
	}
	id, _ := identityOf(c)
	s.event(ctx, "group-deleted", "", id.Actor(), "group "+name+" deleted")
	return c.NoContent(http.StatusNoContent)
}

// apiGroupMembers is POST (add) and DELETE (remove) /groups/NAME/users.
func (s *Server) apiGroupMembers(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := groupParam(c)
	if err != nil {
		return err
	}
	users, err := s.groupUsers(c)
	if err != nil {
		return err
	}
	change := s.d.Store.AddGroupMembers
	if c.Request().Method == http.MethodDelete {
		change = s.d.Store.RemoveGroupMembers
	}
	if err := change(ctx, name, users); errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, fmt.Sprintf("no such group: %q", name))
	} else if err != nil {
		return err
	}
	return s.writeGroup(c, http.StatusOK, name)
}

// leaveGroups takes a deleted user out of every group, so a name reused
// later does not inherit the old memberships.
func (s *Server) leaveGroups(ctx context.Context, user string) error {
	groups, err := s.d.Store.Groups(ctx)
	if err != nil {
		return err
	}
	for _, g := range groupsOf(groups)[user] {
		if err := s.d.Store.RemoveGroupMembers(ctx, g, []string{user}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// instructor says whether user starts as an instructor: an admin, a user
// of notebook.instructor_users, or a member of the instructors group
// (which admins can change through the API and the dashboard).
func (s *Server) instructor(ctx context.Context, u store.User) (bool, error) {
	if u.Admin || s.instr[u.Name] {
		return true, nil
	}
	return s.d.Store.InGroup(ctx, store.InstructorsGroup, u.Name)
}
