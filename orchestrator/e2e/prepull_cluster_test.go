package e2e_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPrepullCluster is issue 17's pre-pull on a real multi-node swarm that
// pulls from a registry (scripts/cluster-up's swarmhub-registry): a fresh
// image, pushed for this run, is started cold on one worker (it downloads
// the image's blobs during the start), then an admin switches to it, the
// other worker shows it pulling and then present in GET /hub/api/image, and
// a start there downloads nothing. The registry's access log tells which
// node downloaded which blob and when.
func TestPrepullCluster(t *testing.T) {
	c := upCluster(t)
	env := readClusterEnv(t)
	registry, probe := env["SWARMHUB_CLUSTER_REGISTRY_CONTAINER"], env["SWARMHUB_CLUSTER_PROBE_IMAGE"]
	if registry == "" || probe == "" {
		t.Fatal("cluster.env names no registry: the cluster was made by an older scripts/cluster-up")
	}
	tag := os.Getenv("SWARMHUB_TAG")
	if tag == "" {
		tag = "dev"
	}
	coldNode, warmNode := c.workers[0], c.workers[1]
	run := randHex(2)
	admin := c.student(t, "admin", 0)
	coldUser := c.student(t, "p"+run+"cold", 0)
	warmUser := c.student(t, "p"+run+"warm", 1)

	id := pushProbe(t, c, probe, "swarmhub/tinynotebook:"+tag)
	for _, n := range c.workers {
		if hasImage(n, id) {
			t.Fatalf("%s already has the probe image %s pushed for this run", n, id)
		}
	}

	// Servers go only where the test says: every other node is labelled
	// swarmhub.servers=no, which the cluster's placement constraint and the
	// pre-pull service both honour.
	all := append(slices.Clone(c.managers), c.workers...)
	serversOnly := func(node string) {
		for _, n := range all {
			if n == node {
				_, _ = c.swarm("node", "update", "--label-rm", "swarmhub.servers", n)
			} else {
				c.mustSwarm(t, "node", "update", "--label-add", "swarmhub.servers=no", n)
			}
		}
	}
	t.Cleanup(func() {
		for _, n := range all {
			_, _ = c.swarm("node", "update", "--label-rm", "swarmhub.servers", n)
		}
	})

	var info struct {
		Image   string `json:"image"`
		Default string `json:"default"`
		Nodes   []struct {
			Node, Image, State, Reason, Progress string
		} `json:"nodes"`
		NodesError string `json:"nodes_error"`
	}
	readImage := func() {
		t.Helper()
		code, body := admin.api(http.MethodGet, "/hub/api/image", nil)
		if code != http.StatusOK {
			t.Fatalf("GET /hub/api/image: %d %s", code, body)
		}
		info.Nodes, info.NodesError = nil, ""
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatalf("GET /hub/api/image: %v: %s", err, body)
		}
	}
	stateOf := func(node string) (image, state string) {
		for _, n := range info.Nodes {
			if n.Node == node {
				return n.Image, n.State
			}
		}
		return "", "absent"
	}
	readImage()
	defaultImage := info.Default
	t.Cleanup(func() {
		admin.api(http.MethodPut, "/hub/api/image", map[string]string{"image": defaultImage})
		for _, u := range []*student{coldUser, warmUser} {
			admin.api(http.MethodDelete, "/hub/api/users/"+u.user+"/server", nil)
		}
	})

	// start asks for user's server (as who) and returns the time to ready.
	start := func(who *student, user *student, body any) time.Duration {
		t.Helper()
		began := time.Now()
		for i := 0; ; i++ {
			code, out := who.api(http.MethodPost, "/hub/api/users/"+user.user+"/server", body)
			if code == http.StatusTooManyRequests && i < 60 {
				time.Sleep(2 * time.Second)
				continue
			}
			if code != http.StatusAccepted && code != http.StatusCreated {
				t.Fatalf("start %s: %d %s", user.user, code, out)
			}
			break
		}
		if last, all := user.follow(user.user, 4*time.Minute); !last.Ready {
			t.Fatalf("server of %s did not start: %+v (all: %+v)", user.user, last, all)
		}
		return time.Since(began)
	}
	placedOn := func(user, node string) {
		t.Helper()
		if _, nodes := c.serverNodes(t, user); len(nodes) != 1 || nodes[0] != node {
			t.Fatalf("%s's server runs on %v, want %s", user, nodes, node)
		}
	}

	// The browsers report to t, so the steps run in t, one after another.
	// 1. A start on a worker without the image downloads it.
	serversOnly(coldNode)
	since := time.Now()
	// Only an admin picks the image of one start; the current image
	// (and so the pre-pull service) stays on the default.
	cold := start(admin, coldUser, map[string]string{"image": probe})
	placedOn(coldUser.user, coldNode)
	blobs := blobDownloads(t, registry, c.ips[coldNode], since)
	if blobs == 0 {
		t.Fatalf("%s started %s without downloading a blob from the registry: the test cannot tell a pull", coldNode, probe)
	}
	if !hasImage(coldNode, id) {
		t.Fatalf("%s runs %s but does not list image %s", coldNode, probe, id)
	}
	t.Logf("FIGURE prepull_cold_start_seconds=%.1f", cold.Seconds())
	t.Logf("FIGURE prepull_cold_start_blobs_downloaded=%d", blobs)
	// Stopped before the labels move: swarm would otherwise move the
	// server to the other worker, which would pull the image.
	admin.stopServer(coldUser.user)

	// 2. The admin switches the image: the other worker pulls it, then
	// shows it present.
	serversOnly(warmNode)
	readImage()
	if img, st := stateOf(warmNode); img == probe && st != "unknown" {
		t.Fatalf("before the switch %s already reports %s for %s", warmNode, st, probe)
	}
	if hasImage(warmNode, id) {
		t.Fatalf("%s has %s before the switch", warmNode, id)
	}
	switched := time.Now()
	code, body := admin.api(http.MethodPut, "/hub/api/image", map[string]string{"image": probe})
	if code != http.StatusOK {
		t.Fatalf("PUT /hub/api/image: %d %s", code, body)
	}
	var seen []string
	for deadline := time.Now().Add(4 * time.Minute); ; {
		readImage()
		img, st := stateOf(warmNode)
		if img != probe {
			st = "other image " + img
		}
		if len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
		}
		if st == "present" {
			break
		}
		if st == "failed" || time.Now().After(deadline) {
			t.Fatalf("%s never showed %s present; states seen: %v (%+v, %s)", warmNode, probe, seen, info.Nodes, info.NodesError)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("states of %s after the switch: %v", warmNode, seen)
	t.Logf("FIGURE prepull_switch_to_present_seconds=%.1f", time.Since(switched).Seconds())
	if !slices.Contains(seen, "pulling") {
		t.Fatalf("%s went to present without ever showing pulling: %v", warmNode, seen)
	}
	if !hasImage(warmNode, id) {
		t.Fatalf("GET /hub/api/image says %s is present on %s, but the node does not list %s", probe, warmNode, id)
	}

	// 3. A start on the pre-pulled worker downloads nothing.
	since = time.Now()
	warm := start(warmUser, warmUser, nil)
	placedOn(warmUser.user, warmNode)
	if n := blobDownloads(t, registry, c.ips[warmNode], since); n != 0 {
		t.Fatalf("%s downloaded %d blobs from the registry during a start after the pre-pull", warmNode, n)
	}
	t.Logf("FIGURE prepull_warm_start_seconds=%.1f", warm.Seconds())
	t.Logf("FIGURE prepull_cold_over_warm_ratio=%.2f", cold.Seconds()/warm.Seconds())
}

