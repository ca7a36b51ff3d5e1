package spawner

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// target is a cached route: where a running server listens and the token
// the proxy injects.
type target struct{ addr, token string }

// proxyToken is the token the proxy sends to rec's server, and the readiness
// check too: none for a server that authenticates visitors through the hub
// (its token is the server's own hub credential).
func proxyToken(rec store.Server) string {
	if rec.HubToken {
		return ""
	}
	return rec.Token
}

// Target returns where the user's running server listens and the token to
// inject into requests to it ("" for none).
// It answers from memory. On a miss it asks Docker for the task's address
// rather than trusting the one in the store: after a restart of dockerd (or
// of a node) tasks come back with new addresses, and an old address may by
// then belong to another student's server. Only when Docker cannot be
// asked does it fall back to the stored address; Retarget corrects that
// once Docker answers again.
func (m *Manager) Target(ctx context.Context, user string) (addr, token string, err error) {
	m.mu.RLock()
	t, ok := m.targets[user]
	m.mu.RUnlock()
	if ok {
		return t.addr, t.token, nil
	}
	rec, err := m.getServer(ctx, user)
	if err != nil {
		return "", "", err
	}
	if rec.State != store.StateRunning {
		return "", "", ErrNotRunning
	}
	task, found, err := m.currentTask(ctx, or(rec.ServiceID, rec.ServiceName))
	switch {
	case err != nil && !cerrdefs.IsNotFound(err):
		if rec.Addr == "" {
			return "", "", fmt.Errorf("find task of %s: %w", user, err)
		}
		m.log.Warn("Docker unreachable: routing to the stored server address until it answers", "user", user, "err", err)
		addr = rec.Addr
	case !found || !m.serving(task):
		return "", "", ErrNotRunning
	default:
		if addr = taskAddr(task, m.o.Spec.Network, m.port()); addr == "" {
			return "", "", ErrNotRunning
		}
		if addr != rec.Addr {
			rec.Addr = addr
			if err := m.st.PutServer(ctx, rec); err != nil {
				m.log.Warn("record new server address", "user", user, "err", err)
			}
		}
	}
	m.mu.Lock()
	m.targets[user] = target{addr: addr, token: proxyToken(rec)}
	m.mu.Unlock()
	return addr, proxyToken(rec), nil
}

// serving says whether the task of a server whose record says running can
// be routed to. A task Docker still lists as starting is serving: the
// record says running only once the spawner's probe had an answer, and
// under load the managers learn of "running" seconds after the server
// answers (a student's first request then reached the replica that had
// not run the start and was told the server was not running). A task on a
// node swarm reported down no longer answers, whatever its last state.
func (m *Manager) serving(t swarm.Task) bool {
	return taskStarted(t.Status.State) && !m.down.has(t.NodeID)
}

// Forget drops the cached address so the next Target asks Docker again.
func (m *Manager) Forget(user string) {
	m.mu.Lock()
	delete(m.targets, user)
	m.mu.Unlock()
}

// Retarget brings the cached addresses in line with what Docker reports
// (WatchAddresses calls it on every replica): a task that moved or came
// back with a new address is routed to at once, and a server whose task is
// not running is asked for again on its next request. Without it a restarted
// task whose old address went to another server would go on receiving the
// first one's requests until a connection failed.
func (m *Manager) Retarget(obs []Observed) (moved []string) {
	var gone []string
	m.mu.Lock()
	for _, o := range obs {
		t, ok := m.targets[o.User]
		if !ok {
			continue
		}
		switch {
		case o.Addr == "":
			delete(m.targets, o.User)
		case o.Addr != t.addr:
			m.targets[o.User] = target{addr: o.Addr, token: o.proxyToken(t.token)}
		default:
			continue
		}
		moved = append(moved, o.User)
		gone = append(gone, t.addr)
	}
	m.mu.Unlock()
	if len(moved) > 0 {
		m.log.Info("server addresses changed in Docker; routes updated", "users", moved)
	}
	if m.o.AddressGone != nil {
		for _, a := range gone {
			m.o.AddressGone(a)
		}
	}
	return moved
}

// WatchAddresses runs Retarget every interval until ctx ends, and at once
// when ev (if not nil) reports a swarm node down (see nodes.go). Every
// replica runs it, since each has its own route cache; it costs two Docker
// calls per interval and per lost node, none per proxied request. A cache
// that is empty (no student online) is not worth a listing.
func (m *Manager) WatchAddresses(ctx context.Context, interval time.Duration, ev EventSource) {
	lost := make(chan struct{}, 1)
	if ev != nil {
		go m.watchNodes(ctx, ev, interval, lost)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-lost:
		}
		m.mu.RLock()
		n := len(m.targets)
		m.mu.RUnlock()
		if n == 0 {
			continue
		}
		obs, err := m.Services(ctx)
		if err != nil {
			m.log.Debug("watch server addresses", "err", err)
			continue
		}
		m.Retarget(obs)
	}
}
