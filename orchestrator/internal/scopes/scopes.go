// Package scopes is JupyterHub's permission model as swarmhub needs it:
// scope strings with filters, their expansion, roles, the intersection of a
// token's scopes with its owner's, and the scope each /hub/api route needs.
//
// It follows JupyterHub 5's REST API and its scope_definitions: a held
// scope implies its subscopes (admin:users ⊃ users ⊃ read:users ⊃
// read:users:name, …); "self" resolves to the user's own resources filtered
// by !user=NAME; "inherit" (a token's default) means all of its owner's
// scopes. A filter (!user=NAME, !server=NAME/SERVER, !group=NAME) narrows a
// scope to those resources; a group filter covers the group's members and
// their servers.
package scopes

import (
	"slices"
	"sort"
	"strings"
)

// subscopes is JupyterHub's scope_definitions hierarchy: each scope implies
// the listed ones (transitively). Scopes without subscopes are listed with
// nil so that Known can tell a valid scope from a typo.
var subscopes = map[string][]string{
	"(no_scope)":          nil,
	"self":                nil,
	"inherit":             nil,
	"admin-ui":            nil,
	"admin:users":         {"admin:auth_state", "users", "read:roles:users", "delete:users"},
	"admin:auth_state":    nil,
	"users":               {"read:users", "list:users", "users:activity"},
	"delete:users":        nil,
	"list:users":          {"read:users:name"},
	"read:users":          {"read:users:name", "read:users:groups", "read:users:activity"},
	"read:users:name":     nil,
	"read:users:groups":   nil,
	"read:users:activity": nil,
	"read:roles":          {"read:roles:users", "read:roles:services", "read:roles:groups"},
	"read:roles:users":    nil,
	"read:roles:services": nil,
	"read:roles:groups":   nil,
	"users:activity":      {"read:users:activity"},
	"admin:servers":       {"admin:server_state", "servers"},
	"admin:server_state":  nil,
	"servers":             {"read:servers", "delete:servers"},
	"read:servers":        {"read:users:name"},
	"delete:servers":      nil,
	"tokens":              {"read:tokens"},
	"read:tokens":         nil,
	"admin:groups":        {"groups", "read:roles:groups", "delete:groups"},
	"groups":              {"read:groups", "list:groups"},
	"list:groups":         {"read:groups:name"},
	"read:groups":         {"read:groups:name"},
	"read:groups:name":    nil,
	"delete:groups":       nil,
	"list:services":       {"read:services:name"},
	"read:services":       {"read:services:name"},
	"read:services:name":  nil,
	"read:hub":            nil,
	"access:servers":      nil,
	"access:services":     nil,
	"proxy":               nil,
	"shutdown":            nil,
	"read:metrics":        nil,
}

// selfScopes is what "self" grants a user, each filtered to !user=NAME
// (JupyterHub's _expand_self_scope).
var selfScopes = []string{
	"access:servers", "read:users", "read:users:name", "read:users:groups",
	"users:activity", "read:users:activity", "servers", "delete:servers",
	"read:servers", "tokens", "read:tokens",
}

// Roles are JupyterHub's default roles. swarmhub's people are "user" or
// "admin"; a single-user server's own API token has "server"; a token made
// without scopes has "token". A service's role is its configured scope list.
var Roles = map[string][]string{
	"user": {"self"},
	"admin": {
		"admin-ui", "admin:users", "admin:servers", "tokens", "admin:groups",
		"list:services", "read:services", "read:hub", "proxy", "shutdown",
		"access:services", "access:servers", "read:roles", "read:metrics",
	},
	"server": {"users:activity!user", "access:servers!server"},
	"token":  {"inherit"},
}

// Known reports whether the base of scope (before any "!") is a scope
// JupyterHub defines.
func Known(scope string) bool {
	base, _, _ := strings.Cut(scope, "!")
	_, ok := subscopes[base]
	return ok
}

// Filter kinds as they appear after "!".
const (
	User   = "user"
	Server = "server"
	Group  = "group"
)

// Set is an expanded set of scopes: for each scope its filters, or nil for
// the unfiltered scope. Filters map a kind (User, Server, Group) to names;
// servers are named "USER/SERVERNAME" ("USER/" for the default server).
type Set map[string]map[string]map[string]bool

// Owner is the entity whose scopes are expanded: the user (or service)
// name, needed to resolve "self" and the bare "!user"/"!server" filters of
// the server role.
type Owner struct {
	Name    string
	Service bool // services resolve "self" to nothing
}

// Expand resolves raw scopes (as in a role or a token) into a Set: subscopes
// are added with the same filter, "self" becomes the owner's own scopes,
// "!user" and "!server" without a value take the owner's name. Unknown
// scopes and "inherit" (resolved by Intersect's caller) are dropped.
func Expand(raw []string, owner Owner) Set {
	out := Set{}
	for _, s := range raw {
		base, filter, _ := strings.Cut(s, "!")
		if base == "self" {
			if !owner.Service && owner.Name != "" {
				for _, ss := range selfScopes {
					out.addTree(ss, User, owner.Name)
				}
			}
			continue
		}
		if _, ok := subscopes[base]; !ok || base == "inherit" {
			continue
		}
		if filter == "" {
			out.addTree(base, "", "")
			continue
		}
		kind, val, _ := strings.Cut(filter, "=")
		if val == "" {
			switch kind {
			case User:
				val = owner.Name
			case Server:
				val = owner.Name + "/"
			}
		}
		if val == "" || (kind != User && kind != Server && kind != Group) {
			continue
		}
		out.addTree(base, kind, val)
	}
	return out
}

