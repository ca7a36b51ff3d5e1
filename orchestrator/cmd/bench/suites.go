package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

type suite struct {
	name string
	run  func(e *env, ctx context.Context) ([]table, error)
	// named: only when asked for by name (it needs a cluster, not the bench stack)
	named bool
}

// suites in the order they run: the storm leaves its servers running for
// the memory suite, whose 200 servers the cull suite then walks.
func allSuites() []suite {
	return []suite{
		{name: "spawn", run: (*env).suiteSpawn},
		{name: "proxy", run: (*env).suiteProxy},
		{name: "ws", run: (*env).suiteWS},
		{name: "hotpath", run: (*env).suiteHotPath},
		{name: "jupyter-storm", run: (*env).suiteJupyterStorm},
		{name: "images", run: (*env).suiteImages},
		{name: "lecture", run: (*env).suiteLecture},
		{name: "storm", run: (*env).suiteStorm},
		{name: "memory", run: (*env).suiteMemory},
		{name: "cull", run: (*env).suiteCull},
		{name: "course", run: (*env).suiteCourse, named: true},
	}
}

// selected: asked for by name, or every suite is and s runs with every suite.
func (s suite) selected(want map[string]bool) bool {
	return want[s.name] || (len(want) == 0 || want["all"]) && !s.named
}

func suiteNames() []string {
	var out []string
	for _, s := range allSuites() {
		out = append(out, s.name)
	}
	return out
}

func runSuites(ctx context.Context, o runOptions, stdout io.Writer) error {
	e, err := newEnv(ctx, o, stdout)
	if err != nil {
		return err
	}
	defer e.close()
	want := map[string]bool{}
	for _, s := range o.Suites {
		want[s] = true
	}
	if e.admin, err = e.login(ctx, firstOr(e.cfg.Auth.AdminUsers, "admin")); err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	header := fmt.Sprintf("## swarmhub benchmarks\n\n%s, bench %s, orchestrator at %s (task IP on %s). %s\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), version, e.hub, e.cfg.Notebook.Network, o.Note)
	fmt.Fprintln(stdout, header)
	failed := 0
	for _, s := range allSuites() {
		if !s.selected(want) {
			continue
		}
		e.logf("suite %s", s.name)
		t0 := time.Now()
		before := e.stackTasks(ctx)
		tables, err := s.run(e, ctx)
		if after := e.stackTasks(ctx); before != after {
			// Swarm replaced the orchestrator or Redis (seen here when health
			// checks time out on an overloaded machine): the figures of this
			// suite are not comparable, and later suites need the new address.
			msg := fmt.Sprintf("Swarm replaced a task of the stack during this suite (%s → %s); its figures include that disruption.", before, after)
			e.logf("%s", msg)
			if len(tables) > 0 {
				tables[len(tables)-1].Notes = append(tables[len(tables)-1].Notes, "**"+msg+"**")
			}
			if rerr := e.reresolve(ctx); rerr != nil {
				return rerr
			}
		}
		if err != nil {
			failed++
			e.logf("suite %s failed: %v", s.name, err)
			tables = append(tables, table{Title: s.name + ": failed", Head: []string{"error"}, Rows: [][]string{{err.Error()}}})
		}
		e.logf("suite %s took %s", s.name, time.Since(t0).Round(time.Second))
		for _, t := range tables {
			fmt.Fprintln(stdout, t.markdown())
		}
		e.tables = append(e.tables, tables...)
		if o.Out != "" {
			if err := e.writeResults(header); err != nil {
				e.logf("writing %s: %v", o.Out, err)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d suite(s) failed (see the tables)", failed)
	}
	return nil
}

func (e *env) writeResults(header string) error {
	var b strings.Builder
	b.WriteString(header + "\n")
	for _, t := range e.tables {
		b.WriteString(t.markdown() + "\n")
	}
	return os.WriteFile(e.o.Out, []byte(b.String()), 0o644)
}

func firstOr(l []string, def string) string {
	if len(l) > 0 {
		return l[0]
	}
	return def
}

// debianImage is the Debian notebook image among the allowed ones.
func (e *env) debianImage() (string, error) { return e.imageNamed("notebook-debian") }

// imageNamed is the allowed image whose name contains name.
func (e *env) imageNamed(name string) (string, error) {
	for _, img := range append([]string{e.cfg.Notebook.Image}, e.cfg.Notebook.AllowedImages...) {
		if strings.Contains(img, name) {
			return img, nil
		}
	}
	return "", fmt.Errorf("no %s image in notebook.allowed_images of the bench configuration", name)
}

// ensureServer starts user's server through the hub if this run has not
// yet, and waits until it is ready. image "" is the default image; any
// other is chosen by the admin, as only admins may.
func (e *env) ensureServer(ctx context.Context, user, image string) (*session, error) {
	s, err := e.login(ctx, user)
	if err != nil {
		return nil, err
	}
	if e.started[user] {
		return s, nil
	}
	starter := s
	if image != "" {
		starter = e.admin
	}
	var c startCounters
	if err := starter.requestStart(ctx, user, image, &c); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, e.cfg.Notebook.StartTimeout+time.Minute)
	defer cancel()
	if err := s.waitReady(wctx, user); err != nil {
		return nil, err
	}
	e.started[user] = true
	return s, nil
}

// stopServers stops users' servers through the hub and waits until their
// containers are gone, so that later measurements have the CPU to themselves.
func (e *env) stopServers(ctx context.Context, users []string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 16)
	for _, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func(u string) {
			defer wg.Done()
			defer func() { <-sem }()
			resp, body, err := e.admin.api(ctx, http.MethodDelete, "/hub/api/users/"+u+"/server", nil)
			if err == nil && resp.StatusCode != http.StatusNoContent {
				err = fmt.Errorf("stop %s: %s %s", u, resp.Status, trim(body))
			}
			mu.Lock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}(u)
	}
	wg.Wait()
	for _, u := range users {
		delete(e.started, u)
	}
	if firstErr != nil {
		return firstErr
	}
	for _, u := range users {
		if err := e.waitContainersGone(ctx, filters.NewArgs(
			filters.Arg("label", spawner.LabelInstance+"="+e.cfg.Instance),
			filters.Arg("label", spawner.LabelUser+"="+u)), 2*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// removeBare removes every baseline service and waits for its containers.
func (e *env) removeBare(ctx context.Context) error {
	svcs, err := e.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", spawner.LabelInstance+"="+bareInstance))})
	if err != nil {
		return err
	}
	for _, s := range svcs {
		if err := e.docker.ServiceRemove(ctx, s.ID); err != nil {
			return fmt.Errorf("remove baseline service %s: %w", s.Spec.Name, err)
		}
	}
	return e.waitContainersGone(ctx, filters.NewArgs(filters.Arg("label", spawner.LabelInstance+"="+bareInstance)), 3*time.Minute)
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	return out
}
