package sessioncache

import (
	"net/http"

	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
)

// ProxyIdentifier adapts the cache to the proxy's Identifier.
type ProxyIdentifier struct{ Cache *Cache }

// Identify is the cache's identity in the proxy's terms.
func (i ProxyIdentifier) Identify(r *http.Request) (proxy.Identity, bool) {
	id, ok := i.Cache.Identify(r)
	return proxy.Identity{User: id.User, Admin: id.Admin, Via: id.Via}, ok
}
