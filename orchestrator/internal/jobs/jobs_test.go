package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/client"

	"github.com/swarmhub/swarmhub/orchestrator/internal/archive"
	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/lifecycle"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport/dockerapi"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

func newTestJobs(t *testing.T) (*Jobs, string) {
	t.Helper()
	j, root, _ := newTestJobsWith(t, func(*config.Config) {})
	return j, root
}

func newTestJobsWith(t *testing.T, configure func(*config.Config)) (*Jobs, string, *store.Store) {
	t.Helper()
	root := t.TempDir()
	cfg := config.Default()
	cfg.Storage.Mount = root
	cfg.Redis.KeyPrefix = "jobstest:"
	configure(&cfg)
	st := store.New(testenv.RedisClient(t), cfg.Redis.KeyPrefix)
	docker, err := client.NewClientWithOpts(client.WithHost(dockerapi.Start(t)), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.Close() })
	namer, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr := spawner.NewManager(docker, spawner.WrapStore(st), spawner.ManagerOptions{Namer: namer, StorageMount: root}, log)
	j, err := New(cfg, st, mgr, nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	return j, root, st
}

// RemoveData deletes a workspace only after archiving it.
func TestRemoveDataArchivesFirst(t *testing.T) {
	ctx := context.Background()
	j, root := newTestJobs(t)
	dir := filepath.Join(root, "users", "ann")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := j.RemoveData(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("workspace still there: %v", err)
	}
	runs, err := j.Archiver().Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || len(runs[0].Files) != 1 || runs[0].Files[0].User != "ann" {
		t.Fatalf("archive runs %+v", runs)
	}
	// A user without a workspace has nothing to remove.
	if err := j.RemoveData(ctx, "nobody"); err != nil {
		t.Fatal(err)
	}
}

// A workspace whose archive the limits left incomplete is not deleted, and
// the archive records an event naming what it left out.
func TestRemoveDataRefusesAnIncompleteArchive(t *testing.T) {
	ctx := context.Background()
	j, root, st := newTestJobsWith(t, func(c *config.Config) { c.Lifecycle.Archive.MaxFileSize = 4 })
	dir := filepath.Join(root, "users", "ann")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("above the limit"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := j.RemoveData(ctx, "ann"); err == nil || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Fatalf("RemoveData: err = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("the workspace was deleted: %v", err)
	}
	events, err := st.Events(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		found = found || (e.Kind == archive.EventLimit && e.User == "ann" && strings.Contains(e.Message, "notes.txt"))
	}
	if !found {
		t.Errorf("no %s event for ann naming notes.txt in %+v", archive.EventLimit, events)
	}
}

func TestWorkspacesListsValidDirectories(t *testing.T) {
	j, root := newTestJobs(t)
	if got, err := j.workspaces(); err != nil || got != nil {
		t.Fatalf("no users/ yet: %v %v", got, err)
	}
	for _, d := range []string{"bob", "ann", ".hidden"} {
		if err := os.MkdirAll(filepath.Join(root, "users", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := j.workspaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "ann" || got[1] != "bob" {
		t.Fatalf("workspaces %v", got)
	}
}

func TestWebErr(t *testing.T) {
	for in, want := range map[error]error{
		lifecycle.ErrLocked: web.ErrJobRunning,
		archive.ErrNotFound: web.ErrArchiveMissing,
		archive.ErrExists:   web.ErrRestoreExists,
		archive.ErrDiskFull: web.ErrStorageFull,
	} {
		if got := webErr(in); !errors.Is(got, want) || !errors.Is(got, in) {
			t.Errorf("webErr(%v) = %v, want it to wrap %v", in, got, want)
		}
	}
	if webErr(nil) != nil {
		t.Error("webErr(nil) != nil")
	}
}
