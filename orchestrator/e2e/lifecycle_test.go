package e2e_test

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func (h *hub) admin(t *testing.T) *browser {
	t.Helper()
	b := newBrowser(t, h.base)
	if code := b.login("admin", password); code != http.StatusFound {
		t.Fatalf("admin login: %d", code)
	}
	return b
}

func (h *hub) student(t *testing.T, name string) *browser {
	t.Helper()
	b := newBrowser(t, h.base)
	if code := b.login(name, password); code != http.StatusFound {
		t.Fatalf("%s login: %d", name, code)
	}
	return b
}

type event struct {
	Kind, User, Actor, Message string
}

func (b *browser) events(t *testing.T) []event {
	t.Helper()
	code, body := b.api(http.MethodGet, "/hub/api/events?limit=500", nil)
	if code != http.StatusOK {
		t.Fatalf("events: %d %s", code, body)
	}
	var out struct{ Events []event }
	_ = json.Unmarshal(body, &out)
	return out.Events
}

func countEvents(evs []event, kind, user string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind && e.User == user {
			n++
		}
	}
	return n
}

func (b *browser) state(t *testing.T, user string) string {
	t.Helper()
	code, body := b.api(http.MethodGet, "/hub/api/users/"+user, nil)
	if code != http.StatusOK {
		t.Fatalf("user %s: %d %s", user, code, body)
	}
	var u struct{ State string }
	_ = json.Unmarshal(body, &u)
	return u.State
}

