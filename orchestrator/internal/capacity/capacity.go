// Package capacity works out, from the swarm's nodes and the reservations
// of the tasks on them, how many more user servers fit and how many starts
// the nodes eligible for user servers may run at once.
package capacity

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// Unlimited is a Fit when no guarantee is configured: reservations then
// never stop Docker from placing another server.
const Unlimited = -1

// AutoStarts as StartsPerNode bounds each node's starts by its CPU count.
const AutoStarts = -1

// Options are the per-server guarantees and the placement of user servers.
type Options struct {
	CPUGuarantee float64 // cores reserved per server
	MemGuarantee int64   // bytes reserved per server
	Constraints  []string
	// StartsPerNode bounds the starts in flight per node: AutoStarts for
	// the node's CPU count, 0 for no bound.
	StartsPerNode int
}

// Node is one node eligible for user servers.
type Node struct {
	ID             string  `json:"id"`
	Hostname       string  `json:"hostname"`
	CPUs           float64 `json:"cpus"`
	Memory         int64   `json:"memory_bytes"`
	ReservedCPUs   float64 `json:"reserved_cpus"`
	ReservedMemory int64   `json:"reserved_memory_bytes"`
	Tasks          int     `json:"tasks"` // running or starting tasks on the node
	Fit            int     `json:"fit"`   // more servers that fit; Unlimited without guarantees
	Starts         int     `json:"starts"`
}

// Report is the capacity at one moment.
type Report struct {
	Nodes []Node `json:"nodes"`
	// Pending counts tasks with reservations that no node took yet; each
	// is subtracted from Fit.
	Pending int `json:"pending"`
	// Fit is the sum of the nodes' Fit less Pending; Unlimited without guarantees.
	Fit int `json:"fit"`
	// Starts bounds the starts in flight across the cluster; 0: no bound.
	Starts int `json:"starts_in_flight_bound"`
	// Services are the IDs of the services whose tasks were counted.
	Services map[string]bool `json:"-"`
	Time     time.Time       `json:"time"`
}

// Compute is the capacity of nodes given the tasks Docker reports. Only
// ready, active nodes that satisfy the placement constraints count.
func Compute(nodes []swarm.Node, tasks []swarm.Task, o Options) Report {
	rep := Report{Services: map[string]bool{}}
	byID := map[string]*Node{}
	for _, n := range nodes {
		if n.Status.State != swarm.NodeStateReady || n.Spec.Availability != swarm.NodeAvailabilityActive || !Eligible(n, o.Constraints) {
			continue
		}
		rep.Nodes = append(rep.Nodes, Node{
			ID: n.ID, Hostname: n.Description.Hostname,
			CPUs:   float64(n.Description.Resources.NanoCPUs) / 1e9,
			Memory: n.Description.Resources.MemoryBytes,
		})
	}
	for i := range rep.Nodes {
		byID[rep.Nodes[i].ID] = &rep.Nodes[i]
	}
	for _, t := range tasks {
		if !holds(t) {
			continue
		}
		rep.Services[t.ServiceID] = true
		var cpu float64
		var mem int64
		if r := t.Spec.Resources; r != nil && r.Reservations != nil {
			cpu, mem = float64(r.Reservations.NanoCPUs)/1e9, r.Reservations.MemoryBytes
		}
		if t.NodeID == "" {
			if cpu > 0 || mem > 0 {
				rep.Pending++
			}
			continue
		}
		if n := byID[t.NodeID]; n != nil {
			n.ReservedCPUs += cpu
			n.ReservedMemory += mem
			n.Tasks++
		}
	}
	limited := o.CPUGuarantee > 0 || o.MemGuarantee > 0
	rep.Fit = 0
	if !limited {
		rep.Fit = Unlimited
	}
	for i := range rep.Nodes {
		n := &rep.Nodes[i]
		n.Fit = fit(*n, o)
		if limited {
			rep.Fit += n.Fit
		}
		n.Starts = starts(*n, o.StartsPerNode)
	}
	if limited {
		rep.Fit = max(0, rep.Fit-rep.Pending)
	}
	rep.Starts = rep.StartsWith(o.StartsPerNode)
	sort.Slice(rep.Nodes, func(i, j int) bool { return rep.Nodes[i].Hostname < rep.Nodes[j].Hostname })
	return rep
}

// StartsWith is the bound on starts in flight across the report's nodes
// with perNode starts per node (AutoStarts: each node's CPU count; 0: no
// bound).
func (r Report) StartsWith(perNode int) int {
	if perNode == 0 {
		return 0
	}
	total := 0
	for _, n := range r.Nodes {
		total += starts(n, perNode)
	}
	return max(1, total) // no eligible node yet: one start at a time, Docker says why it waits
}

