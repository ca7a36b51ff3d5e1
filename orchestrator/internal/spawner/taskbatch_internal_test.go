package spawner

import (
	"context"
	"errors"
	"runtime"
	"sort"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

// gatedLister answers TaskList only when the test lets it, and records the
// services each call asked for.
type gatedLister struct {
	mu      sync.Mutex
	calls   [][]string
	entered chan struct{}
	release chan struct{}
	err     error
}

func (g *gatedLister) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	ids := o.Filters.Get("service")
	sort.Strings(ids)
	g.mu.Lock()
	g.calls = append(g.calls, ids)
	g.mu.Unlock()
	g.entered <- struct{}{}
	<-g.release
	var out []swarm.Task
	for _, id := range ids {
		out = append(out, swarm.Task{ID: "t-" + id, ServiceID: id})
	}
	return out, g.err
}

func TestTaskBatcherServesWaitersTogether(t *testing.T) {
	t.Parallel()
	g := &gatedLister{entered: make(chan struct{}), release: make(chan struct{})}
	b := newTaskBatcher(g, 0)
	ctx := context.Background()

	type got struct {
		id    string
		tasks []swarm.Task
		err   error
	}
	results := make(chan got, 4)
	ask := func(id string) {
		tasks, err := b.list(ctx, id)
		results <- got{id, tasks, err}
	}

	go ask("svc1")
	<-g.entered // the first call is in flight, for svc1 alone
	// Three more lookups arrive while it runs (one service twice).
	var wg sync.WaitGroup
	for _, id := range []string{"svc2", "svc3", "svc2"} {
		wg.Add(1)
		go func() { defer wg.Done(); ask(id) }()
	}
	waitWaiting(b, 3)
	g.release <- struct{}{} // first call ends
	<-g.entered             // second call, for everything that waited
	g.release <- struct{}{}
	wg.Wait()

	for i := 0; i < 4; i++ {
		r := <-results
		if r.err != nil || len(r.tasks) != 1 || r.tasks[0].ServiceID != r.id {
			t.Fatalf("lookup of %s got %+v, %v", r.id, r.tasks, r.err)
		}
	}
	want := [][]string{{"svc1"}, {"svc2", "svc3"}}
	if len(g.calls) != len(want) {
		t.Fatalf("TaskList calls %v, want %v", g.calls, want)
	}
	for i := range want {
		if len(g.calls[i]) != len(want[i]) || g.calls[i][0] != want[i][0] || g.calls[i][len(want[i])-1] != want[i][len(want[i])-1] {
			t.Fatalf("TaskList calls %v, want %v", g.calls, want)
		}
	}
}

func TestTaskBatcherPassesErrorsToEveryWaiter(t *testing.T) {
	t.Parallel()
	boom := errors.New("daemon unavailable")
	g := &gatedLister{entered: make(chan struct{}, 1), release: make(chan struct{}, 1), err: boom}
	g.release <- struct{}{}
	b := newTaskBatcher(g, 0)
	if _, err := b.list(context.Background(), "svc1"); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

func TestTaskBatcherWaiterGivesUpWithItsContext(t *testing.T) {
	t.Parallel()
	g := &gatedLister{entered: make(chan struct{}, 1), release: make(chan struct{})}
	b := newTaskBatcher(g, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := b.list(ctx, "svc1"); done <- err }()
	<-g.entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(g.release) // the call ends later; its answer goes nowhere, nothing blocks
}

// waitWaiting blocks until n lookups wait for the next call.
func waitWaiting(b *taskBatcher, n int) {
	for {
		b.mu.Lock()
		k := 0
		for _, chs := range b.waiting {
			k += len(chs)
		}
		b.mu.Unlock()
		if k >= n {
			return
		}
		runtime.Gosched()
	}
}
