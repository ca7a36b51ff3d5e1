package e2e_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// roleCheck runs scripts/notebook-role-check for role ("instructor" or
// "student") in a kernel of b's own server, with the kernel's Python, and
// returns its report and exit status: the same checks
// scripts/smoke-production-image runs against the production image.
func roleCheck(t *testing.T, b *browser, role string) (string, int) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(), "scripts", "notebook-role-check"))
	if err != nil {
		t.Fatal(err)
	}
	code := fmt.Sprintf(`import base64, subprocess, sys
r = subprocess.run([sys.executable, "-c", base64.b64decode(%q).decode(), %q], capture_output=True, text=True)
print(r.stdout + r.stderr + "exit=%%d" %% r.returncode)`, base64.StdEncoding.EncodeToString(src), role)
	out, err := b.runCode(b.user, code)
	if err != nil {
		t.Fatalf("%s: %v", b.user, err)
	}
	out = strings.TrimSpace(out)
	i := strings.LastIndex(out, "exit=")
	if i < 0 {
		t.Fatalf("%s: no exit status in %q", b.user, out)
	}
	var status int
	if _, err := fmt.Sscanf(out[i:], "exit=%d", &status); err != nil {
		t.Fatalf("%s: exit status in %q: %v", b.user, out, err)
	}
	return out[:i], status
}

// expectRole asserts that b's running server has role's environment, and
// not the other role's.
func expectRole(t *testing.T, b *browser, role string) {
	t.Helper()
	other := map[string]string{"instructor": "student", "student": "instructor"}[role]
	if report, status := roleCheck(t, b, role); status != 0 {
		t.Errorf("%s's server is not set up as an %s's (exit %d):\n%s", b.user, role, status, report)
	}
	if report, status := roleCheck(t, b, other); status != 1 {
		t.Errorf("%s's server passes the %s's checks too (exit %d, want 1):\n%s", b.user, other, status, report)
	}
}

// TestProductionStartHookInTwin runs the production image's start hook and
// nbgrader configuration (images/notebook, copied unchanged into
// swarmhub/notebook-twin) behind the orchestrator: an admin and a non-admin
// instructor get nbgrader's instructor extensions and the course directory,
// a student gets neither; a student added to the instructors group gets them
// at the next start, since the hook resets them on every start.
func TestProductionStartHookInTwin(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	twin := "swarmhub/notebook-twin:" + imageTag()
	h := deployWith(t, "twin", func(h *hub) string {
		cfg := testConfig(h, defaultLifecycle)
		cfg = strings.Replace(cfg, "  allowed_images: [", "  allowed_images: ["+twin+", ", 1)
		return strings.Replace(cfg, "notebook:\n", "notebook:\n  instructor_users: [carol]\n  course_id: twin101\n", 1)
	}, "SWARMHUB_NOTEBOOK_IMAGE="+twin)
	admin := h.admin(t)
	carol, alice := h.student(t, "carol"), h.student(t, "alice")
	for _, b := range []*browser{admin, carol, alice} {
		b.startServer(b.user)
	}
	if got := h.serviceEnv(t, "alice", "NBGRADER_COURSE_ID"); got != "twin101" {
		t.Fatalf("alice's NBGRADER_COURSE_ID is %q, want twin101", got)
	}
	expectRole(t, admin, "instructor")
	expectRole(t, carol, "instructor")
	expectRole(t, alice, "student")
	if t.Failed() {
		return
	}

	if code, body := admin.api(http.MethodPost, "/hub/api/groups/instructors/users", map[string]any{"users": []string{"alice"}}); code != http.StatusOK {
		t.Fatalf("adding alice to the instructors group: %d %s", code, body)
	}
	alice.stopServer("alice")
	deadline := time.Now().Add(2 * time.Minute)
	for admin.state(t, "alice") != "stopped" && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	if s := admin.state(t, "alice"); s != "stopped" {
		t.Fatalf("alice's server did not stop: state %s", s)
	}
	alice.startServer("alice")
	expectRole(t, alice, "instructor")
}

// TestSmokeProductionImageScript runs scripts/smoke-production-image, the
// check an operator runs on the production image where a registry is
// reachable, against the twin, which must pass, and against notebook-server,
// whose start hook enables no nbgrader extension, which must not.
func TestSmokeProductionImageScript(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	out := sh(t, nil, "bash", "scripts/smoke-production-image", "swarmhub/notebook-twin:"+imageTag())
	if !strings.Contains(out, "ok   course directory") || !strings.Contains(out, "ok   no course directory") {
		t.Fatalf("smoke check of the twin did not check the course directories:\n%s", out)
	}
	if out, err := shQuiet(nil, "bash", "scripts/smoke-production-image", "swarmhub/notebook-server:"+imageTag()); err == nil {
		t.Fatalf("smoke check passes notebook-server, whose start hook sets up no role:\n%s", out)
	}
}
