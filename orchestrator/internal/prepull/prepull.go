// Package prepull puts the notebook image on every node that may run a
// student's server before anyone needs it: a global job service (one task
// per eligible node, running `true`) makes each node pull the image, and is
// run again when the image changes or a node joins. Its tasks say, per
// node, whether the image is there, still coming, or could not be pulled.
package prepull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// Docker is the part of the Docker client the puller calls.
type Docker interface {
	ServiceCreate(ctx context.Context, spec swarm.ServiceSpec, o swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error)
	ServiceList(ctx context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error)
	ServiceUpdate(ctx context.Context, id string, v swarm.Version, spec swarm.ServiceSpec, o swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error)
	TaskList(ctx context.Context, o swarm.TaskListOptions) ([]swarm.Task, error)
	NodeList(ctx context.Context, o swarm.NodeListOptions) ([]swarm.Node, error)
}

// LabelPrepull marks the pre-pull service; its value is the swarmhub
// instance. It carries neither swarmhub.managed nor swarmhub.instance, so
// nothing that lists students' servers mistakes it for one.
const LabelPrepull = "swarmhub.prepull"

// Options configures a Puller.
type Options struct {
	// Instance is the swarmhub instance (the swarmhub.prepull label's
	// value); the service is named INSTANCE-prepull.
	Instance string
	// Constraints are the student servers' placement constraints: only
	// nodes that may run a server pull.
	Constraints []string
	// RegistryAuth is the base64 X-Registry-Auth the spawner uses, if any.
	RegistryAuth string
	Logger       *slog.Logger
}

// Puller keeps the image on every eligible node.
type Puller struct {
	d   Docker
	o   Options
	log *slog.Logger
	mu  sync.Mutex // one Ensure at a time on this replica
}

// New returns a Puller.
func New(d Docker, o Options) *Puller {
	if o.Instance == "" {
		o.Instance = "swarmhub"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Puller{d: d, o: o, log: o.Logger}
}

func (p *Puller) name() string { return p.o.Instance + "-prepull" }

func (p *Puller) spec(image string, force uint64) swarm.ServiceSpec {
	none := swarm.RestartPolicyConditionNone
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: p.name(), Labels: map[string]string{LabelPrepull: p.o.Instance}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:   image,
				Command: []string{"true"},
				Labels:  map[string]string{LabelPrepull: p.o.Instance},
			},
			RestartPolicy: &swarm.RestartPolicy{Condition: none},
			Placement:     &swarm.Placement{Constraints: p.o.Constraints},
			ForceUpdate:   force,
		},
		Mode: swarm.ServiceMode{GlobalJob: &swarm.GlobalJob{}},
	}
}

func (p *Puller) service(ctx context.Context) (swarm.Service, bool, error) {
	svcs, err := p.d.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", LabelPrepull+"="+p.o.Instance))})
	if err != nil {
		return swarm.Service{}, false, fmt.Errorf("list the pre-pull service: %w", err)
	}
	for _, s := range svcs {
		if s.Spec.Name == p.name() {
			return s, true, nil
		}
	}
	return swarm.Service{}, false, nil
}

// Ensure makes every eligible node pull image: it creates the job, points
// it at a new image, or runs it again when a ready node has no task of the
// current run (it joined, or was down). Nodes that have the image finish
// at once; a node pulls only what it lacks.
func (p *Puller) Ensure(ctx context.Context, image string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	svc, ok, err := p.service(ctx)
	if err != nil {
		return err
	}
	if !ok {
		_, err := p.d.ServiceCreate(ctx, p.spec(image, 0), swarm.ServiceCreateOptions{EncodedRegistryAuth: p.o.RegistryAuth})
		if err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("create the pre-pull service for %s: %w", image, err)
		}
		p.log.Info("pre-pulling the notebook image on every node", "image", image)
		return nil
	}
	force := svc.Spec.TaskTemplate.ForceUpdate
	reason := ""
	if cur := svc.Spec.TaskTemplate.ContainerSpec; cur == nil || cur.Image != image {
		reason = "image changed"
	} else {
		missing, err := p.nodesWithoutTask(ctx, svc)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			reason = "nodes without the current run: " + strings.Join(missing, ", ")
			force++
		}
	}
	if reason == "" {
		return nil
	}
	_, err = p.d.ServiceUpdate(ctx, svc.ID, svc.Version, p.spec(image, force), swarm.ServiceUpdateOptions{EncodedRegistryAuth: p.o.RegistryAuth})
	if err != nil {
		return fmt.Errorf("run the pre-pull service again (%s): %w", reason, err)
	}
	p.log.Info("pre-pulling the notebook image", "image", image, "why", reason)
	return nil
}

