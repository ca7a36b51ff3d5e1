package archive_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRestoreRaceCannotWriteIntoAnotherWorkspace plays a student who, while
// an admin restores into their workspace, keeps replacing every directory
// the restore creates there with a symlink to another student's workspace.
// The restore runs as the orchestrator (root in production); whatever it
// follows, it writes. The other workspace must never change.
func TestRestoreRaceCannotWriteIntoAnotherWorkspace(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", false)
	alice := filepath.Join(root, "users", "alice")
	bob := filepath.Join(root, "users", "bob")
	mustWrite(t, filepath.Join(bob, "bob.txt"), "bob's own", 0o644)
	want := treeOf(t, bob, nil)

	a := newArchiver(t, root, newClock(), 0)
	m, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}

	if err := os.Mkdir(filepath.Join(alice, "moved"), 0o755); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			ents, _ := os.ReadDir(alice)
			for _, e := range ents {
				if !e.IsDir() || !strings.Contains(e.Name(), "restored-") {
					continue
				}
				p := filepath.Join(alice, e.Name())
				if os.Rename(p, filepath.Join(alice, "moved", e.Name()+"-"+strconv.Itoa(n))) != nil {
					continue
				}
				if os.Symlink(bob, p) == nil {
					swaps.Add(1)
				}
			}
		}
	})

	const iterations = 300
	for i := range iterations {
		// Errors are expected while the attacker plays; only bob matters.
		a.Restore(t.Context(), m.Run, "alice", true)
		compareTrees(t, want, treeOf(t, bob, nil))
		if t.Failed() {
			close(stop)
			wg.Wait()
			t.Fatalf("restore %d of %d changed bob's workspace (%d symlink swaps so far)", i+1, iterations, swaps.Load())
		}
	}
	close(stop)
	wg.Wait()
	if swaps.Load() == 0 {
		t.Fatal("the attacker never swapped a directory for a symlink: the race was not run")
	}

	// Without the attacker, a restore over the symlinks left behind works
	// and leaves bob alone.
	rel, err := a.Restore(t.Context(), m.Run, "alice", true)
	if err != nil {
		t.Fatalf("Restore after the race: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(alice, rel)); err != nil || !fi.IsDir() {
		t.Fatalf("%s is not a directory after the restore (err=%v)", rel, err)
	}
	compareTrees(t, want, treeOf(t, bob, nil))
	// Failed and replaced restores leave nothing in the staging area.
	if ents, err := os.ReadDir(filepath.Join(root, ".restore")); err != nil || len(ents) != 0 {
		t.Errorf("staging area holds %d entries (err=%v), want none", len(ents), err)
	}
	t.Logf("%d restores, %d symlink swaps", iterations, swaps.Load())
}
