package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// egressTarget is one destination a student container tries to open a TCP
// connection to.
type egressTarget struct{ name, host, port string }

// egressListener answers TCP on every port given, on all of its node's
// addresses: the stand-in for the metadata service, an NFS server and a host
// on the internet.
const egressListener = `
import socket, sys, threading
socks = []
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p)))
    s.listen(16)
    socks.append(s)
def serve(s):
    while True:
        c, _ = s.accept()
        c.sendall(b"egress-target\n")
        c.close()
for s in socks:
    threading.Thread(target=serve, args=(s,)).start()
print("ready", flush=True)
`

// egressProbe prints "NAME open" or "NAME closed ERROR" for each
// NAME,HOST,PORT argument. HOST "gateway" is the container's default
// gateway (its node's docker_gwbridge address); NAME "hub" is an HTTP
// request, retried for a while (a container just attached to the overlay
// may need a moment before tasks.orchestrator resolves).
const egressProbe = `
import socket, struct, sys, time, urllib.request, urllib.error
def gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        f = line.split()
        if f[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(f[2], 16)))
def hub(host, port):
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen("http://%s:%s/hub/health" % (host, port), timeout=5)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(1)
for arg in sys.argv[1:]:
    name, host, port = arg.split(",")
    if host == "gateway":
        host = gateway()
    try:
        if name == "hub":
            hub(host, port)
        else:
            socket.create_connection((host, int(port)), timeout=5).close()
        print(name, "open", flush=True)
    except Exception as e:
        print(name, "closed", type(e).__name__, flush=True)
`

