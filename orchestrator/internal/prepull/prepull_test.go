package prepull_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/swarmhub/swarmhub/orchestrator/internal/prepull"
)

const tinyImage = "swarmhub/tinynotebook:dev"

func requireSwarm(t *testing.T) *client.Client {
	t.Helper()
	if os.Getenv("SWARMHUB_TEST_DOCKER") == "" && os.Getenv("CI") == "" {
		t.Skip("skipping: set SWARMHUB_TEST_DOCKER=1 to run against the local Docker Swarm")
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// waitState polls the puller until every node is in want (Docker pulls and
// runs the job on its own schedule; this waits for it, it measures nothing).
func waitState(ctx context.Context, t *testing.T, p *prepull.Puller, want string) []prepull.NodeStatus {
	t.Helper()
	var last []prepull.NodeStatus
	for {
		st, err := p.Status(ctx)
		if err == nil && len(st) > 0 {
			all := true
			for _, n := range st {
				all = all && n.State == want
			}
			if all {
				return st
			}
			last = st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nodes never all %s: last %+v (err %v)", want, last, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestPrepullOnTheRealSwarm: the job puts a present image on every node,
// says which node failed to pull an image no registry has, and does not
// run again while nothing changed.
func TestPrepullOnTheRealSwarm(t *testing.T) {
	cli := requireSwarm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	instance := "prepull-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		svcs, _ := cli.ServiceList(context.Background(), swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", prepull.LabelPrepull+"="+instance))})
		for _, s := range svcs {
			_ = cli.ServiceRemove(context.Background(), s.ID)
		}
	})
	p := prepull.New(cli, prepull.Options{Instance: instance})
	if _, err := p.Status(ctx); err != prepull.ErrNoService {
		t.Fatalf("status before any run: %v, want ErrNoService", err)
	}
	if err := p.Ensure(ctx, tinyImage); err != nil {
		t.Fatal(err)
	}
	st := waitState(ctx, t, p, prepull.StatePresent)
	if st[0].Image != tinyImage || st[0].Node == "" {
		t.Errorf("status = %+v", st)
	}
	svc := service(ctx, t, cli, instance)
	if err := p.Ensure(ctx, tinyImage); err != nil {
		t.Fatal(err)
	}
	if again := service(ctx, t, cli, instance); again.Version.Index != svc.Version.Index {
		t.Errorf("Ensure with nothing changed updated the service (version %d -> %d)", svc.Version.Index, again.Version.Index)
	}

	// An image nobody has: the node reports the failure with Docker's reason.
	missing := "swarmhub/no-such-image:" + instance
	if err := p.Ensure(ctx, missing); err != nil {
		t.Fatal(err)
	}
	st = waitState(ctx, t, p, prepull.StateFailed)
	t.Logf("failed pull: %+v", st)
	if st[0].Image != missing || !strings.Contains(strings.ToLower(st[0].Reason), "image") {
		t.Errorf("failed pull = %+v, want the image named and a reason", st)
	}
}

func service(ctx context.Context, t *testing.T, cli *client.Client, instance string) swarm.Service {
	t.Helper()
	svcs, err := cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", prepull.LabelPrepull+"="+instance))})
	if err != nil || len(svcs) != 1 {
		t.Fatalf("pre-pull services: %d, %v", len(svcs), err)
	}
	return svcs[0]
}
