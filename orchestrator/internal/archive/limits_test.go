package archive_test

import (
	"bytes"
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

	"github.com/swarmhub/swarmhub/orchestrator/internal/archive"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

// eventLog keeps the events the archiver records.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (e *eventLog) AddEvent(_ context.Context, kind, user, message string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, kind+" "+user+": "+message)
}

// find returns the one event containing all of parts.
func (e *eventLog) find(t *testing.T, parts ...string) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	var found []string
outer:
	for _, ev := range e.events {
		for _, p := range parts {
			if !strings.Contains(ev, p) {
				continue outer
			}
		}
		found = append(found, ev)
	}
	if len(found) != 1 {
		t.Fatalf("want one event with %q, got %q among %q", parts, found, e.events)
	}
	return found[0]
}

type limitsEnv struct {
	root   string
	ws     string
	clock  *testsupport.Clock
	events *eventLog
	log    *testsupport.Buffer
	a      *archive.Archiver
}

func newLimitsEnv(t *testing.T, o archive.Options) *limitsEnv {
	t.Helper()
	e := &limitsEnv{root: t.TempDir(), clock: newClock(), events: &eventLog{}, log: &testsupport.Buffer{}}
	e.ws = makeWorkspace(t, e.root, "alice", false)
	o.Root, o.Clock, o.Events = e.root, e.clock.Now, e.events
	o.Logger = slog.New(slog.NewTextHandler(e.log, nil))
	a, err := archive.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
	return e
}

// truncateHuge makes name a 16 TiB sparse file (the largest ext4 allows
// with 4 KiB blocks when 16 TiB itself is refused) holding a few bytes.
func truncateHuge(t *testing.T, name string) int64 {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("a little real data at the start"); err != nil {
		t.Fatal(err)
	}
	size := int64(16 << 40)
	err = f.Truncate(size)
	if errors.Is(err, syscall.EFBIG) {
		size -= 4096
		err = f.Truncate(size)
	}
	if err != nil {
		t.Fatalf("truncate to 16 TiB: %v", err)
	}
	return size
}

