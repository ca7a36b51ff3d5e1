package spawner_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

const tinyImage = "swarmhub/tinynotebook:dev"

// swarmEnv is a private overlay network and spawner on the real swarm.
type swarmEnv struct {
	cli      *client.Client
	m        *spawner.Manager
	st       *store.Store
	network  string
	subnet   *net.IPNet
	root     string
	instance string
	probed   sync.Map // user -> addr the prober was asked about
}

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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := cli.Info(ctx)
	if err != nil {
		t.Fatalf("docker is not reachable (is dockerd running?): %v", err)
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Swarm.ControlAvailable {
		t.Fatalf("docker is not a swarm manager (state %q); run: docker swarm init --advertise-addr 127.0.0.1", info.Swarm.LocalNodeState)
	}
	return cli
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newSwarmEnv sets up the network and a Manager; mods may change its options.
func newSwarmEnv(t *testing.T, mods ...func(*spawner.ManagerOptions)) *swarmEnv {
	t.Helper()
	cli := requireSwarm(t)
	ctx := context.Background()
	id := randHex(t, 4)
	e := &swarmEnv{cli: cli, root: t.TempDir(), instance: "spawner-test-" + id, network: "swarmhub-test-" + id}

	res, err := cli.NetworkCreate(ctx, e.network, network.CreateOptions{
		Driver: "overlay", Attachable: true, Labels: map[string]string{"swarmhub.test": "spawner"},
	})
	if err != nil {
		t.Fatalf("create overlay network: %v", err)
	}
	// Cleanups run last-in first-out: services go before the network and volumes.
	t.Cleanup(func() { e.cleanup(t, res.ID) })
	nw, err := cli.NetworkInspect(ctx, res.ID, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nw.IPAM.Config) > 0 {
		_, e.subnet, _ = net.ParseCIDR(nw.IPAM.Config[0].Subnet)
	}

	e.st = store.New(testenv.RedisClient(t), "spawnertest:")
	namer, err := identity.New(identity.Options{ServiceTemplate: "swarmhub-test-{username}", VolumeTemplate: "swarmhub-test-vol-{username}"})
	if err != nil {
		t.Fatal(err)
	}
	opts := baseOptions()
	opts.Network = e.network
	opts.Instance = e.instance
	opts.ExchangeVolume = "swarmhub-test-exchange-" + id
	opts.Storage = spawner.Storage{Backend: "hostpath", HostRoot: e.root}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	mo := spawner.ManagerOptions{
		Spec:          opts,
		Image:         tinyImage,
		Namer:         namer,
		StorageMount:  e.root,
		StartTimeout:  90 * time.Second,
		SpawnLimit:    4,
		ProbeInterval: 250 * time.Millisecond,
		// The host cannot reach overlay addresses: the server "answers"
		// once Docker reports a task of its service running at addr (the
		// spawner probes from the moment the task has an address), and
		// the address asked is remembered.
		Prober: proberFunc(func(ctx context.Context, addr, user, _ string) error {
			name, err := namer.ServiceName(user)
			if err != nil {
				return err
			}
			tasks, err := cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", name))})
			if err != nil {
				return err
			}
			ip, _, _ := net.SplitHostPort(addr)
			for _, t := range tasks {
				if t.Status.State != swarm.TaskStateRunning {
					continue
				}
				for _, na := range t.NetworksAttachments {
					for _, a := range na.Addresses {
						if strings.HasPrefix(a, ip+"/") {
							e.probed.Store(user, addr)
							return nil
						}
					}
				}
			}
			return errors.New("connect: connection refused")
		}),
	}
	for _, mod := range mods {
		mod(&mo)
	}
	e.m = spawner.NewManager(cli, spawner.WrapStore(e.st), mo, log)
	return e
}

func (e *swarmEnv) cleanup(t *testing.T, networkID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_ = e.m.Wait(ctx)
	byLabel := filters.NewArgs(filters.Arg("label", spawner.LabelInstance+"="+e.instance))
	svcs, err := e.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: byLabel})
	if err != nil {
		t.Errorf("cleanup: list services: %v", err)
	}
	for _, s := range svcs {
		if err := e.cli.ServiceRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: remove service %s: %v", s.Spec.Name, err)
		}
	}
	// Containers take a moment to go after their service; the network and
	// volumes can only be removed once they have.
	for {
		vols, _ := e.cli.VolumeList(ctx, volume.ListOptions{Filters: byLabel})
		var left []string
		for _, v := range vols.Volumes {
			if err := e.cli.VolumeRemove(ctx, v.Name, false); err != nil && !cerrdefs.IsNotFound(err) {
				left = append(left, v.Name)
			}
		}
		nerr := e.cli.NetworkRemove(ctx, networkID)
		if nerr != nil && cerrdefs.IsNotFound(nerr) {
			nerr = nil
		}
		if len(left) == 0 && nerr == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("cleanup: volumes %v or network %s left behind: %v", left, e.network, nerr)
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (e *swarmEnv) settle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.m.Wait(ctx); err != nil {
		t.Fatalf("spawns did not end: %v", err)
	}
}