// addReplica starts a second orchestrator beside the stack's, sharing its
// Redis, network, storage and configuration, on its own host port.
func (h *hub) addReplica(t *testing.T) string {
	t.Helper()
	cfgName := strings.TrimSpace(sh(t, nil, "docker", "service", "inspect", "-f",
		"{{range .Spec.TaskTemplate.ContainerSpec.Configs}}{{.ConfigName}}{{end}}", h.name+"_orchestrator"))
	port := freePort(t)
	name := h.name + "_replica2"
	sh(t, nil, "docker", "service", "create", "--detach", "--name", name,
		"--label", "swarmhub.test=e2e", "--network", h.network, "--network", h.name+"_backend",
		"--config", "source="+cfgName+",target=/etc/swarmhub/orchestrator.yaml",
		"--mount", "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
		"--mount", "type=bind,source="+h.root+",target=/srv/swarmhub",
		"--publish", fmt.Sprintf("mode=host,target=8000,published=%d", port),
		"--env", "SWARMHUB_NOTEBOOK_NETWORK="+h.network,
		"--env", "SWARMHUB_STORAGE_HOSTPATH_ROOT="+h.root,
		"swarmhub/orchestrator:"+imageTag())
	t.Cleanup(func() { _, _ = shQuiet(nil, "docker", "service", "rm", name) })
	r := &hub{name: name, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	r.waitHealthy(t, 2*time.Minute)
	return r.base
}

// TestCull: an idle server is stopped once (two replicas running), one with
// proxied traffic is not, one whose kernel is busy is not, and the culled
// workspace is intact.
func TestCull(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "cull", `lifecycle:
  cull: {enabled: true, schedule: "@every 5s", timeout: 45s}
  archive: {enabled: false}
`)
	h.addReplica(t)
	admin := h.admin(t)
	alice, bob, carol := h.student(t, "alice"), h.student(t, "bob"), h.student(t, "carol")
	var wg sync.WaitGroup
	for _, b := range []*browser{alice, bob, carol} {
		wg.Add(1)
		go func(b *browser) { defer wg.Done(); b.startServer(b.user) }(b)
	}
	wg.Wait()
	code, _ := alice.api(http.MethodPut, "/user/alice/api/contents/keep.txt", map[string]string{"type": "file", "format": "text", "content": "kept"})
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("write: %d", code)
	}
	// bob keeps using his server through the proxy from now on.
	keepBusy(t, bob, "/api/contents", 3*time.Second)
	// carol's kernel sleeps for five minutes: working, not idle. Wait until
	// Jupyter reports it busy. On a loaded machine a fresh kernel can stay
	// "starting" for minutes (slow start-up, or Jupyter missed its status
	// messages); the culler counts that as active too, so after 75 s a
	// kernel still starting is accepted (and logged). A kernel that could
	// not be reached is replaced, at most twice, with the error shown.
	type attempt struct {
		err     chan error
		started time.Time
	}
	runBusy := func() attempt {
		a := attempt{err: make(chan error, 1), started: time.Now()}
		go func() {
			_, err := carol.runCodeFor("carol", "import time\nfor _ in range(300): time.sleep(1)", 6*time.Minute)
			a.err <- err
		}()
		return a
	}
	cur := runBusy()
	for attempts := 1; ; {
		_, body, _ := carol.apiErr(http.MethodGet, "/user/carol/api/kernels", nil)
		state := kernelState(body)
		if state == "busy" {
			break
		}
		if state == "starting" && time.Since(cur.started) > 75*time.Second {
			t.Logf("carol's kernel is still reported as starting after 75 s (%s); the culler counts that as active", body)
			break
		}
		select {
		case err := <-cur.err:
			if attempts == 3 {
				logs := ""
				if ids := h.servicesOf(t, "carol"); len(ids) > 0 {
					logs, _ = shQuiet(nil, "docker", "service", "logs", "--tail", "40", ids[0])
				}
				t.Fatalf("carol's kernel failed %d times, last: %v\nher server's log:\n%s", attempts, err, logs)
			}
			t.Logf("carol's kernel, attempt %d, ended early (%v); trying a new one", attempts, err)
			attempts++
			cur = runBusy()
		default:
		}
		if time.Since(cur.started) > 3*time.Minute {
			t.Fatalf("carol's kernel is neither busy nor starting after 3 minutes: %s", body)
		}
		time.Sleep(time.Second)
	}
	working := time.Now() // carol's last proxied request
	deadline := time.Now().Add(3 * time.Minute)
	for admin.state(t, "alice") != "stopped" && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
	}
	if s := admin.state(t, "alice"); s != "stopped" {
		t.Fatalf("idle server not culled: state %s", s)
	}
	// Give both replicas several more cull periods to misbehave, and let
	// carol's proxied traffic age well past the 45 s timeout: only her
	// working kernel keeps her server now.
	time.Sleep(30 * time.Second)
	if rest := time.Until(working.Add(45*time.Second + 15*time.Second)); rest > 0 {
		time.Sleep(rest)
	}
	for _, u := range []string{"bob", "carol"} {
		if s := admin.state(t, u); s != "running" {
			t.Fatalf("%s was culled (state %s) although active; events: %+v", u, s, admin.events(t))
		}
	}
	evs := admin.events(t)
	if n := countEvents(evs, "cull", "alice"); n != 1 {
		t.Fatalf("want exactly one cull event for alice with two replicas, got %d (%+v)", n, evs)
	}
	if n := countEvents(evs, "stop", "alice"); n != 1 {
		t.Fatalf("want exactly one stop event for alice, got %d", n)
	}
	if n := len(h.servicesOf(t, "alice")); n != 0 {
		t.Fatalf("culled server left %d services", n)
	}
	b, err := os.ReadFile(filepath.Join(h.root, "users", "alice", "keep.txt"))
	if err != nil || string(b) != "kept" {
		t.Fatalf("workspace after cull: %q %v", b, err)
	}
}

