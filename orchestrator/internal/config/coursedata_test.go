package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

func withCourseData() config.Config {
	c := valid()
	c.Notebook.CourseData.Enabled = true
	return c
}

func TestCourseDataDefaults(t *testing.T) {
	d := config.Default().Notebook.CourseData
	if d.Enabled || d.MountPath != "/home/jovyan/course" || d.Volume != "course" {
		t.Errorf("defaults %+v: want off, at /home/jovyan/course, volume course", d)
	}
	c := withCourseData()
	if err := c.Validate(); err != nil {
		t.Errorf("enabled with the defaults: %v", err)
	}
	// Off: its keys are not checked, as for a feature not in use.
	c = valid()
	c.Notebook.CourseData.MountPath, c.Notebook.CourseData.Volume = "", ""
	if err := c.Validate(); err != nil {
		t.Errorf("disabled with empty keys: %v", err)
	}
}

func TestCourseDataFromEnvironment(t *testing.T) {
	c, err := config.Parse([]byte("auth: {authenticator: dummy, dummy: {password: x}}\n"), env(
		"SWARMHUB_NOTEBOOK_COURSE_DATA_ENABLED", "true",
		"SWARMHUB_NOTEBOOK_COURSE_DATA_MOUNT_PATH", "/srv/course",
	))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Notebook.CourseData; !d.Enabled || d.MountPath != "/srv/course" || d.Volume != "course" {
		t.Errorf("course data from the environment: %+v", d)
	}
}

func TestCourseDataValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		key    string
		msg    string
	}{
		{"mount path empty", func(c *config.Config) { c.Notebook.CourseData.MountPath = "" }, "notebook.course_data.mount_path", "required"},
		{"mount path relative", func(c *config.Config) { c.Notebook.CourseData.MountPath = "course" }, "notebook.course_data.mount_path", "absolute"},
		{"mount path is the workspace", func(c *config.Config) { c.Notebook.CourseData.MountPath = "/home/jovyan/" }, "notebook.course_data.mount_path", "notebook.notebook_dir"},
		{"mount path holds the workspace", func(c *config.Config) { c.Notebook.CourseData.MountPath = "/home" }, "notebook.course_data.mount_path", "notebook.notebook_dir"},
		{"mount path is the exchange", func(c *config.Config) { c.Notebook.CourseData.MountPath = "/home/jovyan/.exchange" }, "notebook.course_data.mount_path", "notebook.exchange_dir"},
		{"mount path inside the exchange", func(c *config.Config) { c.Notebook.CourseData.MountPath = "/home/jovyan/.exchange/course" }, "notebook.course_data.mount_path", "notebook.exchange_dir"},
		{"mount path is the nbgrader course directory", func(c *config.Config) { c.Notebook.CourseID = "course" }, "notebook.course_data.mount_path", "nbgrader course directory /home/jovyan/course"},
		{"volume invalid", func(c *config.Config) { c.Notebook.CourseData.Volume = "course/data" }, "notebook.course_data.volume", "volume name"},
		{"volume is the exchange's", func(c *config.Config) { c.Notebook.CourseData.Volume = "exchange" }, "notebook.course_data.volume", "notebook.exchange_volume"},
		{"archives readable by every server", func(c *config.Config) { c.Lifecycle.Archive.Dir = "/srv/swarmhub/course/archives" }, "lifecycle.archive.dir", "every server can read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := withCourseData()
			tt.mutate(&c)
			errs := fieldErrors(t, c.Validate())
			for _, e := range errs {
				if e.Key != tt.key {
					t.Errorf("unexpected error for another key: %v", e)
				} else if !strings.Contains(e.Msg, tt.msg) {
					t.Errorf("message %q does not mention %q", e.Msg, tt.msg)
				}
			}
			if !slices.Contains(errs.Keys(), tt.key) {
				t.Errorf("no error for %s; got:\n%v", tt.key, errs)
			}
		})
	}
	// A path of its own outside the workspace is fine.
	c := withCourseData()
	c.Notebook.CourseData.MountPath = "/course"
	if err := c.Validate(); err != nil {
		t.Errorf("course data at /course: %v", err)
	}
}