// addTree adds scope and its subscopes with one filter (kind "" for none).
func (s Set) addTree(scope, kind, val string) {
	s.add(scope, kind, val)
	for _, sub := range subscopes[scope] {
		s.addTree(sub, kind, val)
	}
}

func (s Set) add(scope, kind, val string) {
	f, ok := s[scope]
	if ok && f == nil {
		return // already unfiltered
	}
	if kind == "" {
		s[scope] = nil
		return
	}
	if f == nil {
		f = map[string]map[string]bool{}
		s[scope] = f
	}
	if f[kind] == nil {
		f[kind] = map[string]bool{}
	}
	f[kind][val] = true
}

// Strings lists the set as scope strings, sorted, the way JupyterHub
// reports them in the "scopes" of GET /hub/api/user.
func (s Set) Strings() []string {
	var out []string
	for scope, f := range s {
		if f == nil {
			out = append(out, scope)
			continue
		}
		for kind, vals := range f {
			for v := range vals {
				out = append(out, scope+"!"+kind+"="+v)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Intersect is the scopes a token holding token may use when its owner
// holds owner (both expanded): a scope survives only if both hold it, with
// the narrower filter. A server filter survives against its user's filter.
// groupsOf, if not nil, resolves a user's groups so that a user or server
// filter survives against a group filter of a group the user is in;
// without it such a pair is dropped, as JupyterHub does without a database.
func Intersect(token, owner Set, groupsOf func(user string) []string) Set {
	out := Set{}
	for scope, fa := range token {
		fb, ok := owner[scope]
		if !ok {
			continue
		}
		switch {
		case fa == nil && fb == nil:
			out[scope] = nil
		case fa == nil:
			out.copyFilters(scope, fb)
		case fb == nil:
			out.copyFilters(scope, fa)
		default:
			for _, pair := range [][2]map[string]map[string]bool{{fa, fb}, {fb, fa}} {
				a, b := pair[0], pair[1]
				for kind, vals := range a {
					for v := range vals {
						if covers(b, kind, v, groupsOf) {
							out.add(scope, kind, v)
						}
					}
				}
			}
		}
	}
	return out
}

func (s Set) copyFilters(scope string, f map[string]map[string]bool) {
	for kind, vals := range f {
		for v := range vals {
			s.add(scope, kind, v)
		}
	}
}

// covers says whether filters f include the resource kind=v entirely.
func covers(f map[string]map[string]bool, kind, v string, groupsOf func(string) []string) bool {
	if f[kind][v] {
		return true
	}
	user := ""
	switch kind {
	case User:
		user = v
	case Server:
		user, _, _ = strings.Cut(v, "/")
		if f[User][user] {
			return true
		}
	default:
		return false
	}
	if groupsOf == nil || len(f[Group]) == 0 {
		return false
	}
	return slices.ContainsFunc(groupsOf(user), func(g string) bool { return f[Group][g] })
}

// Target is the resource a request acts on. Server is "USER/SERVERNAME"
// ("USER/" for the default server); Groups are User's groups, so that a
// !group filter covers its members. Empty fields do not apply.
type Target struct {
	User   string
	Server string
	Group  string
	Groups []string
}

// Allows reports whether held grants need on target. An unfiltered scope
// grants every target; a filtered one grants a target it names: !user=U
// covers U and U's servers, !server=U/S that server, !group=G the group G
// and its members (Target.Groups) with their servers.
func Allows(held Set, need string, t Target) bool {
	f, ok := held[need]
	if !ok {
		return false
	}
	if f == nil {
		return true
	}
	if t.Group != "" && f[Group][t.Group] {
		return true
	}
	if t.Server != "" && f[Server][t.Server] {
		return true
	}
	user := t.User
	if user == "" && t.Server != "" {
		user, _, _ = strings.Cut(t.Server, "/")
	}
	if user == "" {
		return false
	}
	if f[User][user] {
		return true
	}
	return slices.ContainsFunc(t.Groups, func(g string) bool { return f[Group][g] })
}

// AllowsAny is Allows for a handler that accepts any one of needs.
func AllowsAny(held Set, needs []string, t Target) bool {
	return slices.ContainsFunc(needs, func(n string) bool { return Allows(held, n, t) })
}

// ForToken is what a request with a token may do: the owner's expanded
// role scopes if the token has no recorded scopes (nil) or "inherit",
// otherwise the token's scopes intersected with the owner's.
func ForToken(ownerRaw []string, owner Owner, tokenRaw []string, groupsOf func(string) []string) Set {
	held := Expand(ownerRaw, owner)
	if tokenRaw == nil || slices.Contains(tokenRaw, "inherit") {
		return held
	}
	return Intersect(Expand(tokenRaw, owner), held, groupsOf)
}
