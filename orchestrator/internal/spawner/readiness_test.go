package spawner_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawnfail"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

// TestReadyBetweenTaskPolls: once the task has an address, the server is
// probed on its own clock, so a start ends when the server answers and not
// at the next task poll. The poll interval here is an hour: the start can
// only end through the prober. Probes sent before Docker reports the task
// starting carry a short deadline (its address may not answer at all yet).
func TestReadyBetweenTaskPolls(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	probes, early := 0, 0
	h := newHarness(t, func(o *spawner.ManagerOptions) {
		o.ProbeInterval = time.Hour
		o.Prober = proberFunc(func(ctx context.Context, addr, _, _ string) error {
			mu.Lock()
			defer mu.Unlock()
			probes++
			if _, ok := ctx.Deadline(); ok {
				early++
			}
			if addr != fakedocker.DefaultIP+":8888" {
				return errors.New("probed " + addr)
			}
			if probes < 4 {
				return errors.New("connect: connection refused")
			}
			return nil
		})
	})
	h.d.SetTasks(func(s swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.Task(s, fakedocker.WithState(swarm.TaskStatePreparing),
			fakedocker.WithAddress(baseOptions().Network, fakedocker.DefaultIP))}
	})
	if _, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	if rec := h.st.server("alice"); rec.State != store.StateRunning {
		t.Fatalf("state = %q (%s), want running", rec.State, rec.Error)
	}
	mu.Lock()
	defer mu.Unlock()
	if probes != 4 || early != 4 {
		t.Errorf("probes = %d (%d with a deadline), want 4 (4)", probes, early)
	}
	if n := h.d.Calls("TaskList"); n != 1 {
		t.Errorf("TaskList calls = %d, want 1", n)
	}
}

// TestTaskNeverAllocatedSaysWhy: Docker leaves a task "new" without a word
// when the users network has no free address; the failure names that cause.
func TestTaskNeverAllocatedSaysWhy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *spawner.ManagerOptions) { o.StartTimeout = 100 * time.Millisecond })
	h.d.SetTasks(func(s swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.Task(s, fakedocker.WithState(swarm.TaskStateNew))}
	})
	if _, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	rec := h.st.server("alice")
	if rec.State != store.StateFailed || !strings.Contains(rec.Error, "no free address") {
		t.Fatalf("record = %q %q, want failed naming the users network", rec.State, rec.Error)
	}
	if c := spawnfail.Classify(rec.Error); c != spawnfail.Resources {
		t.Errorf("class = %s, want %s", c, spawnfail.Resources)
	}
}

// TestRetargetReportsTheAddressesItLeaves: the proxy hears the old address
// of every route Retarget drops or moves, once, and nothing for a route
// that stayed.
func TestRetargetReportsTheAddressesItLeaves(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var gone []string
	h := newHarness(t, func(o *spawner.ManagerOptions) {
		o.AddressGone = func(addr string) { mu.Lock(); gone = append(gone, addr); mu.Unlock() }
	})
	ctx := context.Background()
	ips := map[string]string{"alice": "10.0.0.5", "bob": "10.0.0.6", "carol": "10.0.0.7"}
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.RunningTask(svc, ips[svc.Spec.Labels[spawner.LabelUser]])}
	})
	for u := range ips {
		if _, err := h.m.Start(ctx, u, spawner.StartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.settle(t)
	for u := range ips {
		if _, _, err := h.m.Target(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	// alice moved, bob's task is no longer running, carol stayed.
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		switch svc.Spec.Labels[spawner.LabelUser] {
		case "alice":
			return []swarm.Task{fakedocker.RunningTask(svc, "10.0.0.9")}
		case "bob":
			return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStateShutdown))}
		}
		return []swarm.Task{fakedocker.RunningTask(svc, ips["carol"])}
	})
	obs, err := h.m.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.m.Retarget(obs)
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(gone)
	if want := []string{"10.0.0.5:8888", "10.0.0.6:8888"}; !slices.Equal(gone, want) {
		t.Errorf("AddressGone heard %v, want %v", gone, want)
	}
}
