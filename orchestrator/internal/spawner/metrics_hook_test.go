package spawner_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

type spawnOutcome struct {
	d      time.Duration
	reason string
}

type recordingObserver struct {
	mu  sync.Mutex
	got []spawnOutcome
}

func (r *recordingObserver) SpawnFinished(d time.Duration, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, spawnOutcome{d, reason})
}

func TestSpawnObserverHearsEachOutcome(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		tasks      func(swarm.Service) []swarm.Task
		wantReason string
	}{
		{"ready server reports no reason", nil, ""},
		{"failed task reports Docker's text", func(svc swarm.Service) []swarm.Task {
			return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStateRejected), fakedocker.WithErr("No such image: x:y"))}
		}, "No such image: x:y"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obs := &recordingObserver{}
			clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			var mu sync.Mutex
			h := newHarness(t, func(o *spawner.ManagerOptions) {
				o.Metrics = obs
				// Every reading of the clock moves it one second on.
				o.Clock = func() time.Time {
					mu.Lock()
					defer mu.Unlock()
					clock = clock.Add(time.Second)
					return clock
				}
			})
			if tc.tasks != nil {
				h.d.SetTasks(tc.tasks)
			}
			if _, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{}); err != nil {
				t.Fatal(err)
			}
			h.settle(t)
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if len(obs.got) != 1 {
				t.Fatalf("observer heard %d outcomes, want 1: %+v", len(obs.got), obs.got)
			}
			got := obs.got[0]
			if got.d <= 0 {
				t.Errorf("duration %s, want > 0", got.d)
			}
			if (tc.wantReason == "") != (got.reason == "") || !strings.Contains(got.reason, tc.wantReason) {
				t.Errorf("reason %q, want %q", got.reason, tc.wantReason)
			}
		})
	}
}
