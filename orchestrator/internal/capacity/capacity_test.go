package capacity_test

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

const gib = 1 << 30

func reserving(name string, cpus float64, mem int64) swarm.ServiceSpec {
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name},
		TaskTemplate: swarm.TaskSpec{Resources: &swarm.ResourceRequirements{
			Reservations: &swarm.Resources{NanoCPUs: int64(cpus * 1e9), MemoryBytes: mem},
		}},
	}
}

func TestCapacityFromNodesLessReservations(t *testing.T) {
	t.Parallel()
	d := fakedocker.New()
	manager := fakedocker.Node("n1", "manager", 2, 4*gib)
	manager.Spec.Role = swarm.NodeRoleManager
	drained := fakedocker.Node("n3", "drained", 8, 16*gib)
	drained.Spec.Availability = swarm.NodeAvailabilityDrain
	down := fakedocker.Node("n4", "down", 8, 16*gib)
	down.Status.State = swarm.NodeStateDown
	labelled := fakedocker.Node("n5", "gpu", 8, 16*gib)
	labelled.Spec.Labels = map[string]string{"pool": "gpu"}
	d.SetNodes(manager, fakedocker.Node("n2", "worker", 4, 2*gib), drained, down, labelled)

	placed := map[string]string{"a": "n1", "b": "n1", "c": "n2", "p": ""}
	for name := range placed {
		d.AddService(reserving(name, 0.5, 256<<20))
	}
	d.AddService(reserving("done", 1, gib)) // its task ended: it holds nothing
	d.SetTasks(func(svc swarm.Service) []swarm.Task {
		if svc.Spec.Name == "done" {
			return []swarm.Task{fakedocker.Task(svc, fakedocker.OnNode("n1"), fakedocker.WithState(swarm.TaskStateComplete))}
		}
		if placed[svc.Spec.Name] == "" {
			return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStatePending))}
		}
		return []swarm.Task{fakedocker.Task(svc, fakedocker.OnNode(placed[svc.Spec.Name]), fakedocker.WithState(swarm.TaskStateRunning))}
	})

	r := capacity.NewReader(d, capacity.Options{
		CPUGuarantee: 0.5, MemGuarantee: 512 << 20,
		Constraints:   []string{"node.labels.pool!=gpu"},
		StartsPerNode: capacity.AutoStarts,
	}, time.Minute)
	rep, err := r.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Nodes) != 2 {
		t.Fatalf("nodes %+v, want the manager and the worker only (drained, down and constrained nodes take no server)", rep.Nodes)
	}
	// manager: 2 CPUs - 1 reserved = 2 more by CPU; 4 GiB - 512 MiB = 7 by memory.
	// worker: 4 CPUs - 0.5 = 7 by CPU; 2 GiB - 256 MiB = 3 by memory.
	if m, w := rep.Nodes[0], rep.Nodes[1]; m.Hostname != "manager" || m.Fit != 2 || m.Tasks != 2 || w.Fit != 3 || w.Tasks != 1 {
		t.Errorf("per node %+v, want manager fit 2 with 2 tasks, worker fit 3 with 1 task", rep.Nodes)
	}
	if rep.Pending != 1 || rep.Fit != 4 {
		t.Errorf("pending %d fit %d, want 1 pending and 2+3-1 = 4 in total", rep.Pending, rep.Fit)
	}
	if rep.Starts != 2+4 {
		t.Errorf("starts bound %d, want the CPU counts 2+4", rep.Starts)
	}
	if len(rep.Services) != 4 {
		t.Errorf("counted services %v, want the 4 whose tasks hold reservations", rep.Services)
	}
}

func TestCapacityWithoutGuaranteesIsUnlimited(t *testing.T) {
	t.Parallel()
	nodes := []swarm.Node{fakedocker.Node("n1", "a", 2, gib), fakedocker.Node("n2", "b", 1, gib)}
	rep := capacity.Compute(nodes, nil, capacity.Options{StartsPerNode: 3})
	if rep.Fit != capacity.Unlimited || rep.Nodes[0].Fit != capacity.Unlimited {
		t.Errorf("fit %d (node %d), want unlimited", rep.Fit, rep.Nodes[0].Fit)
	}
	if rep.Starts != 6 {
		t.Errorf("starts bound %d, want 3 per node", rep.Starts)
	}
	if rep := capacity.Compute(nodes, nil, capacity.Options{}); rep.Starts != 0 {
		t.Errorf("starts_per_node 0 gives bound %d, want 0 (none)", rep.Starts)
	}
	if rep := capacity.Compute(nil, nil, capacity.Options{StartsPerNode: capacity.AutoStarts}); rep.Starts != 1 {
		t.Errorf("no node gives bound %d, want one start at a time", rep.Starts)
	}
}

func TestEligibleReadsSwarmConstraints(t *testing.T) {
	t.Parallel()
	n := fakedocker.Node("id1", "host1", 1, gib)
	n.Spec.Labels = map[string]string{"zone": "a"}
	for _, tc := range []struct {
		constraints []string
		want        bool
	}{
		{nil, true},
		{[]string{"node.role==worker"}, true},
		{[]string{"node.role == manager"}, false},
		{[]string{"node.hostname!=host1"}, false},
		{[]string{"node.labels.zone==a", "node.id==id1"}, true},
		{[]string{"node.labels.zone==b"}, false},
		{[]string{"node.labels.missing!=x"}, true},
		{[]string{"something.else==x"}, true},
	} {
		if got := capacity.Eligible(n, tc.constraints); got != tc.want {
			t.Errorf("Eligible(%v) = %v, want %v", tc.constraints, got, tc.want)
		}
	}
}
