package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/lifecycle"
)

// world is a fake swarm plus store that records every change.
type world struct {
	services []lifecycle.ObservedService
	records  []lifecycle.Record
	gone     map[string]bool // deleted or blocked users
	actions  []string
}

func (w *world) ListObserved(context.Context) ([]lifecycle.ObservedService, error) {
	return w.services, nil
}

func (w *world) RemoveService(_ context.Context, user, id string) error {
	w.actions = append(w.actions, "remove "+user+" "+id)
	return nil
}

func (w *world) ListRecords(context.Context) ([]lifecycle.Record, error) { return w.records, nil }

func (w *world) Adopt(_ context.Context, svc lifecycle.ObservedService) error {
	if svc.Token == "" {
		return errors.New("service has no token")
	}
	w.actions = append(w.actions, "adopt "+svc.User+" "+svc.ServiceID)
	return nil
}

func (w *world) MarkStopped(_ context.Context, user, reason string) error {
	w.actions = append(w.actions, "stopped "+user)
	return nil
}

func (w *world) ClearToken(_ context.Context, user string) error {
	w.actions = append(w.actions, "cleartoken "+user)
	return nil
}

func (w *world) SetAddress(_ context.Context, user, serviceID, addr string) error {
	w.actions = append(w.actions, "address "+user+" "+serviceID+" "+addr)
	return nil
}

func (w *world) IsDeletedOrBlocked(_ context.Context, user string) (bool, error) {
	return w.gone[user], nil
}

func svc(user, id string, running bool) lifecycle.ObservedService {
	return lifecycle.ObservedService{User: user, ServiceID: id, Token: "tok", Addr: "10.0.0.2:8888", Running: running}
}

// rec builds a record; a running one has the address svc gives its task.
func rec(user, state, id, token string, requested time.Time) lifecycle.Record {
	r := lifecycle.Record{User: user, State: state, ServiceID: id, Token: token, Requested: requested}
	if state == "running" {
		r.Addr = "10.0.0.2:8888"
	}
	return r
}

func TestReconcile(t *testing.T) {
	tests := []struct {
		name     string
		services []lifecycle.ObservedService
		records  []lifecycle.Record
		gone     []string
		want     []string
		events   []string // kinds
	}{
		{name: "running record whose task came back elsewhere gets the new address",
			services: []lifecycle.ObservedService{svc("alice", "s1", true)},
			records:  []lifecycle.Record{{User: "alice", State: "running", ServiceID: "s1", Token: "tok", Addr: "10.0.0.9:8888"}},
			want:     []string{"address alice s1 10.0.0.2:8888"}},
		{name: "running service without a record is adopted",
			services: []lifecycle.ObservedService{svc("alice", "s1", true)},
			want:     []string{"adopt alice s1"}, events: []string{"spawn"}},
		{name: "running service with a stopped record is adopted",
			services: []lifecycle.ObservedService{svc("alice", "s1", true)},
			records:  []lifecycle.Record{rec("alice", "stopped", "", "", time.Time{})},
			want:     []string{"adopt alice s1"}, events: []string{"spawn"}},
		{name: "record naming another service is corrected",
			services: []lifecycle.ObservedService{svc("alice", "s2", true)},
			records:  []lifecycle.Record{rec("alice", "running", "s1", "tok", time.Time{})},
			want:     []string{"adopt alice s2"}, events: []string{"spawn"}},
		{name: "matching running record is left alone",
			services: []lifecycle.ObservedService{svc("alice", "s1", true)},
			records:  []lifecycle.Record{rec("alice", "running", "s1", "tok", time.Time{})}},
		{name: "service whose task is not running yet is not adopted",
			services: []lifecycle.ObservedService{svc("alice", "s1", false)},
			records:  []lifecycle.Record{rec("alice", "starting", "s1", "tok", ago(time.Minute))}},
		{name: "running record whose service is gone is marked stopped",
			records: []lifecycle.Record{rec("alice", "running", "s1", "tok", ago(time.Hour))},
			want:    []string{"stopped alice"}, events: []string{"stop"}},
		{name: "running service of a spawn that started within the timeout is left to its spawner",
			services: []lifecycle.ObservedService{svc("alice", "s1", true)},
			records:  []lifecycle.Record{rec("alice", "starting", "s1", "tok", ago(time.Minute))}},
		{name: "running service of a spawn stuck past the timeout (its replica died) is adopted",
			services: []lifecycle.ObservedService{svc("alice", "s1", true)},
			records:  []lifecycle.Record{rec("alice", "starting", "s1", "tok", ago(10*time.Minute))},
			want:     []string{"adopt alice s1"}, events: []string{"spawn"}},
		{name: "starting record within the start timeout is left alone",
			records: []lifecycle.Record{rec("alice", "starting", "", "tok", ago(time.Minute))}},
		{name: "starting record past the start timeout is marked stopped",
			records: []lifecycle.Record{rec("alice", "starting", "", "tok", ago(10*time.Minute))},
			want:    []string{"stopped alice"}, events: []string{"stop"}},
		{name: "service of a deleted or blocked user is removed",
			services: []lifecycle.ObservedService{svc("mallory", "s9", true)},
			records:  []lifecycle.Record{rec("mallory", "running", "s9", "tok", time.Time{})},
			gone:     []string{"mallory"},
			want:     []string{"remove mallory s9", "stopped mallory"}, events: []string{"stop"}},
		{name: "stopped record keeping a token loses it",
			records: []lifecycle.Record{rec("alice", "stopped", "", "tok", time.Time{}), rec("bob", "failed", "", "tok", time.Time{})},
			want:    []string{"cleartoken alice", "cleartoken bob"}},
		{name: "stopped record without a token is left alone",
			records: []lifecycle.Record{rec("alice", "stopped", "", "", time.Time{})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{services: tt.services, records: tt.records, gone: map[string]bool{}}
			for _, u := range tt.gone {
				w.gone[u] = true
			}
			events := &eventLog{}
			r := lifecycle.NewReconciler(w, w, w, events, lifecycle.ReconcileOptions{
				StartTimeout: 5 * time.Minute, Clock: func() time.Time { return now },
			})
			rep, err := r.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(w.actions, tt.want) {
				t.Errorf("actions = %q, want %q", w.actions, tt.want)
			}
			var kinds []string
			for _, e := range events.all() {
				kinds = append(kinds, e.Kind)
			}
			if !slices.Equal(kinds, tt.events) {
				t.Errorf("event kinds = %q, want %q", kinds, tt.events)
			}
			if len(rep.Errors) != 0 {
				t.Errorf("errors: %v", rep.Errors)
			}
		})
	}
}

func TestReconcileReportsPerUserErrors(t *testing.T) {
	bad := svc("alice", "s1", true)
	bad.Token = "" // Adopt refuses it
	w := &world{services: []lifecycle.ObservedService{bad, svc("bob", "s2", true)}, gone: map[string]bool{}}
	r := lifecycle.NewReconciler(w, w, w, nil, lifecycle.ReconcileOptions{})
	rep, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Errors["alice"], "no token") || !slices.Equal(rep.Adopted, []string{"bob"}) {
		t.Errorf("report %+v: want alice's error and bob adopted", rep)
	}
}
