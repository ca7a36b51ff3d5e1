package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestCourseData: with notebook.course_data on, course/ under the storage
// root is in every server at /home/jovyan/course. A student reads it but
// cannot change it, not even a file their uid owns (the mount is
// read-only); an instructor (carol, in the instructors group through
// notebook.instructor_users) writes it, and the student reads that at once.
// Every file arrives while the servers run: the mount is live.
func TestCourseData(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	const limit = "  concurrent_spawn_limit: 10\n"
	h := deployWith(t, "course", func(h *hub) string {
		cfg := testConfig(h, defaultLifecycle)
		if !strings.Contains(cfg, limit) {
			t.Fatalf("the test configuration no longer has %q to add course data after", limit)
		}
		// The volume name is per swarm: each test stack gets its own.
		return strings.Replace(cfg, limit, limit+
			"  course_data: {enabled: true, volume: "+h.instance+"-course}\n"+
			"  instructor_users: [carol]\n", 1)
	})
	alice, carol := h.student(t, "alice"), h.student(t, "carol")
	var wg sync.WaitGroup
	for _, b := range []*browser{alice, carol} {
		wg.Add(1)
		go func(b *browser) { defer wg.Done(); b.startServer(b.user) }(b)
	}
	wg.Wait()

	dir := filepath.Join(h.root, "course")
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		t.Fatalf("the orchestrator did not create course/ under the storage root: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 100 {
		t.Errorf("course/ is owned by %d:%d, want 1000:100 (jovyan:users)", st.Uid, st.Gid)
	}
	// Owned by jovyan like everything the servers write, so only the
	// read-only mount can stop alice.
	writeFile(t, filepath.Join(dir, "syllabus.txt"), []byte("week 1: pandas"))

	t.Run("a student reads the course data", func(t *testing.T) {
		out, err := alice.runCode("alice", "print(open('/home/jovyan/course/syllabus.txt').read())")
		if err != nil || strings.TrimSpace(out) != "week 1: pandas" {
			t.Fatalf("alice read %q, %v", out, err)
		}
	})

	t.Run("a student cannot change it", func(t *testing.T) {
		_, err := alice.runCode("alice", "open('/home/jovyan/course/from-alice.txt', 'w').write('x')")
		if err == nil || !strings.Contains(err.Error(), "Read-only file system") {
			t.Fatalf("alice creating a file in the course data: %v, want Read-only file system", err)
		}
		out, err := alice.runCode("alice", `
import os
for what, op in [
    ("append", lambda: open('/home/jovyan/course/syllabus.txt', 'a').write('x')),
    ("remove", lambda: os.remove('/home/jovyan/course/syllabus.txt')),
    ("mkdir", lambda: os.mkdir('/home/jovyan/course/mine')),
]:
    try:
        op()
        print(what, "allowed")
    except OSError as e:
        print(what, e.strerror)
`)
		if err != nil {
			t.Fatal(err)
		}
		for _, what := range []string{"append", "remove", "mkdir"} {
			if !strings.Contains(out, what+" Read-only file system") {
				t.Errorf("alice's %s in the course data: want Read-only file system; the cell printed:\n%s", what, out)
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, "syllabus.txt")); err != nil || string(b) != "week 1: pandas" {
			t.Errorf("syllabus.txt after alice's attempts: %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "from-alice.txt")); !os.IsNotExist(err) {
			t.Errorf("alice's file reached course/: %v", err)
		}
	})

	t.Run("an instructor writes what the student then reads", func(t *testing.T) {
		if _, err := carol.runCode("carol", "open('/home/jovyan/course/notes.txt', 'w').write('read chapter 2')"); err != nil {
			t.Fatalf("carol writing the course data: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "read chapter 2" {
			t.Fatalf("carol's file under the storage root: %q, %v", b, err)
		}
		out, err := alice.runCode("alice", "print(open('/home/jovyan/course/notes.txt').read())")
		if err != nil || strings.TrimSpace(out) != "read chapter 2" {
			t.Fatalf("alice read %q, %v from carol's file", out, err)
		}
	})
}
