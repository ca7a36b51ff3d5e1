package spawner

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawnfail"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// currentTask returns the newest task of a service. A missing service is
// reported as a NotFound error.
func (m *Manager) currentTask(ctx context.Context, service string) (swarm.Task, bool, error) {
	tasks, err := m.d.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", service))})
	return m.newestTask(ctx, service, tasks, err)
}

// newestTask picks the newest of a service's tasks. An empty list can mean
// the service is gone (stopped elsewhere): that is checked and reported as
// a NotFound error.
func (m *Manager) newestTask(ctx context.Context, service string, tasks []swarm.Task, err error) (swarm.Task, bool, error) {
	if err != nil {
		return swarm.Task{}, false, err
	}
	if len(tasks) == 0 {
		if _, _, err := m.d.ServiceInspectWithRaw(ctx, service, swarm.ServiceInspectOptions{}); err != nil {
			return swarm.Task{}, false, err
		}
		return swarm.Task{}, false, nil
	}
	best := tasks[0]
	for _, t := range tasks[1:] {
		if newer(t, best) {
			best = t
		}
	}
	return best, true, nil
}

func newer(a, b swarm.Task) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.Version.Index > b.Version.Index
}

// taskFailure reports whether the task ended the spawn, with Docker's text.
func taskFailure(t swarm.Task) (string, bool) {
	switch t.Status.State {
	case swarm.TaskStateFailed, swarm.TaskStateRejected:
	case swarm.TaskStateShutdown, swarm.TaskStateComplete:
		if t.Status.Err == "" && t.Status.State == swarm.TaskStateShutdown {
			return "", false
		}
	default:
		return "", false
	}
	msg := t.Status.Err
	if msg == "" {
		msg = t.Status.Message
	}
	if cs := t.Status.ContainerStatus; cs != nil && cs.ExitCode != 0 {
		msg += fmt.Sprintf(" (exit code %d)", cs.ExitCode)
	}
	if msg == "" {
		msg = "the server exited"
	}
	return fmt.Sprintf("task %s: %s", t.Status.State, msg) + spawnfail.Hint(msg), true
}

// taskProgress turns a task state into a JupyterHub-like progress event.
func taskProgress(t swarm.Task) store.Progress {
	pct := map[swarm.TaskState]int{
		swarm.TaskStateNew: 30, swarm.TaskStateAllocated: 30, swarm.TaskStatePending: 30,
		swarm.TaskStateAssigned: 40, swarm.TaskStateAccepted: 40,
		swarm.TaskStatePreparing: 50, swarm.TaskStateReady: 60, swarm.TaskStateStarting: 60,
		swarm.TaskStateRunning: 80,
	}[t.Status.State]
	if t.Status.State == swarm.TaskStateRunning {
		return store.Progress{Progress: pct, Message: "Task running, waiting for Jupyter"}
	}
	if t.Status.State == swarm.TaskStatePreparing {
		// The node pulls the image here when it lacks it: say so, or a
		// first start on a new node looks stuck.
		return store.Progress{Progress: pct, Message: "Preparing your server on its node (pulling the notebook image if that node does not have it yet; a first pull can take a few minutes)"}
	}
	msg := "Task " + string(t.Status.State)
	detail := t.Status.Err
	if detail == "" {
		detail = t.Status.Message
	}
	if detail != "" {
		msg += ": " + detail
	}
	return store.Progress{Progress: pct, Message: msg}
}

// taskAddr is ip:port of the task on the named network, without the /prefix.
func taskAddr(t swarm.Task, network string, port int) string {
	for _, na := range t.NetworksAttachments {
		if na.Network.Spec.Name != network && na.Network.ID != network {
			continue
		}
		for _, a := range na.Addresses {
			ip, _, _ := strings.Cut(a, "/")
			if ip == "" {
				continue
			}
			if strings.Contains(ip, ":") {
				ip = "[" + ip + "]"
			}
			return fmt.Sprintf("%s:%d", ip, port)
		}
	}
	return ""
}
