package diskusage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/diskusage"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) AddEvent(_ context.Context, kind, user, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, kind+" "+user+": "+msg)
}

func write(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

const MiB = 1 << 20

func TestRunMeasuresStoresAndReportsTheSoftLimit(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	st := store.New(testenv.RedisClient(t), "t:")
	ev := &events{}
	m := diskusage.New(st, diskusage.Options{Root: root, SoftLimit: 2 * MiB, Events: ev})

	write(t, filepath.Join(root, "users", "alice", "data.csv"), 3*MiB)
	write(t, filepath.Join(root, "users", "bob", "nb", "a.ipynb"), 100*1024)
	// A hard link counts once; a sparse file counts what it uses; a link
	// to another workspace is not followed.
	if err := os.Link(filepath.Join(root, "users", "alice", "data.csv"), filepath.Join(root, "users", "alice", "copy.csv")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "users", "bob", "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Symlink(filepath.Join(root, "users", "alice"), filepath.Join(root, "users", "bob", "alice")); err != nil {
		t.Fatal(err)
	}

	rep, err := m.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	usage, err := st.WorkspaceUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, b := usage["alice"], usage["bob"]
	if a.Bytes < 3*MiB || a.Bytes > 3*MiB+64*1024 {
		t.Errorf("alice uses %d bytes, want about 3 MiB (the hard link once)", a.Bytes)
	}
	if b.Bytes < 100*1024 || b.Bytes > MiB {
		t.Errorf("bob uses %d bytes, want about 100 KiB (a 1 TiB sparse file takes nothing, alice's files are not his)", b.Bytes)
	}
	if rep.Workspaces != 2 || len(rep.OverLimit) != 1 || rep.OverLimit[0] != "alice" {
		t.Errorf("report = %+v", rep)
	}
	if len(ev.got) != 1 || !strings.Contains(ev.got[0], "disk-usage alice: workspace uses 3.0 MiB, over the soft limit of 2.0 MiB") {
		t.Errorf("events = %q", ev.got)
	}
	// Still over: no second event. Back under: one more. Gone: forgotten.
	if _, err := m.Run(ctx); err != nil || len(ev.got) != 1 {
		t.Fatalf("second run: %v, events %q", err, ev.got)
	}
	for _, p := range []string{"data.csv", "copy.csv"} {
		if err := os.Remove(filepath.Join(root, "users", "alice", p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(root, "users", "bob")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ev.got) != 2 || !strings.Contains(ev.got[1], "back under the soft limit") {
		t.Errorf("events = %q", ev.got)
	}
	usage, _ = st.WorkspaceUsage(ctx)
	if _, ok := usage["bob"]; ok || usage["alice"].Bytes > 64*1024 {
		t.Errorf("after cleanup: %+v", usage)
	}
	if u, ok, err := st.UserUsage(ctx, "alice"); !ok || err != nil || u.Measured.IsZero() {
		t.Errorf("UserUsage = %+v, %v, %v", u, ok, err)
	}
}
