package spawner_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

// fakeEvents hands every subscriber the same channels.
type fakeEvents struct {
	msgs chan events.Message
	errs chan error
}

func (f *fakeEvents) Events(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
	return f.msgs, f.errs
}

func nodeState(id, state string) events.Message {
	return events.Message{Type: events.NodeEventType, Action: events.ActionUpdate,
		Actor: events.Actor{ID: id, Attributes: map[string]string{"name": id, "state.new": state}}}
}

// eventually waits (up to a generous bound) for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A node that swarm reports down takes its servers' routes with it at once,
// although Docker still lists their tasks as running (swarm has not
// replaced them yet); a node back brings them back. The periodic Retarget
// never runs here (an hour): the event alone does it.
func TestWatchAddressesDropsRoutesOfADownNode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	where := map[string][2]string{"alice": {"node-a", "10.0.0.5"}, "bob": {"node-b", "10.0.0.6"}}
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		w := where[svc.Spec.Labels[spawner.LabelUser]]
		return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStateRunning),
			fakedocker.WithAddress(fakedocker.Network, w[1]), fakedocker.OnNode(w[0]))}
	})
	for u := range where {
		if _, err := h.m.Start(ctx, u, spawner.StartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.settle(t)
	routed := func(u string) bool {
		addr, _, err := h.m.Target(ctx, u)
		return err == nil && addr == where[u][1]+":8888"
	}
	for u := range where {
		if !routed(u) {
			t.Fatalf("%s is not routed to %s before the test", u, where[u][1])
		}
	}
	ev := &fakeEvents{msgs: make(chan events.Message), errs: make(chan error)}
	go h.m.WatchAddresses(ctx, time.Hour, ev)

	ev.msgs <- nodeState("node-a", "down")
	eventually(t, "alice's route dropped after node-a went down", func() bool {
		_, _, err := h.m.Target(ctx, "alice")
		return errors.Is(err, spawner.ErrNotRunning)
	})
	if !routed("bob") {
		t.Error("bob, on node-b, lost his route when node-a went down")
	}
	ev.msgs <- nodeState("node-a", "ready")
	eventually(t, "alice routed again after node-a came back", func() bool { return routed("alice") })

}