func requireImage(t *testing.T, cli *client.Client, img string) {
	t.Helper()
	if _, err := cli.ImageInspect(context.Background(), img); err != nil {
		msg := "image " + img + " is missing; build it: CGO_ENABLED=0 go build -o /tmp/tn/tinynotebook ./orchestrator/cmd/tinynotebook && docker build -t " + img + " -f images/tinynotebook/Dockerfile /tmp/tn"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}
}

func TestSwarmStartStopKeepsVolume(t *testing.T) {
	e := newSwarmEnv(t)
	requireImage(t, e.cli, tinyImage)
	ctx := context.Background()
	user := "u" + randHex(t, 3)

	if _, err := e.m.Start(ctx, user, spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	rec, err := e.st.GetServer(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.StateRunning {
		t.Fatalf("state = %q (error %q), want running", rec.State, rec.Error)
	}
	host, port, err := net.SplitHostPort(rec.Addr)
	if err != nil || port != "8888" {
		t.Fatalf("address %q is not ip:8888", rec.Addr)
	}
	if ip := net.ParseIP(host); ip == nil || (e.subnet != nil && !e.subnet.Contains(ip)) {
		t.Errorf("address %s is not on network %s (%v)", host, e.network, e.subnet)
	}
	if probed, _ := e.probed.Load(user); probed != rec.Addr {
		t.Errorf("readiness probed %v, want %s", probed, rec.Addr)
	}

	svc, _, err := e.cli.ServiceInspectWithRaw(ctx, rec.ServiceID, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Labels[spawner.LabelUser] != user || svc.Spec.EndpointSpec == nil || svc.Spec.EndpointSpec.Mode != swarm.ResolutionModeDNSRR {
		t.Errorf("service spec labels %v, endpoint %+v: want user label and dnsrr", svc.Spec.Labels, svc.Spec.EndpointSpec)
	}

	// A second start while running neither errs nor creates a service.
	again, err := e.m.Start(ctx, user, spawner.StartOptions{})
	if err != nil || again.ServiceID != rec.ServiceID || again.State != store.StateRunning {
		t.Errorf("second Start = %+v, %v; want the running server", again, err)
	}

	// Reconcile view: the service is listed with its token and address.
	obs, err := e.m.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 || obs[0].User != user || obs[0].Token != rec.Token || obs[0].Addr != rec.Addr {
		t.Errorf("Services = %+v, want %s at %s", obs, user, rec.Addr)
	}

	volName := "swarmhub-test-vol-" + user
	if err := e.m.Stop(ctx, user, "test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.cli.ServiceInspectWithRaw(ctx, rec.ServiceID, swarm.ServiceInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("service still there after Stop: %v", err)
	}
	vol, err := e.cli.VolumeInspect(ctx, volName)
	if err != nil {
		t.Fatalf("workspace volume %s gone after Stop: %v", volName, err)
	}
	if want := e.root + "/users/" + user; vol.Options["device"] != want {
		t.Errorf("volume device = %q, want %q", vol.Options["device"], want)
	}
}

func TestSwarmMissingImageFailsWithDockerError(t *testing.T) {
	e := newSwarmEnv(t)
	ctx := context.Background()
	user := "u" + randHex(t, 3)

	if _, err := e.m.Start(ctx, user, spawner.StartOptions{Image: "swarmhub/does-not-exist:nope"}); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	rec, err := e.st.GetServer(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("spawn error: %s", rec.Error)
	if rec.State != store.StateFailed {
		t.Fatalf("state = %q, want failed", rec.State)
	}
	if !strings.Contains(rec.Error, "No such image") || !strings.Contains(rec.Error, "swarmhub/does-not-exist:nope") {
		t.Errorf("error %q does not carry Docker's text about the missing image", rec.Error)
	}
	if strings.Contains(rec.Error, "did not become ready") {
		t.Errorf("error %q: the failure was noticed only at the timeout", rec.Error)
	}
	ps, err := e.st.ReadProgress(ctx, user, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 || !ps[len(ps)-1].Failed || !strings.Contains(ps[len(ps)-1].Message, "No such image") {
		t.Errorf("progress does not end with the failure: %+v", ps)
	}
	_, _, err = e.cli.ServiceInspectWithRaw(ctx, "swarmhub-test-"+user, swarm.ServiceInspectOptions{})
	if !cerrdefs.IsNotFound(err) {
		t.Errorf("failed spawn left its service behind: %v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Error(err)
	}
}
