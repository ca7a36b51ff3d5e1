package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// Retry-After seconds sent with a 429: in-flight requests end within a
// moment, websockets when the student closes a tab or a kernel.
const (
	retryRequests   = 1
	retryWebsockets = 10
)

// userLimits caps, per user (the identity sending the requests), the
// proxied websockets open and the plain HTTP requests in flight, so that
// one student's runaway script or tab storm cannot take the replica's
// connections, goroutines and file descriptors from everybody else. The
// counters live as long as the replica: there are as many as users who
// came through it.
type userLimits struct {
	maxWS, maxReq int32 // 0: no cap
	users         sync.Map
}

// userLoad is one user's counters. A websocket holds its slot for its
// whole life: ReverseProxy's ServeHTTP returns only when the connection
// is over. The websocket registry learns of a connection only after the
// server accepted the upgrade, too late to answer 429.
type userLoad struct{ ws, req atomic.Int32 }

// acquire takes one of user's websocket (upgrade) or request slots. It
// returns the counter to give back with release (nil when there is no
// cap), or false when user is at the cap.
func (l *userLimits) acquire(user string, upgrade bool) (*atomic.Int32, bool) {
	limit := l.maxReq
	if upgrade {
		limit = l.maxWS
	}
	if limit <= 0 {
		return nil, true
	}
	v, ok := l.users.Load(user)
	if !ok {
		v, _ = l.users.LoadOrStore(user, new(userLoad))
	}
	ld := v.(*userLoad)
	c := &ld.req
	if upgrade {
		c = &ld.ws
	}
	if c.Add(1) > limit {
		c.Add(-1)
		return nil, false
	}
	return c, true
}

// release gives back a slot taken by acquire.
func release(c *atomic.Int32) {
	if c != nil {
		c.Add(-1)
	}
}

// tooMany answers 429 for a user at a cap and logs it once per user and
// kind.
func (p *Proxy) tooMany(w http.ResponseWriter, user string, upgrade bool) {
	if upgrade {
		p.warnOnce(user, "websocket cap", "refused a websocket over the per-user cap", "limit", p.limits.maxWS)
		w.Header().Set("Retry-After", strconv.Itoa(retryWebsockets))
		writeError(w, http.StatusTooManyRequests, "too many open websockets for "+user+
			" (at most "+strconv.Itoa(int(p.limits.maxWS))+"); close notebook tabs or shut down kernels you no longer use, then retry")
		return
	}
	p.warnOnce(user, "request cap", "refused a request over the per-user cap of requests in flight", "limit", p.limits.maxReq)
	w.Header().Set("Retry-After", strconv.Itoa(retryRequests))
	writeError(w, http.StatusTooManyRequests, "too many requests in flight for "+user+
		" (at most "+strconv.Itoa(int(p.limits.maxReq))+"); wait for some to finish, then retry")
}
