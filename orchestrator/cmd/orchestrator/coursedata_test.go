package main

import (
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

// TestSpecOptionsCarryCourseData: notebook.course_data reaches the spec only
// when enabled, read-only for a student and writable for an instructor.
func TestSpecOptionsCarryCourseData(t *testing.T) {
	mountAt := func(cfg config.Config, instructor bool, target string) (readOnly, found bool) {
		t.Helper()
		spec, err := spawner.BuildSpec(spawner.Request{User: "alice", ServiceName: "jupyter-alice", VolumeName: "v", Token: "t", Image: "img", Instructor: instructor}, specOptions(cfg))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range spec.TaskTemplate.ContainerSpec.Mounts {
			if m.Target == target {
				if m.Source != cfg.Notebook.CourseData.Volume || m.VolumeOptions.DriverConfig.Options["device"] != cfg.Storage.HostPath.Root+"/course" {
					t.Errorf("course data mount %+v, want volume %s on course/", m, cfg.Notebook.CourseData.Volume)
				}
				return m.ReadOnly, true
			}
		}
		return false, false
	}
	cfg := config.Default()
	if _, found := mountAt(cfg, true, cfg.Notebook.CourseData.MountPath); found {
		t.Error("course data mounted although notebook.course_data.enabled is false")
	}
	cfg.Notebook.CourseData = config.CourseData{Enabled: true, MountPath: "/home/jovyan/data", Volume: "course-data"}
	if ro, found := mountAt(cfg, false, "/home/jovyan/data"); !found || !ro {
		t.Errorf("student: course data found %v, read-only %v; want a read-only mount", found, ro)
	}
	if ro, found := mountAt(cfg, true, "/home/jovyan/data"); !found || ro {
		t.Errorf("instructor: course data found %v, read-only %v; want a writable mount", found, ro)
	}
}