// TestEgressRules is issue 13, item 10, on the dind cluster: with
// scripts/egress-rules installed on every node, a container on the
// students' overlay network cannot open connections to the metadata
// address, an NFS server, the swarm's management port on another node or
// the gossip port of its own node, while it still reaches the hub at
// tasks.orchestrator and, as configured, the internet; the orchestrator
// replicas still answer and a student server still starts behind them.
// Without the rules (before install, after remove) every target answers,
// so each refusal is the rules' doing.
func TestEgressRules(t *testing.T) {
	c := upCluster(t)
	tag := os.Getenv("SWARMHUB_TAG")
	if tag == "" {
		tag = "dev"
	}
	image := "swarmhub/notebook-debian:" + tag
	probeNode, targetNode := c.workers[0], c.workers[1]
	targetIP := c.ips[targetNode]
	nodes := append(slices.Clone(c.managers), c.workers...)

	on := func(t *testing.T, node string, args ...string) string {
		t.Helper()
		out, err := shQuiet(nil, "docker", append([]string{"exec", node}, args...)...)
		if err != nil {
			t.Fatalf("on %s: %s: %v\n%s", node, strings.Join(args, " "), err, out)
		}
		return out
	}

	// The target node answers on 80 (the metadata service, at
	// 169.254.169.254), 111 and 2049 (an NFS server) and 8081 (anything
	// else), on its cluster address and on two documentation addresses
	// that stand for the internet. The probe node routes the three extra
	// addresses to it, as a cloud's network routes the metadata address.
	extra := []string{"169.254.169.254", "192.0.2.80", "198.51.100.80"}
	for _, a := range extra {
		on(t, targetNode, "ip", "addr", "add", a+"/32", "dev", "lo")
		on(t, probeNode, "ip", "route", "add", a+"/32", "via", targetIP)
		t.Cleanup(func() {
			_, _ = shQuiet(nil, "docker", "exec", targetNode, "ip", "addr", "del", a+"/32", "dev", "lo")
			_, _ = shQuiet(nil, "docker", "exec", probeNode, "ip", "route", "del", a+"/32")
		})
	}
	const listener = "swarmhub-egress-target"
	t.Cleanup(func() { _, _ = shQuiet(nil, "docker", "exec", targetNode, "docker", "rm", "-f", listener) })
	on(t, targetNode, "docker", "run", "-d", "--name", listener, "--network", "host", "--user", "0",
		"--entrypoint", "python3", image, "-c", egressListener, "80", "111", "2049", "8081")
	for i := 0; ; i++ {
		if strings.Contains(on(t, targetNode, "docker", "logs", listener), "ready") {
			break
		}
		if i == 60 {
			t.Fatalf("the listener on %s did not start:\n%s", targetNode, on(t, targetNode, "docker", "logs", listener))
		}
		time.Sleep(time.Second)
	}

	targets := []egressTarget{
		{"metadata", "169.254.169.254", "80"},
		{"nfs", targetIP, "2049"},
		{"portmapper", targetIP, "111"},
		{"swarm-management-on-node1", c.ips[c.managers[0]], "2377"},
		{"gossip-on-own-node", c.ips[probeNode], "7946"},
		{"gossip-on-own-gateway", "gateway", "7946"},
		{"storage-host-other-port", targetIP, "8081"},
		{"internet-allowed", "192.0.2.80", "8081"},
		{"internet-other", "198.51.100.80", "8081"},
		{"hub", "tasks.orchestrator", "8000"},
	}
	probe := func(t *testing.T, open ...string) {
		t.Helper()
		args := []string{"exec", probeNode, "docker", "run", "--rm", "--network", "swarmhub-users",
			"--entrypoint", "python3", image, "-c", egressProbe}
		for _, tg := range targets {
			args = append(args, tg.name+","+tg.host+","+tg.port)
		}
		// A worker drops an attachable network when its last container
		// there goes, and a run right after can name the old one: retry.
		var out string
		for i := 0; ; i++ {
			var err error
			if out, err = shQuiet(nil, "docker", args...); err == nil {
				break
			}
			if i == 5 || !strings.Contains(out, "not found") {
				t.Fatalf("probe on %s: %v\n%s", probeNode, err, out)
			}
			time.Sleep(2 * time.Second)
		}
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) >= 2 {
				got[f[0]] = strings.Join(f[1:], " ")
			}
		}
		var wrong []string
		for _, tg := range targets {
			want := "closed"
			if slices.Contains(open, tg.name) {
				want = "open"
			}
			if !strings.HasPrefix(got[tg.name], want) {
				wrong = append(wrong, fmt.Sprintf("%s (%s:%s): %q, want %s", tg.name, tg.host, tg.port, got[tg.name], want))
			}
		}
		if len(wrong) > 0 {
			t.Fatalf("from a container on swarmhub-users on %s:\n  %s\nprobe output:\n%s", probeNode, strings.Join(wrong, "\n  "), out)
		}
	}
	all := make([]string, 0, len(targets))
	for _, tg := range targets {
		all = append(all, tg.name)
	}

	script := filepath.Join(repoRoot(), "scripts", "egress-rules")
	for _, n := range nodes {
		sh(t, nil, "docker", "cp", script, n+":/usr/local/sbin/swarmhub-egress-rules")
	}
	// rules runs scripts/egress-rules CMD with env on every node.
	rules := func(t *testing.T, cmd string, env ...string) {
		t.Helper()
		for _, n := range nodes {
			args := []string{"exec"}
			for _, e := range env {
				args = append(args, "-e", e)
			}
			sh(t, nil, "docker", append(args, n, "swarmhub-egress-rules", cmd)...)
		}
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_, _ = shQuiet(nil, "docker", "exec", n, "swarmhub-egress-rules", "remove")
		}
	})
	replicasAnswer := func(t *testing.T) {
		t.Helper()
		for _, r := range c.replicas {
			resp, err := http.Get("http://" + r + "/hub/health")
			if err != nil {
				t.Fatalf("replica %s with the rules installed: %v", r, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("replica %s with the rules installed: /hub/health %d", r, resp.StatusCode)
			}
		}
	}

	t.Run("without the rules every target answers", func(t *testing.T) { probe(t, all...) })
	if t.Failed() {
		return
	}

	t.Run("installed: metadata, NFS and Docker ports refused; hub and internet reachable", func(t *testing.T) {
		rules(t, "install")
		probe(t, "storage-host-other-port", "internet-allowed", "internet-other", "hub")
		replicasAnswer(t)
	})
	if t.Failed() {
		return
	}

	t.Run("installed again with the storage host and internet deny: only the allow list and the hub", func(t *testing.T) {
		rules(t, "install", "SWARMHUB_EGRESS_STORAGE="+targetIP, "SWARMHUB_EGRESS_INTERNET=deny",
			"SWARMHUB_EGRESS_ALLOW=192.0.2.80")
		probe(t, "internet-allowed", "hub")
		for _, n := range nodes {
			for _, chain := range []string{"DOCKER-USER", "INPUT"} {
				if jumps := strings.Count(on(t, n, "iptables", "-S", chain), "-j SWARMHUB-EGRESS"); jumps != 1 {
					t.Fatalf("%s on %s has %d jumps into the egress rules after a second install, want 1", chain, n, jumps)
				}
			}
		}
		// The replicas' answers cross docker_gwbridge on their way out
		// (host-mode port) and a server starts and answers behind them,
		// over the overlay network between nodes.
		replicasAnswer(t)
		s := c.student(t, "egress"+randHex(2), 0)
		if err := s.ensureRunning(ctxT(t, 4*time.Minute)); err != nil {
			t.Fatal(err)
		}
		code, body, err := s.call(ctxT(t, time.Minute), http.MethodGet, "/user/"+s.user+"/api/status", nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s's server with the rules installed: %d %s %v", s.user, code, body, err)
		}
		s.stopServer(s.user)
	})
	if t.Failed() {
		return
	}

	t.Run("removed: every target answers again", func(t *testing.T) {
		rules(t, "remove")
		for _, n := range nodes {
			if out, err := shQuiet(nil, "docker", "exec", n, "swarmhub-egress-rules", "show"); err == nil {
				t.Fatalf("show on %s after remove reports the rules installed:\n%s", n, out)
			}
		}
		probe(t, all...)
	})
}
