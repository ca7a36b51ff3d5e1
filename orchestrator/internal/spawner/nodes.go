package spawner

import (
	"context"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Losing a node. Swarm declares a node down once its heartbeats stop (12–15 s
// on the test cluster) and only then replaces its tasks; until then nothing
// can be done. But at that moment the route cache still holds the dead
// task's address, every request to it waits out the proxy's dial timeout,
// and re-resolving may still find the dead task listed as running. The
// managers' event stream reports the node's state change as it happens, for
// one open connection and no polling: from then on a task on a down node
// counts as not running, the routes to such tasks are dropped at once, and
// the next request resolves to the replacement as soon as it runs.

// EventSource streams Docker events; the Docker client satisfies it.
type EventSource interface {
	Events(ctx context.Context, o events.ListOptions) (<-chan events.Message, <-chan error)
}

// downNodes is the set of swarm nodes last reported down.
type downNodes struct {
	mu  sync.RWMutex
	ids map[string]bool
}

func (d *downNodes) set(id string, down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !down {
		delete(d.ids, id)
		return
	}
	if d.ids == nil {
		d.ids = map[string]bool{}
	}
	d.ids[id] = true
}

// reset forgets every node: after a gap in the event stream the set may
// be stale, and a node wrongly held down would hide its running servers.
func (d *downNodes) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids = nil
}

func (d *downNodes) has(id string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return id != "" && d.ids[id]
}

// nodeChange reads a swarm node event: which node, and whether it is down
// now. ok is false for events that change no node's state (availability or
// role updates, other event types).
func nodeChange(e events.Message) (id string, down, ok bool) {
	if e.Type != events.NodeEventType || e.Actor.ID == "" {
		return "", false, false
	}
	switch e.Action {
	case events.ActionRemove:
		return e.Actor.ID, false, true
	case events.ActionUpdate:
		state, changed := e.Actor.Attributes["state.new"]
		if !changed {
			return "", false, false
		}
		return e.Actor.ID, state == "down", true
	}
	return "", false, false
}

// watchNodes follows swarm node events until ctx ends, keeping the down set
// and sending on lost when a node goes down. After the stream breaks
// (dockerd restarted) it subscribes again after retry; a node that went
// down meanwhile is caught by the periodic Retarget as before, so the set
// starts empty on every subscription.
func (m *Manager) watchNodes(ctx context.Context, ev EventSource, retry time.Duration, lost chan<- struct{}) {
	f := filters.NewArgs(filters.Arg("type", string(events.NodeEventType)))
	for ctx.Err() == nil {
		m.down.reset()
		sctx, cancel := context.WithCancel(ctx)
		msgs, errs := ev.Events(sctx, events.ListOptions{Filters: f})
	read:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case err := <-errs:
				m.log.Debug("swarm node events", "err", err)
				break read
			case e := <-msgs:
				id, down, ok := nodeChange(e)
				if !ok {
					continue
				}
				m.down.set(id, down)
				if down {
					m.log.Info("swarm node down: routes to its servers are dropped", "node", e.Actor.Attributes["name"])
					select {
					case lost <- struct{}{}:
					default:
					}
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}
