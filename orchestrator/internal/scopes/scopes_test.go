package scopes

import (
	"slices"
	"strings"
	"testing"
)

func TestExpandHierarchy(t *testing.T) {
	s := Expand([]string{"admin:users"}, Owner{Name: "root"})
	for _, want := range []string{"users", "read:users", "read:users:name", "list:users", "users:activity",
		"read:users:activity", "delete:users", "admin:auth_state", "read:roles:users"} {
		if f, ok := s[want]; !ok || f != nil {
			t.Errorf("admin:users does not imply unfiltered %s: %v", want, s.Strings())
		}
	}
	if _, ok := s["servers"]; ok {
		t.Errorf("admin:users implies servers, JupyterHub's does not")
	}
}

func TestExpandSelfAndFilters(t *testing.T) {
	s := Expand([]string{"self"}, Owner{Name: "alice"})
	got := s.Strings()
	for _, want := range []string{"servers!user=alice", "read:tokens!user=alice", "access:servers!user=alice", "read:users:name!user=alice"} {
		if !slices.Contains(got, want) {
			t.Errorf("self lacks %s: %v", want, got)
		}
	}
	if slices.ContainsFunc(got, func(x string) bool { return strings.HasPrefix(x, "users!") || strings.HasPrefix(x, "admin") }) {
		t.Errorf("self grants more than own resources: %v", got)
	}
	if n := len(Expand([]string{"self"}, Owner{Name: "culler", Service: true})); n != 0 {
		t.Errorf("self of a service expanded to %d scopes, want none", n)
	}
	srv := Expand(Roles["server"], Owner{Name: "bob"}).Strings()
	if !slices.Equal(srv, []string{"access:servers!server=bob/", "read:users:activity!user=bob", "users:activity!user=bob"}) {
		t.Errorf("server role = %v", srv)
	}
	if n := len(Expand([]string{"read:userz", "servers!nope=x"}, Owner{Name: "a"})); n != 0 {
		t.Errorf("unknown scope or filter kind expanded to %d scopes", n)
	}
}

func TestIntersect(t *testing.T) {
	alice := Owner{Name: "alice"}
	owner := Expand([]string{"self"}, alice)
	tok := Expand([]string{"read:servers", "admin:users", "access:servers!server=alice/"}, alice)
	got := Intersect(tok, owner, nil).Strings()
	want := []string{"access:servers!server=alice/", "read:servers!user=alice", "read:users!user=alice",
		"read:users:activity!user=alice", "read:users:groups!user=alice", "read:users:name!user=alice", "users:activity!user=alice"}
	if !slices.Equal(got, want) {
		t.Errorf("intersection = %v\nwant %v", got, want)
	}
	// A group filter meets a user filter only through membership.
	ga := Expand([]string{"read:users!group=course"}, Owner{Name: "ta"})
	gb := Expand([]string{"read:users!user=carol"}, Owner{Name: "ta"})
	if n := len(Intersect(ga, gb, nil)); n != 0 {
		t.Errorf("group ∩ user without membership = %d scopes", n)
	}
	in := func(u string) []string { return map[string][]string{"carol": {"course"}}[u] }
	if !Allows(Intersect(ga, gb, in), "read:users", Target{User: "carol"}) {
		t.Errorf("group ∩ user with carol in course does not allow carol")
	}
}

func TestAllowsFilters(t *testing.T) {
	s := Expand([]string{"servers!user=a", "delete:servers!server=b/", "read:users!group=g", "groups!group=g"}, Owner{})
	cases := []struct {
		need string
		t    Target
		want bool
	}{
		{"servers", Target{User: "a", Server: "a/"}, true},
		{"servers", Target{User: "b", Server: "b/"}, false},
		{"delete:servers", Target{Server: "b/"}, true},
		{"delete:servers", Target{Server: "b/x"}, false},
		{"read:users", Target{User: "m", Groups: []string{"g"}}, true},
		{"read:users", Target{User: "m", Groups: []string{"h"}}, false},
		{"groups", Target{Group: "g"}, true},
		{"groups", Target{Group: "h"}, false},
		{"read:users", Target{}, false},
		{"admin:users", Target{User: "a"}, false},
	}
	for _, c := range cases {
		if got := Allows(s, c.need, c.t); got != c.want {
			t.Errorf("Allows(%s, %+v) = %v, want %v", c.need, c.t, got, c.want)
		}
	}
}

