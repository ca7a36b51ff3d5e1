package spawner

import (
	"context"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// taskLister is the one Docker call the batcher makes.
type taskLister interface {
	TaskList(ctx context.Context, o swarm.TaskListOptions) ([]swarm.Task, error)
}

// taskBatcher coalesces the task lookups of concurrent spawns. Every spawn
// polls its task a few times a second; in a lecture-start storm that was
// one TaskList per spawn per tick, hundreds a second, each of which dockerd
// serves from the swarm store on the same cores that start the containers.
// Here at most one TaskList is in flight: lookups that arrive meanwhile wait
// for it to end and are then served together by the next call (one call
// with a "service" filter per waiting service). Before each call the batcher
// also waits gather, so that spawns whose polls are spread over the probe
// interval meet: calls per second stay under 1/gather however many spawns
// run, for at most gather of extra delay per poll.
type taskBatcher struct {
	d      taskLister
	gather time.Duration

	mu      sync.Mutex
	waiting map[string][]chan taskResult // service ID -> waiters
	running bool
}

type taskResult struct {
	tasks []swarm.Task
	err   error
}

// maxBatch bounds the services per call (the filter travels in the URL).
const maxBatch = 100

// batchCallTimeout bounds one TaskList for a batch; each waiter's own
// context still bounds its wait.
const batchCallTimeout = 30 * time.Second

// defaultGather is a fifth of the default probe interval: a 100-user storm
// makes at most 20 task listings a second instead of 400.
const defaultGather = 50 * time.Millisecond

func newTaskBatcher(d taskLister, gather time.Duration) *taskBatcher {
	return &taskBatcher{d: d, gather: gather, waiting: map[string][]chan taskResult{}}
}

// list returns the tasks of the service with this ID (IDs, not names: the
// answer is matched on Task.ServiceID).
func (b *taskBatcher) list(ctx context.Context, serviceID string) ([]swarm.Task, error) {
	ch := make(chan taskResult, 1)
	b.mu.Lock()
	b.waiting[serviceID] = append(b.waiting[serviceID], ch)
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	select {
	case r := <-ch:
		return r.tasks, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *taskBatcher) loop() {
	for {
		if b.gather > 0 {
			time.Sleep(b.gather)
		}
		b.mu.Lock()
		if len(b.waiting) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		batch := make(map[string][]chan taskResult, min(len(b.waiting), maxBatch))
		for id, chs := range b.waiting {
			if len(batch) == maxBatch {
				break
			}
			batch[id] = chs
			delete(b.waiting, id)
		}
		b.mu.Unlock()
		b.serve(batch)
	}
}

func (b *taskBatcher) serve(batch map[string][]chan taskResult) {
	args := filters.NewArgs()
	for id := range batch {
		args.Add("service", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), batchCallTimeout)
	tasks, err := b.d.TaskList(ctx, swarm.TaskListOptions{Filters: args})
	cancel()
	byService := make(map[string][]swarm.Task, len(batch))
	for _, t := range tasks {
		byService[t.ServiceID] = append(byService[t.ServiceID], t)
	}
	for id, chs := range batch {
		r := taskResult{err: err}
		if err == nil {
			r.tasks = byService[id]
		}
		for _, ch := range chs {
			ch <- r // buffered: a waiter that gave up does not block us
		}
	}
}

// spawnTask is currentTask for a spawn in flight, looked up through the
// batcher.
func (m *Manager) spawnTask(ctx context.Context, serviceID string) (swarm.Task, bool, error) {
	tasks, err := m.tasks.list(ctx, serviceID)
	return m.newestTask(ctx, serviceID, tasks, err)
}
