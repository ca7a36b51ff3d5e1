package spawner_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/fakedocker"
)

// proberFunc adapts a function to spawner.Prober.
type proberFunc func(ctx context.Context, addr, user, token string) error

func (f proberFunc) Probe(ctx context.Context, addr, user, token string) error {
	return f(ctx, addr, user, token)
}

var alwaysReady = proberFunc(func(context.Context, string, string, string) error { return nil })

type harness struct {
	d    *fakedocker.Client
	st   *fakeStore
	m    *spawner.Manager
	root string
}

func newHarness(t *testing.T, mod func(*spawner.ManagerOptions)) *harness {
	t.Helper()
	root := t.TempDir()
	o := spawner.ManagerOptions{
		Spec:          baseOptions(),
		Image:         "swarmhub/notebook:dev",
		Namer:         identityNamer(t),
		StorageMount:  root,
		StartTimeout:  time.Minute,
		ProbeInterval: time.Millisecond,
		Prober:        alwaysReady,
	}
	o.Spec.Storage.HostRoot = root
	if mod != nil {
		mod(&o)
	}
	h := &harness{d: fakedocker.New(), st: newFakeStore(), root: root}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	h.m = spawner.NewManager(h.d, h.st, o, log)
	return h
}

// settle waits until every background spawn has ended.
func (h *harness) settle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.m.Wait(ctx); err != nil {
		t.Fatalf("background spawns did not end: %v", err)
	}
}

func lastProgress(t *testing.T, st *fakeStore, user string) store.Progress {
	t.Helper()
	ps := st.progressOf(user)
	if len(ps) == 0 {
		t.Fatalf("no progress for %s", user)
	}
	return ps[len(ps)-1]
}

func TestStartConcurrentCreatesOneService(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{})
			if err != nil {
				errs <- err
				return
			}
			if rec.State != store.StateStarting && rec.State != store.StateRunning {
				errs <- errors.New("Start returned state " + rec.State)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.settle(t)
	if n := h.d.CreateAttempts(); n != 1 {
		t.Errorf("ServiceCreate called %d times, want 1", n)
	}
	rec := h.st.server("alice")
	if rec.State != store.StateRunning || rec.Addr != "10.0.0.5:8888" || rec.Token == "" {
		t.Errorf("record = %+v, want running at 10.0.0.5:8888 with a token", rec)
	}
	if p := lastProgress(t, h.st, "alice"); !p.Ready || p.URL != "/user/alice/" {
		t.Errorf("last progress = %+v, want ready with URL /user/alice/", p)
	}
	addr, token, err := h.m.Target(context.Background(), "alice")
	if err != nil || addr != "10.0.0.5:8888" || token != rec.Token {
		t.Errorf("Target = %q, %q, %v; want the running task's address and the record's token", addr, token, err)
	}
	if n := h.st.heldLocks(); n != 0 {
		t.Errorf("%d locks or slots still held after the spawn", n)
	}
	fi, err := os.Stat(filepath.Join(h.root, "users", "alice"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("workspace directory not created: %v", err)
	}
	if os.Geteuid() == 0 {
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 100 {
			t.Errorf("workspace owned by %d:%d, want 1000:100", st.Uid, st.Gid)
		}
	}
	if fi, err := os.Stat(filepath.Join(h.root, "exchange")); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("exchange directory: %v, mode %v; want mode 0777", err, fi.Mode())
	}
}

func TestStartTokenIsFreshPerStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	first, err := h.m.Start(ctx, "alice", spawner.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	if err := h.m.Stop(ctx, "alice", "test"); err != nil {
		t.Fatal(err)
	}
	second, err := h.m.Start(ctx, "alice", spawner.StartOptions{Image: "other:1", Instructor: true})
	if err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	if first.Token == second.Token || len(second.Token) != 64 {
		t.Errorf("tokens %q and %q: want two different 64-hex tokens", first.Token, second.Token)
	}
	if rec := h.st.server("alice"); rec.Image != "other:1" || !rec.Instructor {
		t.Errorf("record = %+v, want image other:1 and instructor", rec)
	}
}