// pushProbe builds, on the first manager, an image only this run has (base
// plus a layer of random bytes, so no node holds its blobs), pushes it to
// the cluster's registry as probe, removes it there again and returns its
// ID.
func pushProbe(t *testing.T, c *cluster, probe, base string) string {
	t.Helper()
	stamp := make([]byte, 32<<20) // random: the download takes a moment
	_, _ = rand.Read(stamp)
	var ctx bytes.Buffer
	tw := tar.NewWriter(&ctx)
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"Dockerfile", []byte("FROM " + base + "\nCOPY stamp /stamp\n")},
		{"stamp", stamp},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	node := c.managers[0]
	build := exec.Command("docker", "exec", "-i", node, "docker", "build", "-q", "-t", probe, "-")
	build.Stdin = &ctx
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the probe image on %s: %v\n%s", node, err, out)
	}
	sh(t, nil, "docker", "exec", node, "docker", "push", probe)
	id := strings.TrimSpace(sh(t, nil, "docker", "exec", node, "docker", "image", "inspect", "-f", "{{.Id}}", probe))
	sh(t, nil, "docker", "exec", node, "docker", "rmi", probe)
	return id
}

// hasImage says whether node's engine holds the image with this ID.
func hasImage(node, id string) bool {
	_, err := shQuiet(nil, "docker", "exec", node, "docker", "image", "inspect", id)
	return err == nil
}

// blobDownloads counts the blobs the registry served to the node at ip
// since a time, from its access log ("IP - - [date] "GET /v2/.../blobs/...").
func blobDownloads(t *testing.T, registry, ip string, since time.Time) int {
	t.Helper()
	out := sh(t, nil, "docker", "logs", "--since", since.UTC().Format(time.RFC3339Nano), registry)
	n := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ip+" ") && strings.Contains(line, `"GET /v2/`) && strings.Contains(line, "/blobs/sha256:") {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the registry's log: %v", err)
	}
	return n
}
