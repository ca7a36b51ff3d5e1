package scopes

// Resource names which path parameter a route's scope is checked against.
type Resource int

const (
	// None: the scope is not filtered by a resource (or no scope is needed).
	None Resource = iota
	// UserRes: the :name parameter is a user; filters match that user.
	UserRes
	// ServerRes: the :name parameter's default server ("NAME/").
	ServerRes
	// GroupRes: the :name parameter is a group.
	GroupRes
)

// Route is one /hub/api route and what JupyterHub's handler requires:
// any one of Needs on the Resource. Needs empty: any valid token
// (Authenticated) or no token at all.
type Route struct {
	Method, Path  string
	Needs         []string
	Resource      Resource
	Authenticated bool
}

// RouteTable lists swarmhub's /hub/api routes (echo path syntax, relative
// to /hub/api) with the scopes JupyterHub 5's handlers check. Routes that
// JupyterHub lacks are swarmhub's admin operations; they need
// admin:servers, which only the admin role holds by default.
// The OAuth endpoints authenticate by cookie or client secret, not by scope,
// and are not listed.
var RouteTable = []Route{
	{Method: "GET", Path: ""},
	{Method: "GET", Path: "/"},
	{Method: "GET", Path: "/info", Needs: []string{"read:hub"}},
	{Method: "GET", Path: "/user", Authenticated: true},
	{Method: "GET", Path: "/users", Needs: []string{"list:users"}},
	{Method: "POST", Path: "/users", Needs: []string{"admin:users"}},
	{Method: "GET", Path: "/users/:name", Resource: UserRes, Needs: []string{
		"read:users", "read:users:name", "read:servers", "read:users:groups", "read:users:activity"}},
	{Method: "PATCH", Path: "/users/:name", Needs: []string{"admin:users"}, Resource: UserRes},
	{Method: "DELETE", Path: "/users/:name", Needs: []string{"delete:users"}, Resource: UserRes},
	{Method: "POST", Path: "/users/:name", Needs: []string{"admin:users"}, Resource: UserRes},
	{Method: "POST", Path: "/users/:name/activity", Needs: []string{"users:activity"}, Resource: UserRes},
	{Method: "POST", Path: "/users/:name/server", Needs: []string{"servers"}, Resource: ServerRes},
	{Method: "DELETE", Path: "/users/:name/server", Needs: []string{"delete:servers"}, Resource: ServerRes},
	{Method: "GET", Path: "/users/:name/server/progress", Needs: []string{"read:servers"}, Resource: ServerRes},
	{Method: "GET", Path: "/users/:name/tokens", Needs: []string{"read:tokens"}, Resource: UserRes},
	{Method: "POST", Path: "/users/:name/tokens", Needs: []string{"tokens"}, Resource: UserRes},
	{Method: "GET", Path: "/users/:name/tokens/:id", Needs: []string{"read:tokens"}, Resource: UserRes},
	{Method: "DELETE", Path: "/users/:name/tokens/:id", Needs: []string{"tokens"}, Resource: UserRes},
	{Method: "GET", Path: "/users/:name/workspace.tar.gz", Needs: []string{"access:servers"}, Resource: ServerRes},
	{Method: "GET", Path: "/groups", Needs: []string{"list:groups"}},
	{Method: "POST", Path: "/groups", Needs: []string{"admin:groups"}},
	{Method: "GET", Path: "/groups/:name", Needs: []string{"read:groups", "read:groups:name"}, Resource: GroupRes},
	{Method: "POST", Path: "/groups/:name", Needs: []string{"admin:groups"}, Resource: GroupRes},
	{Method: "DELETE", Path: "/groups/:name", Needs: []string{"delete:groups"}, Resource: GroupRes},
	{Method: "POST", Path: "/groups/:name/users", Needs: []string{"groups"}, Resource: GroupRes},
	{Method: "DELETE", Path: "/groups/:name/users", Needs: []string{"groups"}, Resource: GroupRes},
	{Method: "GET", Path: "/events", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/image", Needs: []string{"admin:servers"}},
	{Method: "PUT", Path: "/image", Needs: []string{"admin:servers"}},
	{Method: "POST", Path: "/image/restart-outdated", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/gitpuller-link", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/capacity", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/line", Needs: []string{"admin:servers"}},
	{Method: "PUT", Path: "/line", Needs: []string{"admin:servers"}},
	{Method: "POST", Path: "/cull", Needs: []string{"admin:servers"}},
	{Method: "POST", Path: "/reconcile", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/archives", Needs: []string{"admin:servers"}},
	{Method: "POST", Path: "/archives", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/archives/:run/:file", Needs: []string{"admin:servers"}},
	{Method: "POST", Path: "/archives/:run/:user/restore", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/announcement", Authenticated: true},
	{Method: "PUT", Path: "/announcement", Needs: []string{"admin:servers"}},
	{Method: "DELETE", Path: "/announcement", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/prestarts", Needs: []string{"admin:servers"}},
	{Method: "GET", Path: "/prestarts/:name", Needs: []string{"admin:servers"}},
	{Method: "PUT", Path: "/prestarts/:name", Needs: []string{"admin:servers"}},
	{Method: "DELETE", Path: "/prestarts/:name", Needs: []string{"admin:servers"}},
	{Method: "POST", Path: "/groups/:name/servers", Needs: []string{"admin:servers"}},
	{Method: "DELETE", Path: "/groups/:name/servers", Needs: []string{"admin:servers"}},
}

// Lookup returns the route for method and echo path, and whether it is
// listed.
func Lookup(method, path string) (Route, bool) {
	for _, r := range RouteTable {
		if r.Method == method && r.Path == path {
			return r, true
		}
	}
	return Route{}, false
}

// Target builds the target of r for the :name parameter; groupsOf (may be
// nil) gives a user's groups.
func (r Route) Target(name string, groupsOf func(string) []string) Target {
	var t Target
	switch r.Resource {
	case UserRes:
		t.User = name
	case ServerRes:
		t.User, t.Server = name, name+"/"
	case GroupRes:
		t.Group = name
	default:
		return t
	}
	if t.User != "" && groupsOf != nil {
		t.Groups = groupsOf(t.User)
	}
	return t
}

// Permits reports whether held may call r on the :name parameter.
// authenticated says a valid token or session was presented.
func (r Route) Permits(held Set, authenticated bool, name string, groupsOf func(string) []string) bool {
	if len(r.Needs) == 0 {
		return !r.Authenticated || authenticated
	}
	return authenticated && AllowsAny(held, r.Needs, r.Target(name, groupsOf))
}