func TestStartBusy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *spawner.ManagerOptions) {
		o.SpawnLimit = 1
		o.RetryAfter = 7 * time.Second
	})
	ctx := context.Background()
	// Another replica holds the only slot.
	if ok, _ := h.st.AcquireSlot(ctx, "bob", 1, time.Minute); !ok {
		t.Fatal("could not take the slot")
	}
	_, err := h.m.Start(ctx, "alice", spawner.StartOptions{})
	if !errors.Is(err, spawner.ErrBusy) {
		t.Fatalf("Start = %v, want ErrBusy", err)
	}
	var busy *spawner.BusyError
	if !errors.As(err, &busy) || busy.RetryAfter != 7*time.Second {
		t.Errorf("error %v carries no RetryAfter of 7s", err)
	}
	if n := h.d.Creates(); n != 0 {
		t.Errorf("ServiceCreate called %d times while busy", n)
	}
	// The refused start left no lock behind: once the slot frees, it works.
	if err := h.st.ReleaseSlot(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Start(ctx, "alice", spawner.StartOptions{}); err != nil {
		t.Fatalf("Start after the slot freed: %v", err)
	}
	h.settle(t)
	if rec := h.st.server("alice"); rec.State != store.StateRunning {
		t.Errorf("state = %q, want running", rec.State)
	}
}

func TestStartFailedTaskReportsDockerError(t *testing.T) {
	t.Parallel()
	const dockerErr = "No such image: swarmhub/does-not-exist:nope"
	h := newHarness(t, nil)
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStateRejected),
			fakedocker.WithMessage("preparing"), fakedocker.WithErr(dockerErr))}
	})
	if _, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	rec := h.st.server("alice")
	if rec.State != store.StateFailed || !strings.Contains(rec.Error, dockerErr) {
		t.Errorf("record = %+v, want failed with %q", rec, dockerErr)
	}
	if !strings.Contains(rec.Error, "ask an admin") {
		t.Errorf("error %q carries no hint", rec.Error)
	}
	p := lastProgress(t, h.st, "alice")
	if !p.Failed || !strings.Contains(p.Message, dockerErr) {
		t.Errorf("last progress = %+v, want failed with Docker's text", p)
	}
	if names := h.d.ServiceNames(); len(names) != 0 {
		t.Errorf("services left behind: %v", names)
	}
	if kinds := strings.Join(h.st.eventKinds("alice"), ","); kinds != "spawn,failure" {
		t.Errorf("events = %s, want spawn,failure", kinds)
	}
}

func TestStartTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *spawner.ManagerOptions) {
		o.StartTimeout = 100 * time.Millisecond
		o.Prober = proberFunc(func(context.Context, string, string, string) error {
			return errors.New("connect: connection refused")
		})
	})
	if _, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	rec := h.st.server("alice")
	if rec.State != store.StateFailed {
		t.Fatalf("state = %q, want failed", rec.State)
	}
	for _, want := range []string{"did not become ready within 100ms", "connection refused"} {
		if !strings.Contains(rec.Error, want) {
			t.Errorf("error %q does not mention %q", rec.Error, want)
		}
	}
	if names := h.d.ServiceNames(); len(names) != 0 {
		t.Errorf("services left behind after a timeout: %v", names)
	}
	if n := h.st.heldLocks(); n != 0 {
		t.Errorf("%d locks or slots still held", n)
	}
}

func TestStartAdoptsServiceOnNameConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	spec, err := spawner.BuildSpec(spawner.Request{
		User: "alice", ServiceName: "jupyter-alice", VolumeName: "jupyterhub-user-alice",
		Token: "existing-token", Image: "swarmhub/notebook:dev",
	}, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	existing := h.d.AddService(spec)
	rec, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Token != "existing-token" || rec.ServiceID != existing.ID {
		t.Errorf("Start returned %+v, want the existing service %s and its token", rec, existing.ID)
	}
	h.settle(t)
	if n := h.d.Creates(); n != 0 {
		t.Errorf("%d services created, want none besides the existing one", n)
	}
	if names := h.d.ServiceNames(); len(names) != 1 {
		t.Errorf("services = %v, want only the existing one", names)
	}
	if _, token, err := h.m.Target(context.Background(), "alice"); err != nil || token != "existing-token" {
		t.Errorf("Target token = %q, %v; want the adopted token", token, err)
	}
}

