package web

import (
	"net/http"

	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
)

// ProxyIdentifier adapts the session cache to the proxy's interface.
type ProxyIdentifier struct{ Cache *SessionCache }

func (i ProxyIdentifier) Identify(r *http.Request) (proxy.Identity, bool) {
	id, ok := i.Cache.Identify(r)
	return proxy.Identity{User: id.User, Admin: id.Admin, Via: id.Via}, ok
}