// TestRouteTable checks every route against each kind of holder, on the
// resource "alice" (a user, her server) or "course" (a group).
func TestRouteTable(t *testing.T) {
	alice := Owner{Name: "alice"}
	holders := map[string]Set{
		"admin":  Expand(Roles["admin"], Owner{Name: "root"}),
		"alice":  Expand(Roles["user"], alice),
		"bob":    Expand(Roles["user"], Owner{Name: "bob"}),
		"culler": Expand([]string{"list:users", "read:users:activity", "read:servers", "delete:servers", "admin:users"}, Owner{Name: "culler", Service: true}),
		// alice's token made with only read:tokens.
		"alice-ro": Intersect(Expand([]string{"read:tokens"}, alice), Expand(Roles["user"], alice), nil),
		"server":   Expand(Roles["server"], alice),
		"none":     Set{},
	}
	all := []string{"admin", "alice", "bob", "culler", "alice-ro", "server", "none"}
	const adm = "admin"
	want := map[string][]string{
		"GET ":                              all,
		"GET /":                             all,
		"GET /info":                         {adm},
		"GET /user":                         all,
		"GET /users":                        {adm, "culler"},
		"POST /users":                       {adm, "culler"},
		"GET /users/:name":                  {adm, "alice", "culler", "server"},
		"PATCH /users/:name":                {adm, "culler"},
		"DELETE /users/:name":               {adm, "culler"},
		"POST /users/:name":                 {adm, "culler"},
		"POST /users/:name/activity":        {adm, "alice", "culler", "server"},
		"POST /users/:name/server":          {adm, "alice"},
		"DELETE /users/:name/server":        {adm, "alice", "culler"},
		"GET /users/:name/server/progress":  {adm, "alice", "culler"},
		"GET /users/:name/tokens":           {adm, "alice", "alice-ro"},
		"POST /users/:name/tokens":          {adm, "alice"},
		"GET /users/:name/tokens/:id":       {adm, "alice", "alice-ro"},
		"DELETE /users/:name/tokens/:id":    {adm, "alice"},
		"GET /users/:name/workspace.tar.gz": {adm, "alice", "server"},
		"GET /groups":                       {adm},
		"POST /groups":                      {adm},
		"GET /groups/:name":                 {adm},
		"POST /groups/:name":                {adm},
		"DELETE /groups/:name":              {adm},
		"POST /groups/:name/users":          {adm},
		"DELETE /groups/:name/users":        {adm},
		"GET /events":                       {adm},
		"GET /image":                        {adm},
		"PUT /image":                        {adm},
		"POST /image/restart-outdated":      {adm},
		"GET /gitpuller-link":               {adm},
		"GET /capacity":                     {adm},
		"GET /line":                         {adm},
		"PUT /line":                         {adm},
		"POST /cull":                        {adm},
		"POST /reconcile":                   {adm},
		"GET /archives":                     {adm},
		"POST /archives":                    {adm},
		"GET /archives/:run/:file":          {adm},
		"POST /archives/:run/:user/restore": {adm},
		"GET /announcement":                 all,
		"PUT /announcement":                 {adm},
		"DELETE /announcement":              {adm},
		"GET /prestarts":                    {adm},
		"GET /prestarts/:name":              {adm},
		"PUT /prestarts/:name":              {adm},
		"DELETE /prestarts/:name":           {adm},
		"POST /groups/:name/servers":        {adm},
		"DELETE /groups/:name/servers":      {adm},
	}
	if len(want) != len(RouteTable) {
		t.Errorf("table has %d routes, test expects %d", len(RouteTable), len(want))
	}
	for _, r := range RouteTable {
		key := r.Method + " " + r.Path
		allowed, ok := want[key]
		if !ok {
			t.Errorf("route %s has no expectation", key)
			continue
		}
		name := "alice"
		if r.Resource == GroupRes {
			name = "course"
		}
		for _, h := range all {
			got := r.Permits(holders[h], true, name, nil)
			if exp := slices.Contains(allowed, h); got != exp {
				t.Errorf("%s as %s = %v, want %v", key, h, got, exp)
			}
		}
		if r.Permits(holders["admin"], false, name, nil) != (len(r.Needs) == 0 && !r.Authenticated) {
			t.Errorf("%s without authentication: wrong answer", key)
		}
	}
	if _, ok := Lookup("POST", "/users/:name/activity"); !ok {
		t.Errorf("Lookup misses a listed route")
	}
}

func TestForToken(t *testing.T) {
	bob := Owner{Name: "bob"}
	full := ForToken(Roles["user"], bob, nil, nil)
	if !Allows(full, "tokens", Target{User: "bob"}) {
		t.Errorf("unscoped token lacks its owner's tokens scope")
	}
	if inh := ForToken(Roles["user"], bob, []string{"inherit"}, nil); !slices.Equal(inh.Strings(), full.Strings()) {
		t.Errorf("inherit = %v, want owner's %v", inh.Strings(), full.Strings())
	}
	// A token asking for more than its owner gets only the overlap.
	got := ForToken(Roles["user"], bob, []string{"admin:users", "read:tokens"}, nil)
	if Allows(got, "admin:users", Target{User: "bob"}) || Allows(got, "read:users", Target{User: "carol"}) ||
		!Allows(got, "read:tokens", Target{User: "bob"}) || Allows(got, "tokens", Target{User: "bob"}) {
		t.Errorf("narrowed token = %v", got.Strings())
	}
}