func TestStartRefusesAnotherHubsServiceOfTheSameName(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	o := baseOptions()
	o.Instance = "another-hub"
	spec, err := spawner.BuildSpec(spawner.Request{
		User: "alice", ServiceName: "jupyter-alice", VolumeName: "jupyterhub-user-alice",
		Token: "their-token", Image: "swarmhub/notebook:dev",
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	h.d.AddService(spec)
	rec, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{})
	if err == nil && rec.State != store.StateFailed {
		h.settle(t)
	}
	if _, token, terr := h.m.Target(context.Background(), "alice"); terr == nil || token == "their-token" {
		t.Fatalf("another hub's service was adopted (token %q, err %v)", token, terr)
	}
	if names := h.d.ServiceNames(); len(names) != 1 {
		t.Errorf("services = %v, want only the other hub's, untouched", names)
	}
}

func TestStopRemovesServiceKeepsRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	if _, err := h.m.Start(ctx, "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	if err := h.m.Stop(ctx, "alice", "user request"); err != nil {
		t.Fatal(err)
	}
	if names := h.d.ServiceNames(); len(names) != 0 {
		t.Errorf("services after Stop: %v", names)
	}
	rec := h.st.server("alice")
	if rec.State != store.StateStopped || rec.Error != "" || rec.Addr != "" {
		t.Errorf("record = %+v, want stopped without error or address", rec)
	}
	if _, _, err := h.m.Target(ctx, "alice"); !errors.Is(err, spawner.ErrNotRunning) {
		t.Errorf("Target after Stop = %v, want ErrNotRunning", err)
	}
	if kinds := strings.Join(h.st.eventKinds("alice"), ","); kinds != "spawn,ready,stop" {
		t.Errorf("events = %s, want spawn,ready,stop", kinds)
	}
	if _, err := os.Stat(filepath.Join(h.root, "users", "alice")); err != nil {
		t.Errorf("workspace gone after Stop: %v", err)
	}
	// Stopping a stopped server is fine.
	if err := h.m.Stop(ctx, "alice", "again"); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopWhileStarting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.Task(svc, fakedocker.WithState(swarm.TaskStatePreparing))}
	})
	ctx := context.Background()
	if _, err := h.m.Start(ctx, "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Stop(ctx, "alice", "changed my mind"); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	if rec := h.st.server("alice"); rec.State != store.StateStopped {
		t.Errorf("state = %q, want stopped", rec.State)
	}
	if names := h.d.ServiceNames(); len(names) != 0 {
		t.Errorf("services after Stop: %v", names)
	}
	if p := lastProgress(t, h.st, "alice"); !p.Failed {
		t.Errorf("last progress = %+v, want the spawn reported as ended", p)
	}
	if n := h.st.heldLocks(); n != 0 {
		t.Errorf("%d locks or slots still held", n)
	}
}

func TestStartAgainAfterServiceRemovedByHand(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	if _, err := h.m.Start(ctx, "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	if err := h.m.RemoveService(ctx, "jupyter-alice"); err != nil {
		t.Fatal(err)
	}
	rec, err := h.m.Start(ctx, "alice", spawner.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.StateStarting {
		t.Errorf("Start returned state %q, want a new spawn", rec.State)
	}
	h.settle(t)
	if names := h.d.ServiceNames(); len(names) != 1 {
		t.Errorf("services = %v, want one new service", names)
	}
}

func TestTargetRereadsAddressAfterForget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	if _, err := h.m.Start(ctx, "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	// The task moved (rescheduled on another node): Docker reports a new IP.
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task { return []swarm.Task{fakedocker.RunningTask(svc, "10.0.0.77")} })
	if addr, _, _ := h.m.Target(ctx, "alice"); addr != "10.0.0.5:8888" {
		t.Errorf("cached Target = %q, want the cached 10.0.0.5:8888", addr)
	}
	h.m.Forget("alice")
	addr, _, err := h.m.Target(ctx, "alice")
	if err != nil || addr != "10.0.0.77:8888" {
		t.Errorf("Target after Forget = %q, %v; want 10.0.0.77:8888", addr, err)
	}
	if rec := h.st.server("alice"); rec.Addr != "10.0.0.77:8888" {
		t.Errorf("stored address = %q, want the new one for other replicas", rec.Addr)
	}
}

