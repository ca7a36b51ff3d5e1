package spawner_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/volume"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

// dockerWithVolumes adds volumes that exist on the node to the fake engine.
type dockerWithVolumes struct {
	*fakedocker.Client
	vols map[string]volume.Volume
}

func (d dockerWithVolumes) VolumeInspect(_ context.Context, id string) (volume.Volume, error) {
	if v, ok := d.vols[id]; ok {
		return v, nil
	}
	return volume.Volume{}, cerrdefs.ErrNotFound
}

func TestStartRefusesAStaleVolumeOfTheSameName(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	d := dockerWithVolumes{Client: h.d, vols: map[string]volume.Volume{
		// The previous JupyterHub setup's plain local volume.
		"jupyterhub-user-alice": {Name: "jupyterhub-user-alice", Driver: "local", Options: map[string]string{}},
	}}
	o := spawner.ManagerOptions{Spec: baseOptions(), Image: "img", Namer: mustNamer(t), Prober: alwaysReady}
	o.Spec.Storage.HostRoot = h.root
	m := spawner.NewManager(d, h.st, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	_, err := m.Start(context.Background(), "alice", spawner.StartOptions{})
	if err == nil || !strings.Contains(err.Error(), "docker volume rm jupyterhub-user-alice") {
		t.Fatalf("want a clear refusal naming the stale volume, got %v", err)
	}
	if n := h.d.Creates(); n != 0 {
		t.Fatalf("a service was created on a stale volume")
	}

	// A volume that points where the configuration says is fine.
	d.vols["jupyterhub-user-alice"] = volume.Volume{Name: "jupyterhub-user-alice", Driver: "local",
		Options: map[string]string{"type": "none", "o": "bind", "device": h.root + "/users/alice"}}
	if _, err := m.Start(context.Background(), "alice", spawner.StartOptions{}); err != nil {
		t.Fatalf("matching volume refused: %v", err)
	}
	if err := m.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func mustNamer(t *testing.T) spawner.Namer {
	t.Helper()
	n, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
