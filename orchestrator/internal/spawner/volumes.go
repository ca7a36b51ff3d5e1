package spawner

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
)

// VolumeInspector is optional: the real Docker client has it, and with it
// the spawner checks that a volume which already exists on the manager's node
// points where the configuration says.
type VolumeInspector interface {
	VolumeInspect(ctx context.Context, id string) (volume.Volume, error)
}

// checkVolumes refuses to start a server whose workspace volume already
// exists with other options. Docker would silently reuse such a volume (for
// instance the plain local volume of the previous JupyterHub setup, or one
// pointing at an old storage root), and the student would see other files
// than the storage root holds. Only the node this orchestrator talks to can
// be checked; it is where a single-node setup and a migration meet it.
func (m *Manager) checkVolumes(ctx context.Context, spec swarm.ServiceSpec) error {
	vi, ok := m.d.(VolumeInspector)
	if !ok || spec.TaskTemplate.ContainerSpec == nil {
		return nil
	}
	for _, mt := range spec.TaskTemplate.ContainerSpec.Mounts {
		if mt.Type != mount.TypeVolume || mt.VolumeOptions == nil || mt.VolumeOptions.DriverConfig == nil {
			continue
		}
		v, err := vi.VolumeInspect(ctx, mt.Source)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("inspect volume %s: %w", mt.Source, err)
		}
		want := mt.VolumeOptions.DriverConfig.Options
		if v.Driver == mt.VolumeOptions.DriverConfig.Name && v.Options["device"] == want["device"] && v.Options["type"] == want["type"] {
			continue
		}
		return fmt.Errorf("a Docker volume named %s already exists on this node but does not point at the storage root (device %q, want %q); "+
			"it is probably left from the previous setup or an old storage root. Copy its data with scripts/import-volumes if needed, then remove it (docker volume rm %s) and start again",
			mt.Source, v.Options["device"], want["device"], mt.Source)
	}
	return nil
}