// kernelState is the execution_state of a /api/kernels answer: "busy" or
// "starting" if any kernel is, else the first one's; "" when there is none.
func kernelState(body []byte) string {
	var ks []struct {
		State string `json:"execution_state"`
	}
	if json.Unmarshal(body, &ks) != nil || len(ks) == 0 {
		return ""
	}
	// With several kernels the busiest speaks for the server.
	for _, want := range []string{"busy", "starting"} {
		for _, k := range ks {
			if k.State == want {
				return want
			}
		}
	}
	return ks[0].State
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chown(path, 1000, 100)
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestArchiveThroughTheAPI: a workspace with .cache and a 50 MB file is
// archived, downloaded, checked file by file, and restored byte for byte.
func TestArchiveThroughTheAPI(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "archive", "")
	admin := h.admin(t)
	alice := h.student(t, "alice")
	alice.startServer("alice") // creates users/alice with the right owner
	ws := filepath.Join(h.root, "users", "alice")
	big := make([]byte, 50<<20)
	_, _ = rand.Read(big)
	files := map[string][]byte{
		"big.bin":               big,
		"notebooks/hw1.ipynb":   []byte(`{"cells": [], "nbformat": 4}`),
		".cache/pip/junk.whl":   []byte("cache, not archived"),
		"notebooks/.cache/x":    []byte("nested cache"),
		"notes/über-ünïcode.md": []byte("# unicode name"),
	}
	for p, b := range files {
		writeFile(t, filepath.Join(ws, p), b)
	}
	code, body := admin.api(http.MethodPost, "/hub/api/archives", map[string]string{"user": "alice"})
	if code != http.StatusCreated {
		t.Fatalf("archive alice: %d %s", code, body)
	}
	var m struct {
		Run     string
		Entries []struct {
			User, SHA256, Error string
			Size                int64
		}
	}
	_ = json.Unmarshal(body, &m)
	if m.Run == "" || len(m.Entries) != 1 || m.Entries[0].Error != "" {
		t.Fatalf("manifest: %s", body)
	}

	req, _ := http.NewRequest(http.MethodGet, h.base+"/hub/api/archives/"+m.Run+"/alice.tar.gz", nil)
	resp, err := admin.c.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %v %v", err, resp)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := sha(raw); got != m.Entries[0].SHA256 {
		t.Fatalf("downloaded archive sha256 %s, manifest says %s", got, m.Entries[0].SHA256)
	}
	sum, err := os.ReadFile(filepath.Join(h.root, "archives", m.Run, "alice.tar.gz.sha256"))
	if err != nil || !strings.HasPrefix(string(sum), m.Entries[0].SHA256) {
		t.Fatalf(".sha256 file: %q %v", sum, err)
	}
	zr, err := gzip.NewReader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	got := map[string]string{}
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(hd.Name, ".cache") {
			t.Fatalf("archive contains %s", hd.Name)
		}
		if hd.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			got[strings.TrimPrefix(hd.Name, "./")] = sha(b)
		}
	}
	for p, b := range files {
		if strings.Contains(p, ".cache") {
			continue
		}
		if got[p] != sha(b) {
			t.Fatalf("%s: archived sha %q, want %q (archive has %v)", p, got[p], sha(b), got)
		}
	}

	code, body = admin.api(http.MethodPost, "/hub/api/archives/"+m.Run+"/alice/restore", nil)
	if code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, body)
	}
	var rr struct {
		RestoredTo string `json:"restored_to"`
	}
	_ = json.Unmarshal(body, &rr)
	back, err := os.ReadFile(filepath.Join(ws, rr.RestoredTo, "big.bin"))
	if err != nil || sha(back) != sha(big) {
		t.Fatalf("restored big.bin differs: %v", err)
	}
	code, _ = admin.api(http.MethodPost, "/hub/api/archives/"+m.Run+"/alice/restore", nil)
	if code != http.StatusConflict {
		t.Fatalf("second restore without overwrite: want 409, got %d", code)
	}

	// The student downloads her own workspace; another student cannot.
	req, _ = http.NewRequest(http.MethodGet, h.base+"/hub/api/users/alice/workspace.tar.gz", nil)
	resp, err = alice.c.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("own workspace download: %v %v", err, resp)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n < 40<<20 {
		t.Fatalf("workspace download only %d bytes", n)
	}
	bob := h.student(t, "bob")
	if code, _ := bob.api(http.MethodGet, "/hub/api/users/alice/workspace.tar.gz", nil); code != http.StatusForbidden {
		t.Fatalf("bob downloading alice's workspace: want 403, got %d", code)
	}
}

