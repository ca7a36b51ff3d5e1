package web

import (
	"net/http"

	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
	"github.com/swarmhub/swarmhub/orchestrator/internal/sessioncache"
)

// ProxyIdentifier adapts the session cache to the proxy's Identifier: a
// caller passes only as far as ServerAccess lets it.
type ProxyIdentifier struct{ Cache *sessioncache.Cache }

// Identify is the cached identity in the proxy's terms.
func (i ProxyIdentifier) Identify(r *http.Request) (proxy.Identity, bool) {
	id, ok := i.Cache.Identify(r)
	own, all := ServerAccess(id)
	if !ok || !own && !all {
		return proxy.Identity{}, false
	}
	return proxy.Identity{User: id.User, Admin: all, Via: id.Via, Session: id.SessionKey}, true
}
