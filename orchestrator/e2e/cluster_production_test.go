package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClusterProductionStack deploys docker-stack.yml with
// stack/production.yml on the multi-node cluster, from node1 with its
// Docker 20.10 CLI as an operator's manager has it, beside the cluster's dev
// stack: the secrets are external and no dummy-password file exists, Redis
// runs on the one manager labelled swarmhub.redis=true, and the
// orchestrator reads its LDAP search password from the secret, serves HTTPS
// with the certificate from the secrets (HSTS included) and redirects plain
// HTTP. Students' NFS volumes cannot mount in this kernel (no NFS client),
// so no server is started; the orchestrator works on the managers' storage
// root as it does on the export's mount.
func TestClusterProductionStack(t *testing.T) {
	c := upCluster(t)
	stack := "swarmhub-prod-" + randHex(2)
	var ips []string
	for _, n := range c.managers {
		ips = append(ips, c.ips[n])
	}
	pki := newTestPKI(t, ips...)

	// Everything node1 reads lives in the directory every node shares.
	dir := filepath.Join(c.dir, stack)
	root := filepath.Join(dir, "storage")
	for _, d := range []string{filepath.Join(root, "users"), filepath.Join(root, "exchange"), filepath.Join(dir, "stack")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for _, f := range []string{"docker-stack.yml", "stack/production.yml"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot(), f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), raw)
	}
	if _, err := os.Stat(filepath.Join(dir, "stack", "secrets", "dummy-password")); err == nil {
		t.Fatal("a dummy-password file exists in the deploy directory")
	}
	writeFile(t, filepath.Join(dir, "orchestrator.yaml"), fmt.Appendf(nil, `instance: %[1]s
log: {level: info, format: json}
notebook:
  image: swarmhub/notebook-debian:%[2]s
  service_name: "%[1]s-{username}"
  user_volume: "%[1]s-user-{username}"
  exchange_volume: "%[1]s-exchange"
  prepull: false
auth:
  authenticator: ldap
  admin_users: [data8]
  ldap:
    # Refused at once: the test is about the stack, not the directory (and
    # a quick refusal keeps /hub/health's other checks within its deadline).
    server_address: 127.0.0.1
    tls: ldaps
    lookup_dn: true
    bind_dn: cn=swarmhub,ou=services,dc=example,dc=edu
    bind_password_file: /run/secrets/ldap-bind-password
    user_search_base: ou=people,dc=example,dc=edu
lifecycle:
  cull: {enabled: false}
  archive: {enabled: false}
`, stack, imageTag()))

	secrets := map[string]struct {
		env  string
		data []byte
	}{
		stack + "-tls-cert":           {"SWARMHUB_TLS_CERT_SECRET", pki.cert},
		stack + "-tls-key":            {"SWARMHUB_TLS_KEY_SECRET", pki.key},
		stack + "-ldap-bind-password": {"SWARMHUB_LDAP_BIND_PASSWORD_SECRET", []byte("search-" + randHex(8) + "\n")},
	}
	env := []string{
		"SWARMHUB_PORT=443",
		"SWARMHUB_HTTP_PORT=80",
		"SWARMHUB_NFS_SERVER=192.0.2.2",
		"SWARMHUB_NFS_EXPORT=/export/swarmhub",
		"SWARMHUB_STORAGE_ROOT=" + root,
		"SWARMHUB_CONFIG=" + filepath.Join(dir, "orchestrator.yaml"),
		"SWARMHUB_CONFIG_VERSION=" + stack,
		"SWARMHUB_USERS_NETWORK=" + stack + "-users",
		"SWARMHUB_ORCHESTRATOR_IMAGE=swarmhub/orchestrator:" + imageTag(),
		"SWARMHUB_REDIS_IMAGE=swarmhub/redis:" + imageTag(),
	}
	for name, s := range secrets {
		file := filepath.Join(dir, name)
		writeFile(t, file, s.data)
		c.mustSwarm(t, "secret", "create", name, file)
		env = append(env, s.env+"="+name)
	}
	redisNode := c.managers[1]
	c.mustSwarm(t, "node", "update", "--label-add", "swarmhub.redis=true", redisNode)
	t.Cleanup(func() {
		_, _ = c.swarm("stack", "rm", stack)
		// Secrets and the network go once the tasks are gone.
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
			left := 0
			for name := range secrets {
				if _, err := c.swarm("secret", "rm", name); err != nil {
					if out, _ := c.swarm("secret", "ls", "-q", "--filter", "name="+name); strings.TrimSpace(out) != "" {
						left++
					}
				}
			}
			_, _ = c.swarm("network", "rm", stack+"-users")
			_, _ = c.swarm("config", "rm", "swarmhub-config-"+stack)
			if left == 0 {
				break
			}
		}
		_, _ = c.swarm("node", "update", "--label-rm", "swarmhub.redis", redisNode)
	})

	args := []string{"exec", "-w", dir}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, c.managers[0], "docker", "stack", "deploy", "--resolve-image", "never",
		"-c", "docker-stack.yml", "-c", "stack/production.yml", stack)
	sh(t, nil, "docker", args...)

	// running prints the nodes of svc's running tasks.
	running := func(svc string) []string {
		out, _ := c.swarm("service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}", stack+"_"+svc)
		var nodes []string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[1] == "Running" {
				nodes = append(nodes, f[0])
			}
		}
		return nodes
	}

	client := &http.Client{Transport: pki.transport(), Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var base string
	// Anonymous callers get only the overall status (the directory of this
	// test is not reachable, so it may read "degraded"); where Redis runs is
	// checked below.
	var health struct {
		Status string `json:"status"`
	}
	var last string
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(2 * time.Second) {
		if time.Now().After(deadline) {
			ps, _ := c.swarm("service", "ps", "--no-trunc", stack+"_orchestrator", stack+"_redis")
			logs, _ := c.swarm("service", "logs", "--tail", "40", stack+"_orchestrator")
			t.Fatalf("the production stack's orchestrator did not answer over HTTPS (last: %s)\n%s\n%s", last, ps, logs)
		}
		nodes := running("orchestrator")
		if len(nodes) != 1 {
			last = fmt.Sprintf("orchestrator running on %v", nodes)
			continue
		}
		base = "https://" + c.ips[nodes[0]]
		resp, err := client.Get(base + "/hub/health")
		if err != nil {
			last = err.Error()
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&health)
		resp.Body.Close()
		last = fmt.Sprintf("%d %q %v", resp.StatusCode, health.Status, err)
		if resp.StatusCode == http.StatusOK && health.Status != "" {
			if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
				t.Fatalf("health over HTTPS: Strict-Transport-Security %q", hsts)
			}
			break
		}
	}
	t.Logf("HTTPS at %s: %s", base, health.Status)
	// The API answers over HTTPS too (JupyterHub's 403 without a token).
	if resp, err := client.Get(base + "/hub/api/users"); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("API without a token over HTTPS: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}

	host := strings.TrimPrefix(base, "https://")
	resp, err := client.Get("http://" + host + "/hub/login")
	if err != nil {
		t.Fatalf("plain HTTP on port 80: %v", err)
	}
	resp.Body.Close()
	if want := base + "/hub/login"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Fatalf("port 80: %d to %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	if nodes := running("redis"); !slices.Equal(nodes, []string{redisNode}) {
		t.Fatalf("redis runs on %v, want only the labelled %s", nodes, redisNode)
	}
	got := strings.Fields(c.mustSwarm(t, "service", "inspect", "--format",
		"{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}}:{{.File.Name}} {{end}}", stack+"_orchestrator"))
	slices.Sort(got)
	want := []string{stack + "-ldap-bind-password:ldap-bind-password", stack + "-tls-cert:tls-cert.pem", stack + "-tls-key:tls-key.pem"}
	if !slices.Equal(got, want) {
		t.Fatalf("orchestrator secrets %v, want %v (no dummy password)", got, want)
	}
}