// TestSparseFileIsLeftOut plants a 16 TiB sparse file in a workspace: read
// as tar does, its holes are 16 TiB of zeros (hours of CPU, a full archive
// disk). The nightly archive and the workspace download leave it out, say
// so in the log and an event, and keep everything else.
func TestSparseFileIsLeftOut(t *testing.T) {
	e := newLimitsEnv(t, archive.Options{Exclude: []string{"*.tmp", "node_modules"}})
	size := truncateHuge(t, filepath.Join(e.ws, "work", "huge.img"))
	want := treeOf(t, e.ws, func(rel string) bool { return rel == "work/huge.img" || defaultSkip(rel) })

	m, err := e.a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	entry := m.Entries[0]
	if entry.Size > 1<<20 || entry.Bytes > 1<<20 {
		t.Errorf("archive has %d bytes (%d uncompressed): the sparse file went in", entry.Size, entry.Bytes)
	}
	if len(entry.Skipped) != 1 || !strings.HasPrefix(entry.Skipped[0], "work/huge.img: sparse") || m.Limited() != 1 {
		t.Errorf("manifest entry skipped = %q, want work/huge.img as sparse", entry.Skipped)
	}
	f, err := os.Open(filepath.Join(e.root, "archives", m.Run, "alice.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	compareTrees(t, want, listTar(t, f))
	ev := e.events.find(t, archive.EventLimit+" alice", "archive run "+m.Run, "work/huge.img")
	if !strings.Contains(ev, "sparse") {
		t.Errorf("event %q does not say the file is sparse", ev)
	}
	if !strings.Contains(e.log.String(), "level=WARN") || !strings.Contains(e.log.String(), "work/huge.img") {
		t.Errorf("no warning naming work/huge.img in the log:\n%s", e.log)
	}

	var buf bytes.Buffer
	if err := e.a.StreamWorkspace(t.Context(), &buf, "alice"); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 1<<20 {
		t.Errorf("workspace download has %d bytes: the sparse file went in", buf.Len())
	}
	compareTrees(t, want, listTar(t, &buf))
	e.events.find(t, "workspace download", "work/huge.img")

	// The file is still there: only the archive leaves it out.
	if fi, err := os.Stat(filepath.Join(e.ws, "work", "huge.img")); err != nil || fi.Size() != size {
		t.Errorf("huge.img changed: %v", err)
	}
}

func TestMaxFileSizeLeavesLargeFilesOut(t *testing.T) {
	e := newLimitsEnv(t, archive.Options{MaxFileSize: 1 << 20})
	writeRandom(t, filepath.Join(e.ws, "big.bin"), 1<<20+1, 3)
	writeRandom(t, filepath.Join(e.ws, "fits.bin"), 1<<20, 4)
	m, err := e.a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	got := tarOf(t, e.root, m)
	if _, ok := got["big.bin"]; ok {
		t.Error("big.bin, above max_file_size, is in the archive")
	}
	if got["fits.bin"].sha != fileSum(t, filepath.Join(e.ws, "fits.bin")) {
		t.Error("fits.bin, exactly max_file_size, is not archived intact")
	}
	if s := m.Entries[0].Skipped; len(s) != 1 || !strings.HasPrefix(s[0], "big.bin: apparent size 1048577") {
		t.Errorf("skipped = %q", s)
	}
	e.events.find(t, "alice", "big.bin: apparent size")
}

func TestMaxBytesBoundsTheWorkspace(t *testing.T) {
	const limit = 500 << 10
	e := newLimitsEnv(t, archive.Options{MaxBytes: limit})
	// Walked in name order: a fits, b would cross the limit, c still fits.
	writeRandom(t, filepath.Join(e.ws, "a.bin"), 300<<10, 5)
	writeRandom(t, filepath.Join(e.ws, "b.bin"), 300<<10, 6)
	mustWrite(t, filepath.Join(e.ws, "c.txt"), "small", 0o644)
	m, err := e.a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	entry := m.Entries[0]
	if entry.Bytes > limit {
		t.Errorf("archived %d bytes of content, limit %d", entry.Bytes, limit)
	}
	got := tarOf(t, e.root, m)
	if _, ok := got["b.bin"]; ok {
		t.Error("b.bin, past the workspace limit, is in the archive")
	}
	for _, n := range []string{"a.bin", "c.txt", "notebook.ipynb"} {
		if got[n].sha != fileSum(t, filepath.Join(e.ws, n)) {
			t.Errorf("%s is not archived intact", n)
		}
	}
	if len(entry.Skipped) != 1 || !strings.HasPrefix(entry.Skipped[0], "b.bin:") || !strings.Contains(entry.Skipped[0], "limit") {
		t.Errorf("skipped = %q, want b.bin", entry.Skipped)
	}
	e.events.find(t, "alice", "b.bin:")

	// The download has the same bound.
	var buf bytes.Buffer
	if err := e.a.StreamWorkspace(t.Context(), &buf, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok := listTar(t, &buf)["b.bin"]; ok {
		t.Error("b.bin is in the workspace download")
	}
	e.events.find(t, "workspace download", "b.bin:")
}

// TestMaxDurationCutsTheArchive moves the archiver's clock past the limit
// while a file is read: the archive ends there, valid, and says where.
func TestMaxDurationCutsTheArchive(t *testing.T) {
	e := newLimitsEnv(t, archive.Options{MaxDuration: time.Hour})
	writeRandom(t, filepath.Join(e.ws, "a.bin"), 1<<20, 7)
	writeRandom(t, filepath.Join(e.ws, "b.bin"), 4<<20, 8)
	mustWrite(t, filepath.Join(e.ws, "c.txt"), "after the cut", 0o644)
	archive.SetInputHook(e.a, func(rel string, r io.Reader) io.Reader {
		if rel != "b.bin" {
			return r
		}
		return &hookReader{r: r, left: 1 << 20, fire: func() { e.clock.Advance(2 * time.Hour) }}
	})
	m, err := e.a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	entry := m.Entries[0]
	if !strings.Contains(entry.Cut, "b.bin") || !strings.Contains(entry.Cut, "1h0m0s") || m.Limited() != 1 {
		t.Errorf("cut = %q, want the time limit at b.bin", entry.Cut)
	}
	got := tarOf(t, e.root, m)
	if got["a.bin"].sha != fileSum(t, filepath.Join(e.ws, "a.bin")) {
		t.Error("a.bin, read before the cut, is not archived intact")
	}
	if got["b.bin"].length != 4<<20 || got["b.bin"].sha == fileSum(t, filepath.Join(e.ws, "b.bin")) {
		t.Errorf("b.bin in the archive: %v, want its full length with zeros after the cut", got["b.bin"])
	}
	if _, ok := got["c.txt"]; ok {
		t.Error("c.txt, after the cut, is in the archive")
	}
	e.events.find(t, archive.EventLimit+" alice", "cut: time limit 1h0m0s", "b.bin")
}

func tarOf(t *testing.T, root string, m archive.Manifest) map[string]node {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "archives", m.Run, m.Entries[0].File))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return listTar(t, f)
}