// After a dockerd restart tasks come back with new addresses and an old one
// may now belong to another student's server: the route cache follows
// Docker's listing, and a cache miss never trusts the stored address.
func TestRetargetFollowsTasksThatCameBackElsewhere(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	first := map[string]string{"alice": "10.0.0.5", "bob": "10.0.0.6"}
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		return []swarm.Task{fakedocker.RunningTask(svc, first[svc.Spec.Labels[spawner.LabelUser]])}
	})
	for _, u := range []string{"alice", "bob"} {
		if _, err := h.m.Start(ctx, u, spawner.StartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.settle(t)
	before := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		addr, _, err := h.m.Target(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		before[u] = addr
	}
	// Swap: alice's task now has bob's old address and the other way round.
	ip := func(addr string) string { return strings.TrimSuffix(addr, ":8888") }
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		if svc.Spec.Labels[spawner.LabelUser] == "alice" {
			return []swarm.Task{fakedocker.RunningTask(svc, ip(before["bob"]))}
		}
		return []swarm.Task{fakedocker.RunningTask(svc, ip(before["alice"]))}
	})
	obs, err := h.m.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if moved := h.m.Retarget(obs); len(moved) != 2 {
		t.Errorf("Retarget moved %v, want alice and bob", moved)
	}
	if addr, _, _ := h.m.Target(ctx, "alice"); addr != before["bob"] {
		t.Errorf("alice routed to %q after Retarget, want %q", addr, before["bob"])
	}
	if moved := h.m.Retarget(obs); len(moved) != 0 {
		t.Errorf("a second Retarget with the same listing moved %v", moved)
	}

	// A replica that starts afresh (empty cache) over the same store asks
	// Docker, not the stored (now wrong) address.
	fresh := spawner.NewManager(h.d, h.st, spawner.ManagerOptions{Spec: baseOptions(), Image: "x", Namer: identityNamer(t)}, slog.New(slog.DiscardHandler))
	if got := h.st.server("bob").Addr; got != before["bob"] {
		t.Fatalf("precondition: stored address of bob %q, want the old %q", got, before["bob"])
	}
	if addr, _, err := fresh.Target(ctx, "bob"); err != nil || addr != before["alice"] {
		t.Errorf("fresh replica routes bob to %q (%v), want Docker's %q", addr, err, before["alice"])
	}

	// A task that is not running any more is dropped from the cache.
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task { return nil })
	obs, _ = h.m.Services(ctx)
	h.m.Retarget(obs)
	if _, _, err := h.m.Target(ctx, "alice"); !errors.Is(err, spawner.ErrNotRunning) {
		t.Errorf("Target of a server without a task = %v, want ErrNotRunning", err)
	}
}

// Under load the managers list a task as running seconds after its server
// answers. A replica that did not run the start (its route cache is empty)
// still routes to a task listed as starting once the record says running.
func TestTargetOfATaskStillListedAsStarting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	if _, err := h.m.Start(ctx, "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		task := fakedocker.RunningTask(svc, "10.0.0.5")
		task.Status.State = swarm.TaskStateStarting
		return []swarm.Task{task}
	})
	other := spawner.NewManager(h.d, h.st, spawner.ManagerOptions{Spec: baseOptions(), Image: "x", Namer: identityNamer(t)}, slog.New(slog.DiscardHandler))
	if addr, _, err := other.Target(ctx, "alice"); err != nil || addr != "10.0.0.5:8888" {
		t.Errorf("Target on another replica = %q, %v; want 10.0.0.5:8888", addr, err)
	}
	obs, err := h.m.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if moved := h.m.Retarget(obs); len(moved) != 0 {
		t.Errorf("Retarget dropped or moved %v, want the route kept", moved)
	}
	// A task not yet started is not routed to.
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task {
		task := fakedocker.RunningTask(svc, "10.0.0.5")
		task.Status.State = swarm.TaskStatePreparing
		return []swarm.Task{task}
	})
	other.Forget("alice")
	if _, _, err := other.Target(ctx, "alice"); !errors.Is(err, spawner.ErrNotRunning) {
		t.Errorf("Target of a preparing task = %v, want ErrNotRunning", err)
	}
}

