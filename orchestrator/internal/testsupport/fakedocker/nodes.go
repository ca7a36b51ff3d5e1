package fakedocker

import (
	"context"
	"math"

	"github.com/docker/docker/api/types/swarm"
)

// Node is a ready, active worker node with the given resources.
func Node(id, hostname string, cpus float64, memory int64) swarm.Node {
	n := swarm.Node{ID: id}
	n.Spec.Role = swarm.NodeRoleWorker
	n.Spec.Availability = swarm.NodeAvailabilityActive
	n.Status.State = swarm.NodeStateReady
	n.Description.Hostname = hostname
	n.Description.Resources = swarm.Resources{NanoCPUs: int64(math.Round(cpus * 1e9)), MemoryBytes: memory}
	return n
}

// SetNodes decides what NodeList reports from now on.
func (c *Client) SetNodes(nodes ...swarm.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = append([]swarm.Node(nil), nodes...)
}

// NodeList reports the nodes SetNodes gave; filters are ignored.
func (c *Client) NodeList(_ context.Context, _ swarm.NodeListOptions) ([]swarm.Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "NodeList")
	return append([]swarm.Node(nil), c.nodes...), nil
}
