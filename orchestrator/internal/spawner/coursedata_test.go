package spawner_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

func withCourseData(o *spawner.Options) {
	o.CourseDataPath = "/home/jovyan/course"
	o.CourseDataVolume = "course"
}

// courseMount is the mount at the course data path, or nil.
func courseMount(t *testing.T, spec swarm.ServiceSpec) *mount.Mount {
	t.Helper()
	var found *mount.Mount
	for i, m := range spec.TaskTemplate.ContainerSpec.Mounts {
		if m.Target == "/home/jovyan/course" {
			if found != nil {
				t.Fatalf("two mounts at /home/jovyan/course: %+v", spec.TaskTemplate.ContainerSpec.Mounts)
			}
			found = &spec.TaskTemplate.ContainerSpec.Mounts[i]
		}
	}
	return found
}

// TestCourseDataMount: students get course/ read-only, instructors
// read-write, on both storage backends; without a path nobody gets it.
func TestCourseDataMount(t *testing.T) {
	t.Parallel()
	backends := map[string]struct {
		storage spawner.Storage
		device  string
		typ     string
	}{
		"hostpath": {spawner.Storage{Backend: "hostpath", HostRoot: "/srv/swarmhub"}, "/srv/swarmhub/course", "none"},
		"nfs":      {spawner.Storage{Backend: "nfs", NFSServer: "nfs.example.edu", NFSExport: "/export/swarmhub"}, ":/export/swarmhub/course", "nfs"},
	}
	for name, b := range backends {
		for _, instructor := range []bool{false, true} {
			r, o := baseRequest(), baseOptions()
			r.Instructor = instructor
			o.Storage = b.storage
			withCourseData(&o)
			spec, err := spawner.BuildSpec(r, o)
			if err != nil {
				t.Fatalf("%s, instructor %v: %v", name, instructor, err)
			}
			m := courseMount(t, spec)
			if m == nil {
				t.Fatalf("%s, instructor %v: no course data mount in %+v", name, instructor, spec.TaskTemplate.ContainerSpec.Mounts)
			}
			if m.ReadOnly == instructor {
				t.Errorf("%s, instructor %v: ReadOnly = %v", name, instructor, m.ReadOnly)
			}
			if m.Type != mount.TypeVolume || m.Source != "course" || m.VolumeOptions == nil || !m.VolumeOptions.NoCopy {
				t.Errorf("%s, instructor %v: want the volume course without copying image data, got %+v", name, instructor, m)
				continue
			}
			drv := m.VolumeOptions.DriverConfig
			if drv == nil || drv.Options["device"] != b.device || drv.Options["type"] != b.typ {
				t.Errorf("%s: driver %+v, want type %s device %s", name, drv, b.typ, b.device)
			}
		}
	}

	for _, instructor := range []bool{false, true} {
		r := baseRequest()
		r.Instructor = instructor
		spec, err := spawner.BuildSpec(r, baseOptions())
		if err != nil {
			t.Fatal(err)
		}
		if m := courseMount(t, spec); m != nil {
			t.Errorf("course data disabled, instructor %v: mounted anyway: %+v", instructor, m)
		}
		for _, m := range spec.TaskTemplate.ContainerSpec.Mounts {
			if m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil && filepath.Base(m.VolumeOptions.DriverConfig.Options["device"]) == "course" {
				t.Errorf("course data disabled: %s binds course/", m.Target)
			}
		}
	}
}

// TestStartCreatesCourseDataDirectory: the first start makes course/ under
// the storage root, for the notebook user, only when course data is on.
func TestStartCreatesCourseDataDirectory(t *testing.T) {
	t.Parallel()
	for _, enabled := range []bool{false, true} {
		h := newHarness(t, func(o *spawner.ManagerOptions) {
			if enabled {
				withCourseData(&o.Spec)
			}
		})
		if _, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		h.settle(t)
		fi, err := os.Stat(filepath.Join(h.root, "course"))
		if !enabled {
			if !os.IsNotExist(err) {
				t.Errorf("course data disabled: course/ exists or cannot be checked (%v)", err)
			}
			continue
		}
		if err != nil || !fi.IsDir() {
			t.Fatalf("course data directory not created: %v", err)
		}
		if os.Geteuid() == 0 {
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 100 {
				t.Errorf("course/ owned by %d:%d, want 1000:100", st.Uid, st.Gid)
			}
		}
		if fi.Mode().Perm()&0o700 != 0o700 {
			t.Errorf("course/ mode %v: its owner cannot write it", fi.Mode())
		}
	}
}
