package spawner

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
)

func TestNodeChange(t *testing.T) {
	ev := func(typ events.Type, action events.Action, id string, attrs map[string]string) events.Message {
		return events.Message{Type: typ, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}}
	}
	tests := []struct {
		name     string
		e        events.Message
		id       string
		down, ok bool
	}{
		{"down", ev(events.NodeEventType, events.ActionUpdate, "n1", map[string]string{"state.old": "ready", "state.new": "down"}), "n1", true, true},
		{"back", ev(events.NodeEventType, events.ActionUpdate, "n1", map[string]string{"state.old": "down", "state.new": "ready"}), "n1", false, true},
		{"disconnected is not down", ev(events.NodeEventType, events.ActionUpdate, "n1", map[string]string{"state.new": "disconnected"}), "n1", false, true},
		{"removed", ev(events.NodeEventType, events.ActionRemove, "n1", nil), "n1", false, true},
		{"drained: no state change", ev(events.NodeEventType, events.ActionUpdate, "n1", map[string]string{"availability.new": "drain"}), "", false, false},
		{"not a node", ev(events.ServiceEventType, events.ActionUpdate, "s1", map[string]string{"state.new": "down"}), "", false, false},
		{"no actor", ev(events.NodeEventType, events.ActionUpdate, "", map[string]string{"state.new": "down"}), "", false, false},
	}
	for _, tt := range tests {
		id, down, ok := nodeChange(tt.e)
		if id != tt.id || down != tt.down || ok != tt.ok {
			t.Errorf("%s: nodeChange = %q, %v, %v; want %q, %v, %v", tt.name, id, down, ok, tt.id, tt.down, tt.ok)
		}
	}
}

func TestDownNodes(t *testing.T) {
	var d downNodes
	if d.has("n1") {
		t.Fatal("an empty set has n1")
	}
	d.set("n1", true)
	d.set("n2", true)
	d.set("n2", false)
	if !d.has("n1") || d.has("n2") || d.has("") {
		t.Errorf("after n1 and n2 down and n2 back: has(n1)=%v has(n2)=%v has(\"\")=%v", d.has("n1"), d.has("n2"), d.has(""))
	}
	d.reset()
	if d.has("n1") {
		t.Error("reset kept n1")
	}
}

// countingEvents hands every subscriber the same channels and counts them.
type countingEvents struct {
	msgs chan events.Message
	errs chan error
	subs atomic.Int32
}

func (f *countingEvents) Events(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
	f.subs.Add(1)
	return f.msgs, f.errs
}

// A node held down when the stream breaks is forgotten on the next
// subscription: it may have come back meanwhile.
func TestWatchNodesStartsAfreshAfterABreak(t *testing.T) {
	m := &Manager{log: slog.New(slog.DiscardHandler)}
	ev := &countingEvents{msgs: make(chan events.Message), errs: make(chan error)}
	lost := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.watchNodes(ctx, ev, time.Millisecond, lost)
	ev.msgs <- events.Message{Type: events.NodeEventType, Action: events.ActionUpdate,
		Actor: events.Actor{ID: "n1", Attributes: map[string]string{"state.new": "down"}}}
	<-lost
	if !m.down.has("n1") {
		t.Fatal("n1 not held down after its down event")
	}
	ev.errs <- errors.New("stream broken")
	// The second subscription reads the next message only after its reset.
	ev.msgs <- events.Message{Type: events.NodeEventType, Action: events.ActionUpdate,
		Actor: events.Actor{ID: "n2", Attributes: map[string]string{"availability.new": "drain"}}}
	if n := ev.subs.Load(); n != 2 {
		t.Fatalf("%d subscriptions, want 2", n)
	}
	if m.down.has("n1") {
		t.Error("n1 still held down after the stream was subscribed again")
	}
}