// holds says whether a task takes its reservation: Docker keeps it for
// tasks meant to run that have not ended.
func holds(t swarm.Task) bool {
	if t.DesiredState != swarm.TaskStateRunning {
		return false
	}
	switch t.Status.State {
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateRemove, swarm.TaskStateOrphaned:
		return false
	}
	return true
}

func fit(n Node, o Options) int {
	f := Unlimited
	if o.CPUGuarantee > 0 {
		// Docker compares nano-CPUs; so does this, to round alike.
		free := int64(math.Round(n.CPUs*1e9)) - int64(math.Round(n.ReservedCPUs*1e9))
		f = int(free / int64(math.Round(o.CPUGuarantee*1e9)))
	}
	if o.MemGuarantee > 0 {
		m := int((n.Memory - n.ReservedMemory) / o.MemGuarantee)
		if f == Unlimited || m < f {
			f = m
		}
	}
	if f != Unlimited && f < 0 {
		f = 0
	}
	return f
}

func starts(n Node, perNode int) int {
	switch {
	case perNode > 0:
		return perNode
	case perNode == AutoStarts:
		return max(1, int(n.CPUs))
	}
	return 0
}

// Eligible says whether n satisfies every placement constraint, as Swarm
// reads them: node.id, node.hostname, node.role, node.platform.os,
// node.platform.arch, node.labels.KEY and engine.labels.KEY with == or !=.
// A constraint on anything else counts as satisfied (Docker still decides).
func Eligible(n swarm.Node, constraints []string) bool {
	for _, c := range constraints {
		key, want, eq, ok := parseConstraint(c)
		if !ok {
			continue
		}
		have, known := nodeValue(n, key)
		if !known {
			continue
		}
		if strings.EqualFold(have, want) != eq {
			return false
		}
	}
	return true
}

func parseConstraint(c string) (key, value string, eq, ok bool) {
	if k, v, found := strings.Cut(c, "!="); found {
		return strings.TrimSpace(k), strings.TrimSpace(v), false, true
	}
	if k, v, found := strings.Cut(c, "=="); found {
		return strings.TrimSpace(k), strings.TrimSpace(v), true, true
	}
	return "", "", false, false
}

func nodeValue(n swarm.Node, key string) (string, bool) {
	switch {
	case key == "node.id":
		return n.ID, true
	case key == "node.hostname":
		return n.Description.Hostname, true
	case key == "node.role":
		return string(n.Spec.Role), true
	case key == "node.platform.os":
		return n.Description.Platform.OS, true
	case key == "node.platform.arch":
		return n.Description.Platform.Architecture, true
	case strings.HasPrefix(key, "node.labels."):
		return n.Spec.Labels[strings.TrimPrefix(key, "node.labels.")], true
	case strings.HasPrefix(key, "engine.labels."):
		return n.Description.Engine.Labels[strings.TrimPrefix(key, "engine.labels.")], true
	}
	return "", false
}

// Docker is the part of the Docker client the Reader calls.
type Docker interface {
	NodeList(ctx context.Context, o swarm.NodeListOptions) ([]swarm.Node, error)
	TaskList(ctx context.Context, o swarm.TaskListOptions) ([]swarm.Task, error)
}

// Reader reads the capacity from Docker, at most once per MaxAge: a burst
// of starts costs two Docker calls, not two per start.
type Reader struct {
	d      Docker
	o      Options
	maxAge time.Duration
	now    func() time.Time

	mu   sync.Mutex
	last Report
}

// NewReader returns a Reader whose reports are at most maxAge old.
func NewReader(d Docker, o Options, maxAge time.Duration) *Reader {
	return &Reader{d: d, o: o, maxAge: maxAge, now: time.Now}
}

// Report returns the capacity now (or at most MaxAge ago).
func (r *Reader) Report(ctx context.Context) (Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.Time.IsZero() && r.now().Sub(r.last.Time) < r.maxAge {
		return r.last, nil
	}
	nodes, err := r.d.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return Report{}, fmt.Errorf("list nodes: %w", err)
	}
	tasks, err := r.d.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("desired-state", "running"))})
	if err != nil {
		return Report{}, fmt.Errorf("list tasks: %w", err)
	}
	rep := Compute(nodes, tasks, r.o)
	rep.Time = r.now()
	r.last = rep
	return rep, nil
}
