package main

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestArrivalsSpreadEvenlyWithinTheWindow(t *testing.T) {
	got := arrivals(4, time.Minute)
	want := []time.Duration{0, 15 * time.Second, 30 * time.Second, 45 * time.Second}
	if len(got) != len(want) {
		t.Fatalf("arrivals = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("arrivals = %v, want %v", got, want)
		}
	}
	a := arrivals(200, time.Minute)
	if a[199] >= time.Minute || a[199] != 59700*time.Millisecond {
		t.Errorf("the last of 200 arrives at %s, want 59.7s", a[199])
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"512B": 512, "1.5KiB": 1536, "12MiB": 12 << 20, "1GiB": 1 << 30, "3kB": 3000, "2MB": 2e6} {
		if got, ok := parseSize(in); !ok || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "12 parsecs"} {
		if _, ok := parseSize(in); ok {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestSamplesSummarisedPerNodeAndContainerWithinTheWindow(t *testing.T) {
	in := strings.Join([]string{
		"100 swarmhub-node1 swarmhub_orchestrator.1.abc 10.00% 20MiB",
		"101 swarmhub-node1 swarmhub_orchestrator.1.abc 30.00% 30MiB",
		"101.5 swarmhub-node2 swarmhub_orchestrator.2.def 5.00% 25MiB",
		"102 host swarmhub-node1 150.50% 1GiB",
		"103 swarmhub-node1 swarmhub_redis.1.ghi 2.00% 8MiB",
		"99 swarmhub-node1 swarmhub_orchestrator.1.abc 99.00% 99MiB", // before the window
		"garbage line",
		"104 swarmhub-node1 swarmhub_orchestrator.1.abc --% 20MiB", // no CPU figure yet
	}, "\n")
	s := parseSamples(in)
	if len(s) != 6 {
		t.Fatalf("parsed %d samples, want 6: %+v", len(s), s)
	}
	w := window(s, time.Unix(100, 0), time.Unix(103, 0))
	o := w[[2]string{"swarmhub-node1", "swarmhub_orchestrator"}]
	if o.N != 2 || o.CPUMean != 20 || o.CPUPeak != 30 || o.MemPeak != 30<<20 {
		t.Errorf("replica on node1 = %+v, want 2 samples, mean 20%%, peak 30%%, 30 MiB", o)
	}
	if n := w[[2]string{"host", "swarmhub-node1"}]; n.N != 1 || n.CPUMean != 150.5 || n.MemPeak != 1<<30 {
		t.Errorf("node1 = %+v, want one sample of 150.5%% and 1 GiB", n)
	}
	if len(w) != 4 {
		t.Errorf("window has %d containers, want 4: %v", len(w), w)
	}
}

func TestMetricValueReadsAnUnlabelledSample(t *testing.T) {
	text := "# HELP swarmhub_docker_requests_total Requests.\n# TYPE swarmhub_docker_requests_total counter\nswarmhub_docker_requests_total 1234\nswarmhub_docker_requests_total_other 5\n"
	if v, ok := metricValue(strings.NewReader(text), "swarmhub_docker_requests_total"); !ok || v != 1234 {
		t.Errorf("metricValue = %v, %v; want 1234", v, ok)
	}
	if _, ok := metricValue(strings.NewReader(text), "swarmhub_running_servers"); ok {
		t.Error("found a metric that is not there")
	}
}

func TestCourseRunsOnlyWhenNamed(t *testing.T) {
	var course, spawn suite
	for _, s := range allSuites() {
		switch s.name {
		case "course":
			course = s
		case "spawn":
			spawn = s
		}
	}
	for _, c := range []struct {
		want          map[string]bool
		course, spawn bool
	}{
		{map[string]bool{}, false, true},
		{map[string]bool{"all": true}, false, true},
		{map[string]bool{"course": true}, true, false},
		{map[string]bool{"course": true, "spawn": true}, true, true},
	} {
		if course.selected(c.want) != c.course || spawn.selected(c.want) != c.spawn {
			t.Errorf("suites %v: course %v spawn %v, want %v %v", c.want, course.selected(c.want), spawn.selected(c.want), c.course, c.spawn)
		}
	}
}

func TestStudentsLDIF(t *testing.T) {
	got := studentsLDIF([]string{"course001", "courseadmin"}, "pw")
	want := "dn: uid=course001,ou=people,dc=example,dc=edu\nobjectClass: inetOrgPerson\nuid: course001\ncn: Student course001\nsn: course001\nuserPassword: pw\n\n" +
		"dn: uid=courseadmin,ou=people,dc=example,dc=edu\nobjectClass: inetOrgPerson\nuid: courseadmin\ncn: Student courseadmin\nsn: courseadmin\nuserPassword: pw\n\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestCourseBareFlagChoosesTheBaselines(t *testing.T) {
	o, err := parseRunFlags([]string{"--config", "c.yaml", "course"})
	if err != nil || o.CourseBare != "both" {
		t.Fatalf("default --course-bare = %q, %v; want both", o.CourseBare, err)
	}
	if _, err := parseRunFlags([]string{"--config", "c.yaml", "--course-bare", "some", "course"}); err == nil || !strings.Contains(err.Error(), "--course-bare") {
		t.Errorf("--course-bare some: err = %v, want one naming the flag", err)
	}
	for mode, want := range map[string][]courseSide{
		"both":    {{Name: "bounded bare", Prefix: "coursebound", Limit: 20}, {Name: "bare", Prefix: "coursebare"}},
		"bounded": {{Name: "bounded bare", Prefix: "coursebound", Limit: 20}},
		"all":     {{Name: "bare", Prefix: "coursebare"}},
	} {
		if _, err := parseRunFlags([]string{"--config", "c.yaml", "--course-bare", mode}); err != nil {
			t.Errorf("--course-bare %s: %v", mode, err)
		}
		if got := courseBareSides(mode, 20); !reflect.DeepEqual(got, want) {
			t.Errorf("sides for %s = %+v, want %+v", mode, got, want)
		}
	}
}

func TestStartSlotsHoldAtMostTheirBound(t *testing.T) {
	s := newStartSlots(2)
	ctx := context.Background()
	for i := range 2 {
		if err := s.acquire(ctx); err != nil {
			t.Fatalf("slot %d: %v", i+1, err)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.acquire(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("a third slot of two: err = %v, want context.Canceled", err)
	}
	s.release()
	if err := s.acquire(ctx); err != nil {
		t.Fatalf("a slot after a release: %v", err)
	}
	if err := s.acquire(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("a third slot of two after a release and an acquire: err = %v, want context.Canceled", err)
	}
	none := newStartSlots(0)
	for i := range 3 {
		if err := none.acquire(done); err != nil {
			t.Fatalf("no bound, start %d: %v", i+1, err)
		}
	}
	none.release()
}
