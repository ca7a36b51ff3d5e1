package spawner_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

const singleUserImage = "swarmhub/notebook-singleuser:dev"

// fakeHub answers what jupyterhub-singleuser asks at start (the hub's
// version, then its activity) and, on the activity, checks the server's
// readiness endpoint from inside the overlay network, which the test's host
// cannot reach. It logs what it saw for the test to read.
const fakeHub = `
import os, sys, threading, urllib.request
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
ready_url = "http://" + os.environ["SERVER"] + ":8888/user/" + os.environ["USERNAME"] + "/api"
def check():
    for _ in range(60):
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as r:
                print("READY", r.status, flush=True)
                return
        except Exception as e:
            print("NOT-READY", e, flush=True)
        threading.Event().wait(1)
class H(BaseHTTPRequestHandler):
    def answer(self, code, body=b"{}"):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", "3.0.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.rstrip("/") == "/hub/api":
            self.answer(200, b'{"version": "3.0.0"}')
        else:
            print("UNEXPECTED GET", self.path, flush=True)
            self.answer(404)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print("ACTIVITY", self.path, self.headers.get("Authorization"), flush=True)
        self.answer(200)
        threading.Thread(target=check).start()
ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
`

// TestSwarmSingleUserImageStartsUnchanged starts the jupyterhub-singleuser
// image with its own command next to a fake hub on the overlay network: the
// server must reach the hub with its token (JUPYTERHUB_API_URL,
// JUPYTERHUB_ACTIVITY_URL, JUPYTERHUB_API_TOKEN) and answer the readiness
// check swarmhub uses for it.
func TestSwarmSingleUserImageStartsUnchanged(t *testing.T) {
	var hubName string
	e := newSwarmEnv(t, func(o *spawner.ManagerOptions) {
		o.Image = singleUserImage
		o.Spec.Contracts = map[string]string{singleUserImage: spawner.ContractSingleUser}
		hubName = "swarmhub-test-hub-" + o.Spec.Instance
		o.Spec.HubURL = "http://" + hubName + ":8000"
	})
	requireImage(t, e.cli, singleUserImage)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	user := "u" + randHex(t, 3)

	replicas := uint64(1)
	hub, err := e.cli.ServiceCreate(ctx, swarm.ServiceSpec{
		// The instance label makes the environment's cleanup remove it.
		Annotations: swarm.Annotations{Name: hubName, Labels: map[string]string{spawner.LabelInstance: e.instance}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:   singleUserImage,
				Command: []string{"python3", "-u", "-c", fakeHub},
				Env:     []string{"SERVER=swarmhub-test-" + user, "USERNAME=" + user},
			},
			Networks: []swarm.NetworkAttachmentConfig{{Target: e.network}},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := e.m.Start(ctx, user, spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	rec, err := e.st.GetServer(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.StateRunning || !rec.HubToken {
		t.Fatalf("record %+v, want running with a hub token", rec)
	}
	if tok, err := e.st.LookupToken(ctx, rec.Token); err != nil || tok.User != user || tok.Kind != store.TokenKindServer {
		t.Errorf("server token as a hub token: %+v, %v", tok, err)
	}

	wantActivity := "ACTIVITY /hub/api/users/" + user + "/activity token " + rec.Token
	var logs string
	for !strings.Contains(logs, "READY 200") {
		select {
		case <-ctx.Done():
			t.Fatalf("the server never reached the fake hub and answered its readiness check; hub log:\n%s", logs)
		case <-time.After(time.Second):
		}
		logs = serviceLogs(ctx, t, e, hub.ID)
	}
	if !strings.Contains(logs, wantActivity) {
		t.Errorf("hub log lacks %q:\n%s", wantActivity, logs)
	}
	if strings.Contains(logs, "UNEXPECTED") {
		t.Errorf("the server asked the hub for something else:\n%s", logs)
	}

	if err := e.m.Stop(ctx, user, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.LookupToken(ctx, rec.Token); err == nil {
		t.Error("the server token still works after Stop")
	}
}

func serviceLogs(ctx context.Context, t *testing.T, e *swarmEnv, id string) string {
	t.Helper()
	rc, err := e.cli.ServiceLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("hub logs: %v", err)
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return out.String()
}
