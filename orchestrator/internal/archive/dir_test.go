package archive_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/archive"
)

// otherFilesystemDir returns an empty directory, on another filesystem
// than t.TempDir() when the machine has one (tmpfs at /dev/shm), so that a
// rename from it into the storage root would fail with EXDEV.
func otherFilesystemDir(t *testing.T) string {
	t.Helper()
	var tmp, shm syscall.Stat_t
	if syscall.Stat(t.TempDir(), &tmp) == nil && syscall.Stat("/dev/shm", &shm) == nil && tmp.Dev != shm.Dev {
		if dir, err := os.MkdirTemp("/dev/shm", "archive-dir-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	t.Log("no second filesystem writable; the archive directory shares the storage root's")
	return t.TempDir()
}

// Every full run archives the nbgrader exchange as its own tar.gz, with a
// checksum, recorded in the manifest.
func TestRunArchivesTheExchange(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", false)
	exchange := filepath.Join(root, "exchange")
	mustWrite(t, filepath.Join(exchange, "course101", "inbound", "alice+ps1+2025-03-01", "ps1.ipynb"), `{"cells": []}`, 0o644)
	mustWrite(t, filepath.Join(exchange, "course101", "outbound", "ps1", "ps1.ipynb"), `{"cells": [1]}`, 0o644)
	want := treeOf(t, exchange, defaultSkip)

	a := newArchiver(t, root, newClock(), 0)
	m, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Exchange == nil || m.Exchange.Error != "" || m.Exchange.File != "exchange/exchange.tar.gz" {
		t.Fatalf("manifest's exchange entry = %+v", m.Exchange)
	}
	name := filepath.Join(root, "archives", m.Run, "exchange", "exchange.tar.gz")
	if got := fileSum(t, name); got != m.Exchange.SHA256 {
		t.Errorf("exchange archive sha256 %s, manifest says %s", got, m.Exchange.SHA256)
	}
	sumLine, err := os.ReadFile(name + ".sha256")
	if err != nil || string(sumLine) != m.Exchange.SHA256+"  exchange.tar.gz\n" {
		t.Errorf("exchange .sha256 = %q (err=%v)", sumLine, err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	compareTrees(t, want, listTar(t, f))

	// The exchange is no user: the run lists alice only.
	runs, err := a.Runs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || len(runs[0].Files) != 1 || runs[0].Files[0].User != "alice" {
		t.Errorf("runs = %+v, want one run with alice's archive", runs)
	}
	// A single-user run leaves the exchange alone.
	one, err := a.ArchiveNow(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if one.Exchange != nil {
		t.Errorf("single-user run archived the exchange: %+v", one.Exchange)
	}
}

// A storage root without exchange/ archives as before.
func TestRunWithoutExchange(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", false)
	a := newArchiver(t, root, newClock(), 0)
	m, err := a.Run(t.Context(), []string{"alice"})
	if err != nil || m.Exchange != nil {
		t.Fatalf("Run: exchange %+v, err %v; want no exchange entry and no error", m.Exchange, err)
	}
}

// With Dir set, runs go there and nowhere under the storage root, and a
// restore from there lands in the workspace: it stages on the storage
// root's filesystem, never renaming across mounts.
func TestArchiveToASecondDirectoryAndRestore(t *testing.T) {
	root := t.TempDir()
	ws := makeWorkspace(t, root, "alice", false)
	mustWrite(t, filepath.Join(root, "exchange", "course101", "outbound", "ps1", "ps1.ipynb"), "{}", 0o644)
	want := treeOf(t, ws, defaultSkip)
	dir := filepath.Join(otherFilesystemDir(t), "archives")

	a, err := archive.New(archive.Options{Root: root, Dir: dir, Exclude: []string{"*.tmp", "node_modules"}, Clock: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"alice.tar.gz", "alice.tar.gz.sha256", "exchange/exchange.tar.gz", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, m.Run, f)); err != nil {
			t.Errorf("%s not in the archive directory: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "archives")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("archives/ created under the storage root (err=%v)", err)
	}
	runs, err := a.Runs(t.Context())
	if err != nil || len(runs) != 1 || !runs[0].Complete {
		t.Fatalf("Runs = %+v, %v; want the one complete run", runs, err)
	}

	rel, err := a.Restore(t.Context(), m.Run, "alice", false)
	if err != nil {
		t.Fatalf("Restore from %s: %v", dir, err)
	}
	got := treeOf(t, filepath.Join(ws, rel), nil)
	if os.Geteuid() == 0 {
		for n, w := range want {
			w.uid, w.gid = 1000, 100
			want[n] = w
		}
	}
	compareTrees(t, want, got)
	if ents, err := os.ReadDir(filepath.Join(root, ".restore")); err != nil || len(ents) != 0 {
		t.Errorf("staging area holds %d entries (err=%v), want none", len(ents), err)
	}
}
