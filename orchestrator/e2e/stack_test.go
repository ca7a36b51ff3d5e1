// Package e2e_test drives swarmhub end to end: the real docker-stack.yml
// deployed on the local swarm, the orchestrator on the overlay network,
// real Jupyter servers, and a client on the host port like a browser.
package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const password = "e2e-password-not-secret"

// hub is one deployed test stack. Each test deploys its own, with its own
// stack name, network, instance label and port, so tests (and developers)
// can run them side by side.
type hub struct {
	name     string // stack name
	network  string // users overlay network
	instance string // swarmhub.instance label of its user services
	port     int
	base     string
	root     string // storage root on the host (hostpath backend)
	env      []string
	client   *http.Client // for base; nil: http.DefaultClient
}

// freePort asks the kernel for a port that is free right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func imageTag() string {
	if t := os.Getenv("SWARMHUB_TEST_IMAGES_TAG"); t != "" {
		return t
	}
	return "dev"
}

func requireE2E(t testing.TB) {
	if os.Getenv("SWARMHUB_E2E") == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but SWARMHUB_E2E is not: run the suite through scripts/test (go tool task test)")
		}
		t.Skip("end-to-end tests need the local swarm and images: run `go tool task test` (sets SWARMHUB_E2E=1)")
	}
}

