package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/dockerclient"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

// bareInstance labels the baseline's services so that neither the
// orchestrator (another instance) nor its reconciler ever touches them.
const bareInstance = "swarmhub-bench-bare"

// env is what every suite shares: the stack's configuration, Docker, the
// hub's address on the overlay network, Redis, and logged-in sessions.
type env struct {
	o       runOptions
	cfg     config.Config
	docker  *client.Client
	calls   *dockerclient.Counter // the bench's requests through docker
	counts  *http.Client          // to the counting proxy's /_bench/counts
	hub     string                // http://ORCHESTRATOR-TASK-IP:PORT
	raw     *client.Client        // the engine's own socket, for exec (not counted)
	tr      *http.Transport       // shared by hub sessions (browsers)
	admin   *session
	users   map[string]*session
	started map[string]bool // users whose server this run started and left running
	out     io.Writer
	tables  []table
}

func newEnv(ctx context.Context, o runOptions, out io.Writer) (*env, error) {
	cfg, err := config.Load(o.Config, func(string) string { return "" })
	if err != nil {
		return nil, fmt.Errorf("reading the bench stack's configuration %s: %w", o.Config, err)
	}
	if o.Password == "" && (cfg.Auth.Authenticator != "dummy" || cfg.Auth.Dummy.Password == "") {
		return nil, errors.New("the bench needs the dummy authenticator with its password in the configuration file, or --password")
	}
	dc, calls, err := dockerclient.New(o.DockerHost)
	if err != nil {
		return nil, err
	}
	e := &env{o: o, cfg: cfg, docker: dc, calls: calls, out: out, users: map[string]*session{}, started: map[string]bool{},
		tr: &http.Transport{MaxIdleConnsPerHost: 512, MaxIdleConns: 2048, IdleConnTimeout: 90 * time.Second, DisableCompression: true}}
	if sock, ok := strings.CutPrefix(o.DockerHost, "unix://"); ok {
		e.counts = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}}
	}
	orch, err := e.taskAddr(ctx, o.Stack+"_orchestrator")
	if err != nil {
		return nil, err
	}
	e.hub = fmt.Sprintf("http://%s:%d", orch, cfg.Listen.Port)
	if e.raw, err = client.NewClientWithOpts(client.WithHost(o.RawDockerHost), client.WithAPIVersionNegotiation()); err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", o.RawDockerHost, err)
	}
	return e, nil
}