func identityNamer(t *testing.T) spawner.Namer {
	t.Helper()
	n, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTargetNotRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	if _, _, err := h.m.Target(context.Background(), "nobody"); !errors.Is(err, spawner.ErrNotRunning) {
		t.Errorf("Target of an unknown user = %v, want ErrNotRunning", err)
	}
}

func TestServicesAndAdopt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	spec, err := spawner.BuildSpec(spawner.Request{
		User: "carol", ServiceName: "jupyter-carol", VolumeName: "jupyterhub-user-carol",
		Token: "carol-token", Image: "swarmhub/notebook:dev", Instructor: true,
	}, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	h.d.AddService(spec)
	other := spec
	other.Name = "not-ours"
	other.Labels = map[string]string{"swarmhub.managed": "true", "swarmhub.instance": "other-course", "swarmhub.user": "dave"}
	h.d.AddService(other)

	obs, err := h.m.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 {
		t.Fatalf("Services = %+v, want only carol's service of this instance", obs)
	}
	o := obs[0]
	if o.User != "carol" || o.Token != "carol-token" || o.Addr != "10.0.0.5:8888" || !o.Instructor || o.Image != "swarmhub/notebook:dev" {
		t.Errorf("observed = %+v", o)
	}
	rec, err := h.m.Adopt(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.StateRunning || h.st.server("carol").Token != "carol-token" {
		t.Errorf("adopted record = %+v", rec)
	}
	if addr, token, err := h.m.Target(ctx, "carol"); err != nil || addr != o.Addr || token != "carol-token" {
		t.Errorf("Target = %q, %q, %v", addr, token, err)
	}
}

// The per-user lock and the spawn slots hold with the real Redis store too.
func TestStartConcurrentWithRedisStore(t *testing.T) {
	t.Parallel()
	st := spawner.WrapStore(store.New(testenv.RedisClient(t), "spawnertest:"))
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := baseOptions()
	o.Storage.HostRoot = t.TempDir()
	d := fakedocker.New()
	m := spawner.NewManager(d, st, spawner.ManagerOptions{
		Spec: o, Image: "img", Namer: namer, SpawnLimit: 3,
		ProbeInterval: time.Millisecond, Prober: alwaysReady,
	}, nil)
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	busy := 0
	for range 4 {
		for _, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec, err := m.Start(context.Background(), u, spawner.StartOptions{})
				switch {
				case err == nil && rec.State != store.StateStarting && rec.State != store.StateRunning:
					t.Errorf("Start(%s) returned state %q, want starting or running", u, rec.State)
				case errors.Is(err, spawner.ErrBusy):
					mu.Lock()
					busy++
					mu.Unlock()
				case err != nil:
					t.Errorf("Start(%s): %v", u, err)
				}
			}()
		}
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// Each user has at most one service whatever the interleaving.
	names := d.ServiceNames()
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("service %s created twice", n)
		}
		seen[n] = true
	}
	if len(names) == 0 || d.Creates() != len(names) {
		t.Errorf("%d creates for services %v", d.Creates(), names)
	}
	t.Logf("%d services, %d starts refused as busy", len(names), busy)
	if n, err := store.New(testenv.RedisClient(t), "spawnertest:").SlotsInUse(ctx); err != nil || n != 0 {
		t.Errorf("slots in use after all spawns = %d, %v; want 0", n, err)
	}
}

func singleUserOptions(o *spawner.ManagerOptions) {
	o.Image = "swarmhub/notebook-singleuser:dev"
	o.Spec.Contracts = map[string]string{"swarmhub/notebook-singleuser:dev": spawner.ContractSingleUser}
	o.Spec.HubURL = "http://orchestrator:8000"
}

