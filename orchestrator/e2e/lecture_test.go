package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCapacityMatchesWhatDockerAccepts sets a CPU guarantee so that a few
// servers fit on this swarm, reads the capacity the hub reports, starts
// that many (all run), checks that Docker itself refuses one more with the
// same reservation, then asks the hub for one more: that start waits in
// line (not failed) and runs by itself once a server stops.
func TestCapacityMatchesWhatDockerAccepts(t *testing.T) {
	requireE2E(t)
	cpus, err := strconv.Atoi(strings.TrimSpace(sh(t, nil, "docker", "info", "--format", "{{.NCPU}}")))
	if err != nil || cpus < 1 {
		t.Fatalf("docker info NCPU: %v", err)
	}
	// About three servers per CPU-sized node, rounded down to what Docker's
	// nano-CPUs express exactly.
	guarantee := float64(int(float64(cpus)/3*100)) / 100
	h := deployWith(t, "lecture", func(h *hub) string {
		cfg := testConfig(h, defaultLifecycle)
		return strings.Replace(cfg, "cpu_guarantee: 0.05", fmt.Sprintf("cpu_guarantee: %g", guarantee), 1)
	}, "SWARMHUB_NOTEBOOK_IMAGE=swarmhub/tinynotebook:"+imageTag())

	admin := newBrowser(t, h.base)
	if code := admin.login("admin", password); code != http.StatusFound {
		t.Fatalf("admin login: %d", code)
	}
	code, body := admin.api(http.MethodGet, "/hub/api/capacity", nil)
	var capa struct {
		Fit   int `json:"fit"`
		Nodes []struct {
			Hostname string `json:"hostname"`
			Fit      int    `json:"fit"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(body, &capa); code != http.StatusOK || err != nil {
		t.Fatalf("capacity: %d %s", code, body)
	}
	users := []string{"alice", "bob", "carol", "dave", "eve"}
	if capa.Fit < 1 || capa.Fit >= len(users) {
		t.Skipf("with cpu_guarantee %g the hub reports %d servers fit (%s); this test needs 1 to %d", guarantee, capa.Fit, body, len(users)-1)
	}
	t.Logf("cpu_guarantee %g on %d CPUs: %d servers fit (%s)", guarantee, cpus, capa.Fit, body)

	// Every server the hub says fits runs.
	for _, u := range users[:capa.Fit] {
		admin.startServer(u)
	}

	// Docker agrees that no more fit: a service reserving the same CPU
	// stays pending for lack of resources.
	probe := h.instance + "-capacity-probe"
	sh(t, nil, "docker", "service", "create", "--detach", "--name", probe, "--label", "swarmhub.instance="+h.instance,
		"--reserve-cpu", fmt.Sprintf("%g", guarantee),
		"swarmhub/tinynotebook:"+imageTag())
	t.Cleanup(func() { _, _ = shQuiet(nil, "docker", "service", "rm", probe) })
	deadline := time.Now().Add(time.Minute)
	for {
		st := sh(t, nil, "docker", "service", "ps", "--no-trunc", "--format", "{{.CurrentState}} {{.Error}}", probe)
		if strings.Contains(st, "insufficient resources") {
			break
		}
		if strings.Contains(st, "Running") || time.Now().After(deadline) {
			t.Fatalf("Docker placed one more server than the hub's capacity of %d: %s", capa.Fit, st)
		}
		time.Sleep(time.Second)
	}
	sh(t, nil, "docker", "service", "rm", probe)

	// One more start through the hub waits in line instead of failing.
	next := users[capa.Fit]
	code, body = admin.api(http.MethodPost, "/hub/api/users/"+next+"/server", nil)
	var queued struct {
		Line struct {
			Position int  `json:"position"`
			Full     bool `json:"full"`
		} `json:"start_line"`
	}
	if err := json.Unmarshal(body, &queued); code != http.StatusAccepted || err != nil || queued.Line.Position != 1 || !queued.Line.Full {
		t.Fatalf("start over capacity: %d %s; want 202, first in a full line", code, body)
	}
	if code, body := admin.api(http.MethodGet, "/hub/api/line", nil); code != http.StatusOK || !strings.Contains(string(body), `"name":"`+next+`"`) {
		t.Fatalf("the line does not show %s: %d %s", next, code, body)
	}

	// Its progress stream shows the place (and is the sign of life that
	// keeps it in line); once a running server stops, it starts by itself.
	if first := firstProgress(t, admin, next); !strings.Contains(first.Message, "in line") || first.Failed {
		t.Fatalf("first progress event of the queued start: %+v, want its place in line", first)
	}
	admin.stopServer(users[0])
	last, all := admin.follow(next, 4*time.Minute)
	if !last.Ready {
		t.Fatalf("the queued server of %s did not start after a place freed: %+v (all %+v)", next, last, all)
	}
}

// firstProgress reads the first event of user's progress stream.
func firstProgress(t *testing.T, b *browser, user string) progress {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/hub/api/users/"+user+"/server/progress", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var p progress
			if err := json.Unmarshal([]byte(data), &p); err != nil {
				t.Fatalf("bad progress event %q: %v", data, err)
			}
			return p
		}
	}
	t.Fatalf("the progress stream of %s ended without an event: %v", user, sc.Err())
	return progress{}
}