// TestProductionStackConfig: docker-stack.yml with stack/production.yml
// passes `docker stack config`, and the merge is the intended one: the
// password slot holds the external LDAP secret (no dummy-password file),
// HTTPS and the redirect are published, Redis is pinned by its label.
func TestProductionStackConfig(t *testing.T) {
	if _, err := shQuiet(nil, "docker", "stack", "config", "--help"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("this docker CLI has no `stack config`: %v", err)
		}
		t.Skip("this docker CLI has no `stack config` (Docker 20.10's); TestClusterProductionStack deploys the files instead")
	}
	env := []string{"SWARMHUB_PORT=443", "SWARMHUB_NFS_SERVER=nfs.example.edu", "SWARMHUB_NFS_EXPORT=/export/swarmhub",
		"SWARMHUB_DUMMY_PASSWORD_FILE=/nonexistent/dummy-password"}
	out := sh(t, env, "docker", "stack", "config", "-c", "docker-stack.yml", "-c", "stack/production.yml")
	for _, want := range []string{
		"target: ldap-bind-password", "name: swarmhub-ldap-bind-password", "name: swarmhub-tls-cert", "name: swarmhub-tls-key",
		"target: tls-cert.pem", "target: tls-key.pem", "external: true",
		"published: 443", "published: 80", "target: 8080",
		"node.labels.swarmhub.redis == true",
		"SWARMHUB_STORAGE_BACKEND: nfs", "SWARMHUB_STORAGE_NFS_SERVER: nfs.example.edu", "SWARMHUB_TLS_CERT_FILE: /run/secrets/tls-cert.pem",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("merged stack lacks %q", want)
		}
	}
	for _, unwanted := range []string{"dummy-password", "published: 8000"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("merged stack still has %q", unwanted)
		}
	}
	if t.Failed() {
		t.Logf("merged stack:\n%s", out)
	}
	// Without the HTTPS port the merge would publish HTTPS twice: refused.
	if out, err := shQuiet([]string{"SWARMHUB_PORT=", "SWARMHUB_NFS_SERVER=x", "SWARMHUB_NFS_EXPORT=/x"},
		"docker", "stack", "config", "-c", "docker-stack.yml", "-c", "stack/production.yml"); err == nil || !strings.Contains(out, "SWARMHUB_PORT") {
		t.Errorf("without SWARMHUB_PORT: err %v\n%s", err, out)
	}
}