func sh(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func shQuiet(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// testConfig is the orchestrator configuration of the e2e stack.
func testConfig(h *hub, extra string) string {
	tag := imageTag()
	return fmt.Sprintf(`instance: %[4]s
public_url: %[7]s
log: {level: debug, format: json}
redis: {address: "redis:6379"}
notebook:
  image: swarmhub/notebook-debian:%[1]s
  allowed_images: [swarmhub/notebook-debian:%[1]s, swarmhub/notebook-server:%[1]s, swarmhub/notebook-singleuser:%[1]s, swarmhub/tinynotebook:%[1]s, swarmhub/does-not-exist:nope]
  image_contracts: {"swarmhub/notebook-singleuser:%[1]s": jupyterhub-singleuser}
  mem_limit: 768M
  mem_guarantee: 64M
  cpu_limit: 1
  cpu_guarantee: 0.05
  network: %[3]s
  # Service and volume names are per swarm, not per stack: give each test
  # stack its own.
  service_name: "%[4]s-{username}"
  user_volume: "%[4]s-user-{username}"
  exchange_volume: "%[4]s-exchange"
  start_timeout: 120s
  concurrent_spawn_limit: 10
storage:
  backend: hostpath
  mount: /srv/swarmhub
  hostpath: {root: %[2]s}
auth:
  authenticator: dummy
  dummy: {password: %[5]s}
  admin_users: [admin]
  allowed_users: [alice, bob, carol, dave, eve]
  admin_access: true
%[6]s`, tag, h.root, h.network, h.instance, password, extra, h.base)
}

// defaultLifecycle keeps scheduled jobs out of tests that do not test them;
// a test that passes its own "lifecycle:" section replaces it.
const defaultLifecycle = `lifecycle:
  cull: {enabled: false}
  archive: {enabled: false}
  redis_snapshot: {enabled: false}
`

// deploy brings a stack named swarmhub-e2e-NAME-XXXX up with the
// repository's docker-stack.yml and waits until the orchestrator answers on
// its host port. extraConfig is appended to the YAML configuration.
func deploy(t *testing.T, name string, extraConfig string) *hub {
	t.Helper()
	if !strings.Contains(extraConfig, "lifecycle:") {
		extraConfig = defaultLifecycle + extraConfig
	}
	return deployWith(t, name, func(h *hub) string { return testConfig(h, extraConfig) })
}

// deployWith is deploy with the whole configuration under the test's
// control: config gets the hub (storage root, network, instance) before the
// stack starts and returns the YAML; it may put files under h.root, which
// the orchestrator sees at /srv/swarmhub.
func deployWith(t *testing.T, name string, config func(h *hub) string, env ...string) *hub {
	t.Helper()
	return deployStack(t, name, stackOptions{}, config, env...)
}

// stackOptions are what deployStack adds to deployWith.
type stackOptions struct {
	overrides []string     // compose files deployed after docker-stack.yml
	prepare   func(h *hub) // adjusts the hub (base, client) before config runs
}

// deployStack is deployWith with the extras of o.
func deployStack(t *testing.T, name string, o stackOptions, config func(h *hub) string, env ...string) *hub {
	t.Helper()
	port := freePort(t)
	root, err := os.MkdirTemp("", "swarmhub-e2e-root-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(root, 0o755)
	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "orchestrator.yaml")
	tag := imageTag()
	// A suffix per run: the same test run twice at once (a developer beside
	// CI on one machine) must not share services, networks or volumes.
	stack := "swarmhub-e2e-" + name + "-" + randHex(2)
	h := &hub{name: stack, network: stack + "-users", instance: stack, port: port,
		base: fmt.Sprintf("http://127.0.0.1:%d", port), root: root}
	if o.prepare != nil {
		o.prepare(h)
	}
	// Cleanups run last-in first-out: volumes go after teardown has removed
	// the services that hold them.
	t.Cleanup(func() { removeVolumesWhenFree(h) })
	t.Cleanup(func() { h.teardown(t) })
	if err := os.WriteFile(cfgPath, []byte(config(h)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The stack file always mounts the dummy password secret.
	pwPath := filepath.Join(cfgDir, "dummy-password")
	if err := os.WriteFile(pwPath, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.env = []string{
		fmt.Sprintf("SWARMHUB_PORT=%d", port),
		"SWARMHUB_CONFIG=" + cfgPath,
		"SWARMHUB_CONFIG_VERSION=" + randHex(6),
		"SWARMHUB_DUMMY_PASSWORD_FILE=" + pwPath,
		"SWARMHUB_DUMMY_PASSWORD_VERSION=" + randHex(6),
		"SWARMHUB_STORAGE_ROOT=" + root,
		"SWARMHUB_USERS_NETWORK=" + h.network,
		"SWARMHUB_ORCHESTRATOR_IMAGE=swarmhub/orchestrator:" + tag,
		"SWARMHUB_REDIS_IMAGE=swarmhub/redis:" + tag,
	}
	h.env = append(h.env, env...)
	args := []string{"stack", "deploy", "--resolve-image", "never", "-c", "docker-stack.yml"}
	for _, f := range o.overrides {
		args = append(args, "-c", f)
	}
	sh(t, h.env, "docker", append(args, h.name)...)
	h.waitHealthy(t, 3*time.Minute)
	return h
}

// removeVolumesWhenFree removes the stack's volumes once no task holds them
// any more: removed while a container is still stopping, a volume survives
// and a later stack of the same name would bind its stale directory.
func removeVolumesWhenFree(h *hub) {
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		left := 0
		for _, label := range []string{"swarmhub.instance=" + h.instance, "com.docker.stack.namespace=" + h.name} {
			vols, _ := shQuiet(nil, "docker", "volume", "ls", "-q", "--filter", "label="+label)
			for _, v := range strings.Fields(vols) {
				if _, err := shQuiet(nil, "docker", "volume", "rm", v); err != nil {
					left++
				}
			}
		}
		if left == 0 {
			return
		}
	}
}

// deployTiny is deploy with the tiny test server as every user's default
// image: for tests about the hub, not about Jupyter.
func deployTiny(t *testing.T, name string, extraConfig string) *hub {
	t.Helper()
	if !strings.Contains(extraConfig, "lifecycle:") {
		extraConfig = defaultLifecycle + extraConfig
	}
	return deployWith(t, name, func(h *hub) string { return testConfig(h, extraConfig) },
		"SWARMHUB_NOTEBOOK_IMAGE=swarmhub/tinynotebook:"+imageTag())
}

func (h *hub) waitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		client := h.client
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Get(h.base + "/hub/health?strict=1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(time.Second)
	}
	ps, _ := shQuiet(nil, "docker", "service", "ps", "--no-trunc", h.name+"_orchestrator")
	logs, _ := shQuiet(nil, "docker", "service", "logs", "--tail", "50", h.name+"_orchestrator")
	t.Fatalf("orchestrator not healthy within %s (last: %s)\n%s\n%s", timeout, last, ps, logs)
}

// teardown removes the stack and every user service, volume and network of
// this instance, even when the test failed.
func (h *hub) teardown(t testing.TB) {
	if t.Failed() {
		if logs, err := shQuiet(nil, "docker", "service", "logs", "--tail", "300", h.name+"_orchestrator"); err == nil {
			dir := filepath.Join(repoRoot(), "orchestrator", "e2e", "artifacts")
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, "orchestrator-"+strings.ReplaceAll(t.Name(), "/", "_")+".log"), []byte(logs), 0o644)
		}
		// The user servers' own logs (Jupyter logs every request it
		// answered): the proxy logs none of them.
		ids, _ := shQuiet(nil, "docker", "service", "ls", "-q", "--filter", "label=swarmhub.instance="+h.instance)
		for _, id := range strings.Fields(ids) {
			if logs, err := shQuiet(nil, "docker", "service", "logs", "--timestamps", "--tail", "300", id); err == nil {
				dir := filepath.Join(repoRoot(), "orchestrator", "e2e", "artifacts")
				_ = os.WriteFile(filepath.Join(dir, "userserver-"+strings.ReplaceAll(t.Name(), "/", "_")+"-"+id+".log"), []byte(logs), 0o644)
			}
		}
	}
	_, _ = shQuiet(nil, "docker", "stack", "rm", h.name)
	h.removeUserServices()
	// The stack's network and volumes go once their tasks are gone.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := shQuiet(nil, "docker", "network", "ls", "-q", "--filter", "name="+h.network)
		if strings.TrimSpace(out) == "" {
			break
		}
		_, _ = shQuiet(nil, "docker", "network", "rm", h.network)
		time.Sleep(time.Second)
	}
	// Once more: an orchestrator still shutting down after `stack rm` could
	// create a pre-pull job after the first sweep (one was left behind).
	h.removeUserServices()
	// Volumes go in removeVolumesWhenFree, once no stopping task holds them.
	// Workspaces were written by uid 1000 inside containers; root removes them.
	_ = os.RemoveAll(h.root)
}

func (h *hub) removeUserServices() {
	ids, _ := shQuiet(nil, "docker", "service", "ls", "-q", "--filter", "label=swarmhub.instance="+h.instance)
	pre, _ := shQuiet(nil, "docker", "service", "ls", "-q", "--filter", "label=swarmhub.prepull="+h.instance)
	if f := strings.Fields(ids + " " + pre); len(f) > 0 {
		_, _ = shQuiet(nil, "docker", append([]string{"service", "rm"}, f...)...)
	}
}

// servicesOf lists the swarm services labelled for user.
func (h *hub) servicesOf(t testing.TB, user string) []string {
	t.Helper()
	out := sh(t, nil, "docker", "service", "ls", "-q", "--filter", "label=swarmhub.user="+user, "--filter", "label=swarmhub.instance="+h.instance)
	return strings.Fields(out)
}

func (h *hub) killOrchestrator(t testing.TB) {
	t.Helper()
	out := sh(t, nil, "docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+h.name+"_orchestrator")
	ids := strings.Fields(out)
	if len(ids) == 0 {
		t.Fatal("no orchestrator container to kill")
	}
	sh(t, nil, "docker", append([]string{"kill"}, ids...)...)
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
