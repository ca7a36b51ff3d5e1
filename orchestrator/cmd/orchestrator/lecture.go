package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/metrics"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

// lectureGauges keeps the last reading of the capacity and the start line
// for the metrics, which must answer from memory.
type lectureGauges struct {
	mu  sync.Mutex
	l   metrics.Lecture
	set bool
}

func (g *lectureGauges) read() (metrics.Lecture, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.l, g.set
}

// lectureEvery is how often the gauges are read afresh.
const lectureEvery = 15 * time.Second

func (g *lectureGauges) run(ctx context.Context, mgr *spawner.Manager, room *capacity.Reader, log *slog.Logger) {
	t := time.NewTicker(lectureEvery)
	defer t.Stop()
	for {
		if l, err := readLecture(ctx, mgr, room); err != nil {
			if ctx.Err() == nil {
				log.Debug("read capacity and start line for the metrics", "err", err)
			}
		} else {
			g.mu.Lock()
			g.l, g.set = l, true
			g.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func readLecture(ctx context.Context, mgr *spawner.Manager, room *capacity.Reader) (metrics.Lecture, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := room.Report(ctx)
	if err != nil {
		return metrics.Lecture{}, err
	}
	line, err := mgr.LineStatus(ctx)
	if err != nil {
		return metrics.Lecture{}, err
	}
	l := metrics.Lecture{NodeFit: map[string]int{}, Fit: rep.Fit, Waiting: len(line.Waiting), Starting: len(line.Starting), Bound: line.Bound}
	for _, n := range rep.Nodes {
		l.NodeFit[n.Hostname] = n.Fit
	}
	return l, nil
}

// checkCapacity warns when more users are allowed than servers fit on the
// swarm with nothing else running. It says nothing when Docker cannot be
// reached from where check-config runs; the dashboard warns then.
func checkCapacity(ctx context.Context, cfg config.Config, stdout io.Writer) {
	o := capacityOptions(cfg)
	if o.CPUGuarantee <= 0 && o.MemGuarantee <= 0 {
		return
	}
	docker, err := client.NewClientWithOpts(client.WithHost(cfg.Docker.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer docker.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	nodes, err := docker.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		fmt.Fprintf(stdout, "note: the capacity was not checked: Docker at %s cannot list the swarm's nodes (%v); the dashboard shows it\n", cfg.Docker.Host, err)
		return
	}
	fit := capacity.Compute(nodes, nil, o).Fit
	if allowed := len(cfg.Auth.AllowedUsers); allowed > fit {
		fmt.Fprintf(stdout, "warning: auth.allowed_users lists %d users but only %d servers fit on the swarm's nodes with the guarantees (notebook.cpu_guarantee, notebook.mem_guarantee); the rest wait in line until a server stops\n", allowed, fit)
	}
}