// nodesWithoutTask lists the ready, active nodes the constraints admit
// that have no task of the service's current run.
func (p *Puller) nodesWithoutTask(ctx context.Context, svc swarm.Service) ([]string, error) {
	nodes, err := p.readyNodes(ctx)
	if err != nil {
		return nil, err
	}
	tasks, err := p.d.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID))})
	if err != nil {
		return nil, fmt.Errorf("list pre-pull tasks: %w", err)
	}
	iter := currentIteration(svc)
	current := map[string]bool{}
	for _, t := range tasks {
		if t.JobIteration != nil && t.JobIteration.Index == iter {
			current[t.NodeID] = true
		}
	}
	var missing []string
	for _, n := range nodes {
		if !current[n.ID] && eligible(n, p.o.Constraints) {
			missing = append(missing, n.Description.Hostname)
		}
	}
	sort.Strings(missing)
	return missing, nil
}

func currentIteration(svc swarm.Service) uint64 {
	if svc.JobStatus == nil {
		return 0
	}
	return svc.JobStatus.JobIteration.Index
}

func (p *Puller) readyNodes(ctx context.Context) ([]swarm.Node, error) {
	nodes, err := p.d.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := nodes[:0]
	for _, n := range nodes {
		if n.Status.State == swarm.NodeStateReady && n.Spec.Availability == swarm.NodeAvailabilityActive {
			out = append(out, n)
		}
	}
	return out, nil
}

// eligible evaluates the constraints swarmhub can read without the
// scheduler (node.role, node.hostname, node.id, node.labels.X, with == and
// !=); an unknown form counts as eligible, so at worst a node is asked to
// pull once more.
func eligible(n swarm.Node, constraints []string) bool {
	for _, c := range constraints {
		op := "=="
		key, val, ok := strings.Cut(c, "==")
		if !ok {
			if key, val, ok = strings.Cut(c, "!="); !ok {
				continue
			}
			op = "!="
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		var have string
		switch {
		case key == "node.role":
			have = string(n.Spec.Role)
		case key == "node.hostname":
			have = n.Description.Hostname
		case key == "node.id":
			have = n.ID
		case strings.HasPrefix(key, "node.labels."):
			have = n.Spec.Labels[strings.TrimPrefix(key, "node.labels.")]
		default:
			continue
		}
		if (op == "==") != (have == val) {
			return false
		}
	}
	return true
}

// Node states as the dashboard and the API show them.
const (
	StatePresent = "present"
	StatePulling = "pulling"
	StateFailed  = "failed"
	StateUnknown = "unknown" // no task yet: the run has not reached the node
)

// NodeStatus is the image's state on one node.
type NodeStatus struct {
	Node     string `json:"node"` // hostname
	NodeID   string `json:"node_id"`
	Image    string `json:"image"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Progress string `json:"progress,omitempty"` // the task's own message while pulling
}

// ErrNoService means pre-pulling has not started yet.
var ErrNoService = errors.New("the pre-pull service does not exist yet")

// Status reports the image's state on every eligible ready node, sorted by
// node name.
func (p *Puller) Status(ctx context.Context) ([]NodeStatus, error) {
	svc, ok, err := p.service(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNoService
	}
	image := ""
	if svc.Spec.TaskTemplate.ContainerSpec != nil {
		image = svc.Spec.TaskTemplate.ContainerSpec.Image
	}
	nodes, err := p.readyNodes(ctx)
	if err != nil {
		return nil, err
	}
	tasks, err := p.d.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID))})
	if err != nil {
		return nil, fmt.Errorf("list pre-pull tasks: %w", err)
	}
	iter := currentIteration(svc)
	// The newest task of the current run per node.
	latest := map[string]swarm.Task{}
	for _, t := range tasks {
		if t.JobIteration == nil || t.JobIteration.Index != iter {
			continue
		}
		if old, ok := latest[t.NodeID]; !ok || t.Meta.CreatedAt.After(old.Meta.CreatedAt) {
			latest[t.NodeID] = t
		}
	}
	var out []NodeStatus
	for _, n := range nodes {
		if !eligible(n, p.o.Constraints) {
			continue
		}
		st := NodeStatus{Node: n.Description.Hostname, NodeID: n.ID, Image: image, State: StateUnknown}
		if t, ok := latest[n.ID]; ok {
			st.State, st.Reason, st.Progress = classify(t)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// classify reads one pre-pull task: done or past the pull means the image
// is on the node; a failure after a container was made (an image without
// `true`) still means the image arrived; any other failure is a failed
// pull, with Docker's reason.
func classify(t swarm.Task) (state, reason, progress string) {
	switch t.Status.State {
	case swarm.TaskStateComplete, swarm.TaskStateRunning, swarm.TaskStateStarting, swarm.TaskStateReady:
		return StatePresent, "", ""
	case swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateShutdown, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		if t.Status.ContainerStatus != nil && t.Status.ContainerStatus.ContainerID != "" {
			return StatePresent, "", ""
		}
		msg := t.Status.Err
		if msg == "" {
			msg = t.Status.Message
		}
		return StateFailed, msg, ""
	default:
		return StatePulling, "", t.Status.Message
	}
}
