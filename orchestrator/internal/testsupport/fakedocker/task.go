package fakedocker

import "github.com/docker/docker/api/types/swarm"

// TaskOption sets one part of a task built by Task.
type TaskOption func(*swarm.Task)

// Task builds a task of svc, in state new unless an option says otherwise:
//
//	Task(svc, WithState(swarm.TaskStateRejected), WithErr("No such image: x"))
func Task(svc swarm.Service, opts ...TaskOption) swarm.Task {
	t := swarm.Task{
		ID: "task-" + svc.ID, ServiceID: svc.ID, Spec: svc.Spec.TaskTemplate,
		DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{State: swarm.TaskStateNew},
	}
	for _, o := range opts {
		o(&t)
	}
	return t
}

// RunningTask is a running task of svc at ip on Network, also attached to
// the ingress network (whose address must never be routed to).
func RunningTask(svc swarm.Service, ip string) swarm.Task {
	return Task(svc, WithState(swarm.TaskStateRunning), WithMessage("started"),
		WithAddress("ingress", "10.255.0.9"), WithAddress(Network, ip))
}

// WithState sets the task's state.
func WithState(s swarm.TaskState) TaskOption {
	return func(t *swarm.Task) { t.Status.State = s }
}

// WithMessage sets Docker's status message ("preparing", "started").
func WithMessage(msg string) TaskOption {
	return func(t *swarm.Task) { t.Status.Message = msg }
}

// WithErr sets Docker's error text of a failed or rejected task.
func WithErr(msg string) TaskOption {
	return func(t *swarm.Task) { t.Status.Err = msg }
}

// WithAddress attaches the task to the named network at ip.
func WithAddress(network, ip string) TaskOption {
	return func(t *swarm.Task) {
		t.NetworksAttachments = append(t.NetworksAttachments, swarm.NetworkAttachment{
			Network:   swarm.Network{ID: network + "-id", Spec: swarm.NetworkSpec{Annotations: swarm.Annotations{Name: network}}},
			Addresses: []string{ip + "/24"},
		})
	}
}

// OnNode places the task on the node with that ID.
func OnNode(id string) TaskOption {
	return func(t *swarm.Task) { t.NodeID = id }
}
