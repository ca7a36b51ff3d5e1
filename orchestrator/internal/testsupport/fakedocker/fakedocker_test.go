package fakedocker_test

import (
	"context"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

// The spawner tells outcomes apart by the real client's error kinds; the
// fake must report the same ones.
func TestErrorsMatchTheRealClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := fakedocker.New()
	spec := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "jupyter-a"}}
	if _, err := c.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{}); !cerrdefs.IsConflict(err) {
		t.Errorf("second create: %v, want a Conflict", err)
	}
	if _, _, err := c.ServiceInspectWithRaw(ctx, "jupyter-b", swarm.ServiceInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect of a missing service: %v, want NotFound", err)
	}
	if err := c.ServiceRemove(ctx, "jupyter-a"); err != nil {
		t.Fatal(err)
	}
	if err := c.ServiceRemove(ctx, "jupyter-a"); !cerrdefs.IsNotFound(err) {
		t.Errorf("second remove: %v, want NotFound", err)
	}
	if got, want := c.CreateAttempts(), 2; got != want {
		t.Errorf("CreateAttempts = %d, want %d", got, want)
	}
	if got, want := c.Creates(), 1; got != want {
		t.Errorf("Creates = %d, want %d", got, want)
	}
}

func TestTaskListReportsSetTasksPerService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := fakedocker.New()
	a := c.AddService(swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "jupyter-a"}})
	c.AddService(swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "jupyter-b"}})
	byService := filters.NewArgs(filters.Arg("service", a.ID))

	tasks, err := c.TaskList(ctx, swarm.TaskListOptions{Filters: byService})
	if err != nil || len(tasks) != 1 || tasks[0].Status.State != swarm.TaskStateRunning || tasks[0].ServiceID != a.ID {
		t.Fatalf("default tasks of %s = %+v, %v; want one running", a.ID, tasks, err)
	}
	c.SetTasks(func(svc swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStateRejected), fakedocker.WithErr("No such image: x"))}
	})
	tasks, err = c.TaskList(ctx, swarm.TaskListOptions{})
	if err != nil || len(tasks) != 2 {
		t.Fatalf("tasks of every service = %+v, %v; want 2", tasks, err)
	}
	for _, task := range tasks {
		if task.Status.State != swarm.TaskStateRejected || task.Status.Err != "No such image: x" {
			t.Errorf("task %+v, want rejected with the set error", task.Status)
		}
	}
}