func (e *env) close() {
	_ = e.raw.Close()
	_ = e.docker.Close()
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// taskAddr is the overlay IP of a service's running task (service VIPs do
// not work on hosts without IPVS; task IPs always do).
func (e *env) taskAddr(ctx context.Context, service string) (string, error) {
	// Generous: on an overloaded machine swarm may be restarting the task.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		tasks, err := e.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", service), filters.Arg("desired-state", "running"))})
		if err != nil {
			return "", fmt.Errorf("tasks of %s: %w", service, err)
		}
		var seen []string
		for _, t := range tasks {
			var nets []string
			for _, na := range t.NetworksAttachments {
				nets = append(nets, na.Network.Spec.Name+"/"+na.Network.ID[:min(8, len(na.Network.ID))]+"="+strings.Join(na.Addresses, ","))
			}
			seen = append(seen, fmt.Sprintf("task %s %s on [%s]", t.ID[:min(8, len(t.ID))], t.Status.State, strings.Join(nets, " ")))
			if t.Status.State != swarm.TaskStateRunning {
				continue
			}
			if ip := attachmentIP(t, e.cfg.Notebook.Network); ip != "" {
				return ip, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("service %s has no running task on network %s (seen: %s)", service, e.cfg.Notebook.Network, strings.Join(seen, "; "))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func attachmentIP(t swarm.Task, network string) string {
	for _, na := range t.NetworksAttachments {
		if na.Network.Spec.Name != network && na.Network.ID != network {
			continue
		}
		for _, a := range na.Addresses {
			if ip, _, _ := strings.Cut(a, "/"); ip != "" {
				return ip
			}
		}
	}
	return ""
}

// serverTarget reads a user's server address and token from Docker, for
// the direct side of the proxy comparisons.
func (e *env) serverTarget(ctx context.Context, user string) (addr, token string, err error) {
	svcs, err := e.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", spawner.LabelUser+"="+user), filters.Arg("label", spawner.LabelInstance+"="+e.cfg.Instance))})
	if err != nil {
		return "", "", fmt.Errorf("services of %s: %w", user, err)
	}
	if len(svcs) != 1 {
		return "", "", fmt.Errorf("%s has %d services, want 1", user, len(svcs))
	}
	for _, v := range svcs[0].Spec.TaskTemplate.ContainerSpec.Env {
		if t, ok := strings.CutPrefix(v, spawner.EnvToken+"="); ok {
			token = t
		}
	}
	ip, err := e.taskAddr(ctx, svcs[0].ID)
	if err != nil {
		return "", "", err
	}
	return net.JoinHostPort(ip, fmt.Sprint(e.port())), token, nil
}

func (e *env) port() int {
	if e.cfg.Notebook.Port == 0 {
		return spawner.DefaultPort
	}
	return e.cfg.Notebook.Port
}

// specOptions mirrors the orchestrator's own mapping from configuration
// (cmd/orchestrator/serve.go), so the bare baseline creates exactly the
// services the spawner creates.
func (e *env) specOptions(instance string) spawner.Options {
	n := e.cfg.Notebook
	return spawner.Options{
		Network: n.Network, NotebookDir: n.NotebookDir, ExchangeDir: n.ExchangeDir, ExchangeVolume: n.ExchangeVolume,
		CPULimit: n.CPULimit, CPUGuarantee: n.CPUGuarantee, MemLimit: int64(n.MemLimit), MemGuarantee: int64(n.MemGuarantee),
		Storage: spawner.Storage{Backend: e.cfg.Storage.Backend, HostRoot: e.cfg.Storage.HostPath.Root,
			NFSServer: e.cfg.Storage.NFS.Server, NFSExport: e.cfg.Storage.NFS.Export, NFSOptions: e.cfg.Storage.NFS.Options},
		Constraints: n.PlacementConstraints, Preferences: n.PlacementPreferences, Env: n.Env, Port: n.Port,
		CourseID: n.CourseID, Instance: instance,
		Contracts: n.ImageContracts, HubURL: e.cfg.HubInternalURL(), AdminAccess: e.cfg.Auth.AdminAccess,
	}
}

// ensureWorkspace does what the spawner's ensureDirs does, for the bare
// baseline (the bench mounts the storage root at the same path as the host).
func (e *env) ensureWorkspace(user string) error {
	root := e.cfg.Storage.HostPath.Root
	ws := filepath.Join(root, "users", user)
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return fmt.Errorf("create %s (is the storage root mounted into the bench container?): %w", ws, err)
	}
	_ = os.Chown(ws, 1000, 100)
	ex := filepath.Join(root, "exchange")
	if err := os.MkdirAll(ex, 0o777); err != nil {
		return err
	}
	return nil
}

// waitContainersGone waits until no container with the label is left, so the
// next measurement does not share the CPU with containers shutting down.
func (e *env) waitContainersGone(ctx context.Context, f filters.Args, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cs, err := e.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d containers (%v) still there after %s", len(cs), f.Get("label"), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// orchestratorMemory reads the orchestrator container's memory as `docker
// stats` shows it (usage minus inactive page cache) and its anonymous
// memory (heap, stacks: what the process itself holds).
func (e *env) orchestratorMemory(ctx context.Context) (shown, anon uint64, err error) {
	cs, err := e.docker.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.swarm.service.name="+e.o.Stack+"_orchestrator"))})
	if err != nil {
		return 0, 0, err
	}
	if len(cs) != 1 {
		return 0, 0, fmt.Errorf("found %d orchestrator containers, want 1", len(cs))
	}
	r, err := e.docker.ContainerStatsOneShot(ctx, cs[0].ID)
	if err != nil {
		return 0, 0, err
	}
	defer r.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		return 0, 0, fmt.Errorf("decode container stats: %w", err)
	}
	m := st.MemoryStats
	inactive := m.Stats["total_inactive_file"] // cgroup v1
	if v, ok := m.Stats["inactive_file"]; ok && inactive == 0 {
		inactive = v // cgroup v2
	}
	shown = m.Usage
	if inactive < shown {
		shown -= inactive
	}
	anon = m.Stats["total_rss"]
	if v, ok := m.Stats["anon"]; ok && anon == 0 {
		anon = v
	}
	return shown, anon, nil
}

// redisCommands reads the stack Redis's per-command call counts with
// redis-cli inside its container (Redis sits on the stack's internal
// backend network, which the bench cannot join); the INFO calls themselves
// are left out.
func (e *env) redisCommands(ctx context.Context) (map[string]int64, error) {
	cs, err := e.raw.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.swarm.service.name="+e.o.Stack+"_redis"))})
	if err != nil {
		return nil, fmt.Errorf("find the stack's Redis container: %w", err)
	}
	if len(cs) != 1 {
		return nil, fmt.Errorf("found %d Redis containers of the stack, want 1", len(cs))
	}
	ex, err := e.raw.ContainerExecCreate(ctx, cs[0].ID, container.ExecOptions{
		Cmd: []string{"redis-cli", "INFO", "commandstats"}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return nil, fmt.Errorf("redis-cli in the Redis container: %w", err)
	}
	att, err := e.raw.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("redis-cli in the Redis container: %w", err)
	}
	defer att.Close()
	var out, errOut strings.Builder
	if _, err := stdcopy.StdCopy(&out, &errOut, att.Reader); err != nil {
		return nil, fmt.Errorf("reading redis-cli output: %w", err)
	}
	if !strings.Contains(out.String(), "cmdstat_") {
		return nil, fmt.Errorf("redis-cli INFO commandstats gave no command stats: %s %s", out.String(), errOut.String())
	}
	return parseCommandStats(out.String()), nil
}

// parseCommandStats turns INFO commandstats into command -> calls.
func parseCommandStats(s string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		cmd := strings.TrimPrefix(name, "cmdstat_")
		if cmd == "info" {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				var n int64
				fmt.Sscan(v, &n)
				out[cmd] = n
			}
		}
	}
	return out
}

func deltaMap(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// callSnapshot is the Redis and Docker counters at one moment.
type callSnapshot struct {
	redis  map[string]int64
	docker callCounts
	at     time.Time
}

func (e *env) snapshot(ctx context.Context) (callSnapshot, error) {
	r, err := e.redisCommands(ctx)
	if err != nil {
		return callSnapshot{}, err
	}
	s := callSnapshot{redis: r, at: time.Now()}
	if e.counts != nil {
		d, err := dockerCounts(ctx, e.counts)
		if err != nil {
			return callSnapshot{}, err
		}
		s.docker = d
	}
	return s, nil
}

// calls between two snapshots: Redis commands and the orchestrator's Docker calls.
func calls(a, b callSnapshot) (redisCalls, dockerCalls map[string]int64) {
	return deltaMap(b.redis, a.redis), b.docker.delta(a.docker, orchestratorSock)
}

// stackTasks names the running tasks of the orchestrator and Redis, to
// notice when swarm replaces one.
func (e *env) stackTasks(ctx context.Context) string {
	var parts []string
	for _, svc := range []string{e.o.Stack + "_orchestrator", e.o.Stack + "_redis"} {
		tasks, err := e.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", svc), filters.Arg("desired-state", "running"))})
		if err != nil {
			return "unknown"
		}
		for _, t := range tasks {
			parts = append(parts, svc[len(e.o.Stack)+1:]+"="+t.ID[:min(len(t.ID), 8)])
		}
	}
	return strings.Join(parts, ",")
}

// reresolve finds the orchestrator and Redis again after swarm replaced them.
func (e *env) reresolve(ctx context.Context) error {
	orch, err := e.taskAddr(ctx, e.o.Stack+"_orchestrator")
	if err != nil {
		return err
	}
	e.hub = fmt.Sprintf("http://%s:%d", orch, e.cfg.Listen.Port)
	// Cookies belong to the old address: log everyone in again on demand.
	e.users = map[string]*session{}
	if e.admin, err = e.login(ctx, firstOr(e.cfg.Auth.AdminUsers, "admin")); err != nil {
		return fmt.Errorf("admin login after the orchestrator moved: %w", err)
	}
	return nil
}