// TestStartSingleUser checks the jupyterhub-singleuser contract end to end
// in the spawner: the record marks its token as a hub token, the readiness
// check and the proxy send no token, and the service carries it as
// JUPYTERHUB_API_TOKEN.
func TestStartSingleUser(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var probed []string
	h := newHarness(t, func(o *spawner.ManagerOptions) {
		singleUserOptions(o)
		o.Prober = proberFunc(func(_ context.Context, _, _, token string) error {
			mu.Lock()
			defer mu.Unlock()
			probed = append(probed, token)
			return nil
		})
	})
	ctx := context.Background()
	if _, err := h.m.Start(ctx, "alice", spawner.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle(t)
	rec := h.st.server("alice")
	if rec.State != store.StateRunning || !rec.HubToken || rec.Token == "" {
		t.Fatalf("record = %+v, want running with a hub token", rec)
	}
	mu.Lock()
	if len(probed) == 0 || probed[0] != "" {
		t.Errorf("readiness checks sent tokens %q, want none", probed)
	}
	mu.Unlock()
	if addr, token, err := h.m.Target(ctx, "alice"); err != nil || addr == "" || token != "" {
		t.Errorf("Target = %q, %q, %v; want an address and no token to inject", addr, token, err)
	}
	h.m.Forget("alice")
	if _, token, err := h.m.Target(ctx, "alice"); err != nil || token != "" {
		t.Errorf("Target from the record = %q, %v; want no token to inject", token, err)
	}
	// The task comes back elsewhere: the new route injects no token either.
	h.d.SetTasks(func(svc swarm.Service) []swarm.Task { return []swarm.Task{fakedocker.RunningTask(svc, "10.0.0.9")} })
	moved, err := h.m.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.m.Retarget(moved); len(got) != 1 {
		t.Fatalf("Retarget moved %v, want alice", got)
	}
	if addr, token, err := h.m.Target(ctx, "alice"); err != nil || addr != "10.0.0.9:8888" || token != "" {
		t.Errorf("Target after Retarget = %q, %q, %v; want the new address and no token", addr, token, err)
	}

	// A later replica finds the service and adopts it with the same meaning.
	fresh := spawner.NewManager(h.d, newFakeStore(), spawner.ManagerOptions{Spec: baseOptions(), Namer: identityNamer(t), Prober: alwaysReady}, nil)
	obs, err := fresh.Services(ctx)
	if err != nil || len(obs) != 1 {
		t.Fatalf("Services = %+v, %v", obs, err)
	}
	if o := obs[0]; o.Token != rec.Token || !o.HubToken {
		t.Errorf("observed %+v, want the hub token %q from JUPYTERHUB_API_TOKEN", o, rec.Token)
	}
	adopted, err := fresh.Adopt(ctx, obs[0])
	if err != nil || !adopted.HubToken || adopted.Token != rec.Token {
		t.Fatalf("Adopt = %+v, %v", adopted, err)
	}
	if _, token, err := fresh.Target(ctx, "alice"); err != nil || token != "" {
		t.Errorf("Target after adoption = %q, %v; want no token to inject", token, err)
	}
}

func TestStartSingleUserAdoptsOnNameConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t, singleUserOptions)
	opts := baseOptions()
	opts.Contracts = map[string]string{"swarmhub/notebook-singleuser:dev": spawner.ContractSingleUser}
	opts.HubURL = "http://orchestrator:8000"
	spec, err := spawner.BuildSpec(spawner.Request{
		User: "alice", ServiceName: "jupyter-alice", VolumeName: "jupyterhub-user-alice",
		Token: "existing-token", Image: "swarmhub/notebook-singleuser:dev",
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.d.AddService(spec)
	rec, err := h.m.Start(context.Background(), "alice", spawner.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Token != "existing-token" || !rec.HubToken {
		t.Errorf("Start returned %+v, want the existing service's hub token", rec)
	}
	h.settle(t)
}

// A reconcile that saw a service before a stop removed it must not bring
// the stopped server back as running (the culler would cull it twice).
func TestAdoptRefusesAServiceStoppedMeanwhile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	spec, err := spawner.BuildSpec(spawner.Request{
		User: "carol", ServiceName: "jupyter-carol", VolumeName: "jupyterhub-user-carol",
		Token: "carol-token", Image: "swarmhub/notebook:dev",
	}, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	h.d.AddService(spec)
	obs, err := h.m.Services(ctx)
	if err != nil || len(obs) != 1 {
		t.Fatalf("Services = %+v, %v", obs, err)
	}
	if err := h.m.Stop(ctx, "carol", "culled"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Adopt(ctx, obs[0]); !errors.Is(err, spawner.ErrServiceGone) {
		t.Fatalf("Adopt after the stop: %v, want ErrServiceGone", err)
	}
	if st := h.st.server("carol").State; st != store.StateStopped {
		t.Errorf("carol's record is %q after the stale adoption, want stopped", st)
	}
}
