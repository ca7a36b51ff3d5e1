package prepull_test

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/prepull"
)

// fakeSwarm holds one job service, its tasks and the nodes; a node joining
// is a fault the one-node test swarm cannot produce.
type fakeSwarm struct {
	svc     *swarm.Service
	tasks   []swarm.Task
	nodes   []swarm.Node
	updates int
}

func (f *fakeSwarm) ServiceCreate(_ context.Context, spec swarm.ServiceSpec, _ swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error) {
	f.svc = &swarm.Service{ID: "svc", Spec: spec, JobStatus: &swarm.JobStatus{JobIteration: swarm.Version{Index: 1}}}
	return swarm.ServiceCreateResponse{ID: "svc"}, nil
}

func (f *fakeSwarm) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	if f.svc == nil {
		return nil, nil
	}
	return []swarm.Service{*f.svc}, nil
}

func (f *fakeSwarm) ServiceUpdate(_ context.Context, _ string, _ swarm.Version, spec swarm.ServiceSpec, _ swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error) {
	f.updates++
	f.svc.Spec = spec
	f.svc.JobStatus.JobIteration.Index++
	return swarm.ServiceUpdateResponse{}, nil
}

func (f *fakeSwarm) TaskList(context.Context, swarm.TaskListOptions) ([]swarm.Task, error) {
	return f.tasks, nil
}

func (f *fakeSwarm) NodeList(context.Context, swarm.NodeListOptions) ([]swarm.Node, error) {
	return f.nodes, nil
}

func node(id, role string) swarm.Node {
	return swarm.Node{ID: id, Spec: swarm.NodeSpec{Role: swarm.NodeRole(role), Availability: swarm.NodeAvailabilityActive},
		Description: swarm.NodeDescription{Hostname: id}, Status: swarm.NodeStatus{State: swarm.NodeStateReady}}
}

func (f *fakeSwarm) complete(nodeID string) {
	f.tasks = append(f.tasks, swarm.Task{NodeID: nodeID, JobIteration: &swarm.Version{Index: f.svc.JobStatus.JobIteration.Index},
		Status: swarm.TaskStatus{State: swarm.TaskStateComplete}})
}

func TestJobRunsAgainForAJoiningNodeOnly(t *testing.T) {
	ctx := t.Context()
	f := &fakeSwarm{nodes: []swarm.Node{node("w1", "worker"), node("m1", "manager")}}
	p := prepull.New(f, prepull.Options{Constraints: []string{"node.role==worker"}})
	if err := p.Ensure(ctx, "nb:1"); err != nil {
		t.Fatal(err)
	}
	f.complete("w1")
	if err := p.Ensure(ctx, "nb:1"); err != nil || f.updates != 0 {
		t.Fatalf("nothing changed (the manager is not eligible): %d updates, %v", f.updates, err)
	}
	st, err := p.Status(ctx)
	if err != nil || len(st) != 1 || st[0].Node != "w1" || st[0].State != prepull.StatePresent {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// w2 joins: the job runs again, and w2 shows as not reached yet.
	f.nodes = append(f.nodes, node("w2", "worker"))
	if st, _ := p.Status(ctx); len(st) != 2 || st[1].State != prepull.StateUnknown {
		t.Errorf("status with a new node = %+v", st)
	}
	if err := p.Ensure(ctx, "nb:1"); err != nil || f.updates != 1 || f.svc.Spec.TaskTemplate.ForceUpdate != 1 {
		t.Fatalf("a node joined: %d updates, force %d, %v", f.updates, f.svc.Spec.TaskTemplate.ForceUpdate, err)
	}
	// A new image runs the job again without forcing.
	f.complete("w1")
	f.complete("w2")
	if err := p.Ensure(ctx, "nb:2"); err != nil || f.updates != 2 || f.svc.Spec.TaskTemplate.ContainerSpec.Image != "nb:2" {
		t.Fatalf("new image: %d updates, %v", f.updates, err)
	}
}