// TestImportThenLogin: the current setup's volume layout imports into the
// storage root, a second run copies nothing, and the student sees the files.
func TestImportThenLogin(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "import", "")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "jupyterhub-user-alice", "_data", "old-homework.ipynb"), []byte(`{"nbformat": 4, "cells": []}`))
	writeFile(t, filepath.Join(src, "jupyterhub-user-alice", "_data", "data", "table.csv"), []byte("a,b\n1,2\n"))
	writeFile(t, filepath.Join(src, "exchange", "_data", "course101", "inbound", "x.txt"), []byte("submitted"))
	out := sh(t, nil, "bash", "scripts/import-volumes", "--from", src, "--to", h.root, "--map-names")
	t.Log(out)
	again := sh(t, nil, "bash", "scripts/import-volumes", "--from", src, "--to", h.root, "--map-names")
	if !strings.Contains(again, "copied 0") && !strings.Contains(again, "0 copied") {
		t.Fatalf("second import changed something:\n%s", again)
	}
	alice := h.student(t, "alice")
	alice.startServer("alice")
	code, body := alice.api(http.MethodGet, "/user/alice/api/contents/data/table.csv", nil)
	if code != http.StatusOK || !strings.Contains(string(body), "a,b") {
		t.Fatalf("imported file through Jupyter: %d %s", code, body)
	}
	out2, err := alice.runCode("alice", "print(open('/home/jovyan/.exchange/course101/inbound/x.txt').read())")
	if err != nil || strings.TrimSpace(out2) != "submitted" {
		t.Fatalf("imported exchange: %q %v", out2, err)
	}
}

// TestReconcile: a labelled service made behind the orchestrator's back is
// adopted; a deleted user's service is removed; a server removed by hand
// can be started again.
func TestReconcile(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deploy(t, "reconcile", "")
	admin := h.admin(t)
	token := randHex(16)
	mk := func(user string) {
		sh(t, nil, "docker", "service", "create", "--detach", "--name", h.instance+"-manual-"+user,
			"--label", "swarmhub.user="+user, "--label", "swarmhub.managed=true", "--label", "swarmhub.instance="+h.instance,
			"--network", h.network, "--endpoint-mode", "dnsrr",
			"--env", "JUPYTERHUB_USER="+user, "--env", "JUPYTER_TOKEN="+token,
			"--env", "SWARMHUB_BASE_URL=/user/"+user+"/", "--env", "SWARMHUB_PORT=8888",
			"swarmhub/tinynotebook:"+imageTag())
	}
	mk("dave")
	admin.api(http.MethodPost, "/hub/api/users", map[string]any{"usernames": []string{"eve"}})
	if code, body := admin.api(http.MethodDelete, "/hub/api/users/eve", nil); code != http.StatusNoContent {
		t.Fatalf("delete eve: %d %s", code, body)
	}
	mk("eve")
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		admin.api(http.MethodPost, "/hub/api/reconcile", nil)
		if admin.state(t, "dave") == "running" && len(h.servicesOf(t, "eve")) == 0 {
			break
		}
		time.Sleep(3 * time.Second)
	}
	if s := admin.state(t, "dave"); s != "running" {
		t.Fatalf("dave's service was not adopted: state %s", s)
	}
	if n := len(h.servicesOf(t, "eve")); n != 0 {
		t.Fatalf("deleted user's service still there (%d)", n)
	}
	dave := h.student(t, "dave")
	if code, body := dave.api(http.MethodGet, "/user/dave/api/status", nil); code != http.StatusOK {
		t.Fatalf("adopted server through the proxy: %d %s", code, body)
	}

	alice := h.student(t, "alice")
	alice.startServer("alice")
	sh(t, nil, "docker", append([]string{"service", "rm"}, h.servicesOf(t, "alice")...)...)
	admin.api(http.MethodPost, "/hub/api/reconcile", nil)
	alice.startServer("alice")
	if code, _ := alice.api(http.MethodGet, "/user/alice/api/status", nil); code != http.StatusOK {
		t.Fatalf("restart after manual removal: %d", code)
	}
	if n := len(h.servicesOf(t, "alice")); n != 1 {
		t.Fatalf("alice has %d services", n)
	}
}
