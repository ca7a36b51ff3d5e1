package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/archive"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

const bigSize = 50 << 20

// newClock hands out a fixed time that tests move forward.
func newClock() *testsupport.Clock {
	return testsupport.NewClock(time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC))
}

// runName is the run the archiver names at the clock's time, plus offset.
func runName(c *testsupport.Clock, offset string) string {
	return c.Now().Format(archive.RunLayout) + offset
}

// writeRandom writes n deterministic pseudo-random (incompressible) bytes.
func writeRandom(t testing.TB, name string, n int64, seed uint64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seedb [32]byte
	seedb[0] = byte(seed)
	if _, err := io.CopyN(f, rand.NewChaCha8(seedb), n); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t testing.TB, name, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}

// makeWorkspace builds users/NAME with ordinary files, an executable, a
// symlink, a sub-second mtime, excluded paths and one 50 MB file.
func makeWorkspace(t testing.TB, root, user string, big bool) string {
	t.Helper()
	ws := filepath.Join(root, "users", user)
	mustWrite(t, filepath.Join(ws, "notebook.ipynb"), `{"cells": []}`, 0o644)
	mustWrite(t, filepath.Join(ws, "work", "run.sh"), "#!/bin/sh\necho hi\n", 0o755)
	mustWrite(t, filepath.Join(ws, "work", "deep", "data.csv"), "a,b\n1,2\n", 0o600)
	mustWrite(t, filepath.Join(ws, ".cache", "pip", "wheel"), "cached", 0o644)
	mustWrite(t, filepath.Join(ws, "work", ".cache", "x"), "nested cache", 0o644)
	mustWrite(t, filepath.Join(ws, "scratch.tmp"), "temp", 0o644)
	mustWrite(t, filepath.Join(ws, "node_modules", "left-pad", "index.js"), "module.exports=1", 0o644)
	if err := os.MkdirAll(filepath.Join(ws, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("work/deep/data.csv", filepath.Join(ws, "data-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(ws, "outside-link")); err != nil {
		t.Fatal(err)
	}
	if big {
		writeRandom(t, filepath.Join(ws, "big.bin"), bigSize, 1)
	}
	mt := time.Date(2024, 11, 5, 10, 20, 30, 123456789, time.UTC)
	if err := os.Chtimes(filepath.Join(ws, "notebook.ipynb"), mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(ws, "work", "deep"), mt, mt); err != nil {
		t.Fatal(err)
	}
	return ws
}

type node struct {
	typ    byte
	mode   int64
	sha    string
	link   string
	mtime  time.Time
	uid    int
	gid    int
	length int64
}

func (n node) String() string {
	return fmt.Sprintf("type=%c mode=%o sha=%.12s link=%q mtime=%s uid=%d gid=%d", n.typ, n.mode, n.sha, n.link, n.mtime.Format(time.RFC3339Nano), n.uid, n.gid)
}

// treeOf describes a directory the way the archive should: excluded paths
// left out, symlinks as links.
func treeOf(t testing.TB, dir string, skip func(rel string) bool) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		n := node{mode: int64(info.Mode().Perm()), mtime: info.ModTime().UTC(), uid: int(st.Uid), gid: int(st.Gid)}
		switch {
		case info.IsDir():
			n.typ = tar.TypeDir
		case info.Mode()&fs.ModeSymlink != 0:
			n.typ = tar.TypeSymlink
			n.mode = 0
			n.link, _ = os.Readlink(p)
		default:
			n.typ = tar.TypeReg
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.sha = sum(data)
			n.length = int64(len(data))
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func defaultSkip(rel string) bool {
	for _, e := range strings.Split(rel, "/") {
		if e == ".cache" || e == "node_modules" || strings.HasSuffix(e, ".tmp") {
			return true
		}
	}
	return false
}

// listTar reads a tar.gz into the same shape as treeOf.
func listTar(t testing.TB, r io.Reader) map[string]node {
	t.Helper()
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]node{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n := node{typ: h.Typeflag, mode: h.Mode, link: h.Linkname, mtime: h.ModTime.UTC(), uid: h.Uid, gid: h.Gid}
		if h.Typeflag == tar.TypeSymlink {
			n.mode = 0
		}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			n.sha = sum(data)
			n.length = int64(len(data))
		}
		out[strings.TrimSuffix(h.Name, "/")] = n
	}
	return out
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func fileSum(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return sum(data)
}

func compareTrees(t *testing.T, want, got map[string]node) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		w, wok := want[n]
		g, gok := got[n]
		switch {
		case !gok:
			t.Errorf("%s: missing", n)
		case !wok:
			t.Errorf("%s: unexpected entry (%v)", n, g)
		case w.typ == tar.TypeSymlink && g.typ == tar.TypeSymlink:
			if w.link != g.link {
				t.Errorf("%s: link %q, want %q", n, g.link, w.link)
			}
		case w != g:
			t.Errorf("%s:\n got %v\nwant %v", n, g, w)
		}
	}
}

func newArchiver(t testing.TB, root string, clock *testsupport.Clock, keep int) *archive.Archiver {
	t.Helper()
	a, err := archive.New(archive.Options{
		Root:    root,
		Exclude: []string{"*.tmp", "node_modules"},
		Keep:    keep,
		Clock:   clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRunArchivesWorkspaceWithExcludes(t *testing.T) {
	root := t.TempDir()
	ws := makeWorkspace(t, root, "alice", true)
	makeWorkspace(t, root, "bob", false)
	clock := newClock()
	a := newArchiver(t, root, clock, 0)

	m, err := a.Run(t.Context(), []string{"alice", "bob"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if m.Run != runName(clock, "") || len(m.Entries) != 2 || !m.Full {
		t.Fatalf("manifest = %+v", m)
	}
	runDir := filepath.Join(root, "archives", m.Run)
	if _, err := os.Stat(filepath.Join(runDir, "manifest.json")); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}

	name := filepath.Join(runDir, "alice.tar.gz")
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := listTar(t, f)
	compareTrees(t, treeOf(t, ws, defaultSkip), got)
	for n := range got {
		if strings.Contains(n, ".cache") {
			t.Errorf("excluded path %s is in the archive", n)
		}
	}
	if got["big.bin"].length != bigSize {
		t.Errorf("big.bin has %d bytes in the archive, want %d", got["big.bin"].length, bigSize)
	}

	// The .sha256 file is in sha256sum format and matches.
	sumLine, err := os.ReadFile(name + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	want := fileSum(t, name) + "  alice.tar.gz\n"
	if string(sumLine) != want {
		t.Errorf(".sha256 = %q, want %q", sumLine, want)
	}
	if m.Entries[0].SHA256 != fileSum(t, name) || m.Entries[0].Size != fileSize(t, name) {
		t.Errorf("manifest entry %+v does not describe %s", m.Entries[0], name)
	}
	if path, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(path, "-c", "alice.tar.gz.sha256", "bob.tar.gz.sha256")
		cmd.Dir = runDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}
	// GNU tar reads the archive too (PAX headers, symlinks).
	if path, err := exec.LookPath("tar"); err == nil {
		out, err := exec.Command(path, "tzf", name).CombinedOutput()
		if err != nil {
			t.Fatalf("tar tzf: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "work/deep/data.csv") || strings.Contains(string(out), ".cache") {
			t.Errorf("tar tzf listing unexpected:\n%s", out)
		}
	}
	// No leftovers next to the archives.
	ents, _ := os.ReadDir(runDir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".partial") || strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func fileSize(t testing.TB, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// cancelAfter cancels ctx once n bytes of the file named rel were read.
func cancelAfter(rel string, n int64, cancel context.CancelFunc) func(string, io.Reader) io.Reader {
	return func(name string, r io.Reader) io.Reader {
		if name != rel {
			return r
		}
		return &hookReader{r: r, left: n, fire: cancel}
	}
}

type hookReader struct {
	r    io.Reader
	left int64
	fire func()
}

func (h *hookReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.left -= int64(n)
	if h.left <= 0 && h.fire != nil {
		h.fire()
		h.fire = nil
	}
	return n, err
}

func TestCancelledRunKeepsPreviousArchive(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", true)
	clock := newClock()
	a := newArchiver(t, root, clock, 1)

	first, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	firstFile := filepath.Join(root, "archives", first.Run, "alice.tar.gz")
	firstSum := fileSum(t, firstFile)

	clock.Advance(24 * time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var canceled atomic.Bool
	archive.SetInputHook(a, cancelAfter("big.bin", 10<<20, func() { canceled.Store(true); cancel() }))
	_, err = a.Run(ctx, []string{"alice"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: err = %v, want context.Canceled", err)
	}
	if !canceled.Load() {
		t.Fatal("the hook never cancelled: big.bin was not streamed")
	}
	second := filepath.Join(root, "archives", runName(clock, ""))
	for _, name := range []string{"alice.tar.gz", "alice.tar.gz.partial", "alice.tar.gz.sha256", "manifest.json"} {
		if _, err := os.Lstat(filepath.Join(second, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cancelled run left %s (err=%v)", name, err)
		}
	}
	if got := fileSum(t, firstFile); got != firstSum {
		t.Errorf("previous archive changed: %s, want %s", got, firstSum)
	}
	runs, err := a.Runs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Complete || !runs[1].Complete || runs[1].Run != first.Run {
		t.Fatalf("runs = %+v, want the cancelled run incomplete and the first complete", runs)
	}

	// The next full run removes the incomplete leftover but keeps (Keep=1)
	// only itself among complete runs.
	archive.SetInputHook(a, nil)
	clock.Advance(24 * time.Hour)
	third, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	runs, _ = a.Runs(t.Context())
	if len(runs) != 2 || runs[0].Run != third.Run || runs[1].Complete {
		t.Errorf("after a good run with Keep=1: runs = %v, want %s and the incomplete run (newer than the last complete run when this one started)", runNames(runs), third.Run)
	}
	// The run after that removes the incomplete leftover: it is now older
	// than the newest complete run.
	clock.Advance(24 * time.Hour)
	fourth, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	runs, _ = a.Runs(t.Context())
	if len(runs) != 1 || runs[0].Run != fourth.Run {
		t.Errorf("runs = %v, want only %s", runNames(runs), fourth.Run)
	}
}

func runNames(runs []archive.RunInfo) []string {
	var s []string
	for _, r := range runs {
		s = append(s, fmt.Sprintf("%s(complete=%v)", r.Run, r.Complete))
	}
	return s
}

func TestRetention(t *testing.T) {
	tests := []struct {
		name string
		keep int
		// users per run, oldest first; "ghost" has no workspace and fails
		runs [][]string
		want []int // indexes of runs left, newest first
	}{
		{"keep two of three", 2, [][]string{{"alice"}, {"alice"}, {"alice"}}, []int{2, 1}},
		{"keep all when Keep is zero", 0, [][]string{{"alice"}, {"alice"}, {"alice"}}, []int{2, 1, 0}},
		{"failed runs do not push good ones out", 1, [][]string{{"alice"}, {"ghost"}, {"ghost"}}, []int{2, 1, 0}},
		{"good run after failures drops everything older", 1, [][]string{{"alice"}, {"ghost"}, {"alice"}}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			makeWorkspace(t, root, "alice", false)
			clock := newClock()
			a := newArchiver(t, root, clock, tt.keep)
			var ids []string
			for _, users := range tt.runs {
				m, err := a.Run(t.Context(), users)
				if (err != nil) != (users[0] == "ghost") {
					t.Fatalf("Run(%v): err = %v", users, err)
				}
				ids = append(ids, m.Run)
				clock.Advance(time.Hour)
			}
			runs, err := a.Runs(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, i := range tt.want {
				want = append(want, ids[i])
			}
			var got []string
			for _, r := range runs {
				got = append(got, r.Run)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("runs = %v, want %v", got, want)
			}
		})
	}
}

func TestSingleUserRunsDoNotCountForRetention(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", false)
	clock := newClock()
	a := newArchiver(t, root, clock, 1)
	full, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Advance(time.Minute)
		if _, err := a.ArchiveNow(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
	}
	runs, _ := a.Runs(t.Context())
	if len(runs) != 4 || runs[3].Run != full.Run {
		t.Errorf("runs = %v, want the full run kept beside three single-user runs", runNames(runs))
	}
}

func TestSeveralRunsInOneSecond(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", false)
	clock := newClock()
	a := newArchiver(t, root, clock, 0)
	var ids []string
	for range 3 {
		m, err := a.Run(t.Context(), []string{"alice"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Run)
	}
	want := []string{runName(clock, ""), runName(clock, "-2"), runName(clock, "-3")}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("run ids = %v, want %v", ids, want)
	}
	runs, _ := a.Runs(t.Context())
	if len(runs) != 3 || runs[0].Run != want[2] {
		t.Errorf("Runs() = %v, want newest (%s) first", runNames(runs), want[2])
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	root := t.TempDir()
	ws := makeWorkspace(t, root, "alice", true)
	// A read-only directory must still receive its children on restore.
	mustWrite(t, filepath.Join(ws, "ro", "kept.txt"), "kept", 0o444)
	if err := os.Chmod(filepath.Join(ws, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(ws, "ro"), 0o755) })
	want := treeOf(t, ws, defaultSkip)

	clock := newClock()
	a := newArchiver(t, root, clock, 0)
	m, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := a.Restore(t.Context(), m.Run, "alice", false)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if rel != "restored-"+m.Run {
		t.Errorf("Restore returned %q, want restored-%s", rel, m.Run)
	}
	got := treeOf(t, filepath.Join(ws, rel), nil)
	if os.Geteuid() == 0 {
		// Restored files belong to the notebook user, not to the archive's owner.
		for n, g := range got {
			if g.uid != 1000 || g.gid != 100 {
				t.Errorf("%s owned by %d:%d, want 1000:100", n, g.uid, g.gid)
			}
		}
		for n, w := range want {
			w.uid, w.gid = 1000, 100
			want[n] = w
		}
	}
	compareTrees(t, want, got)

	if _, err := a.Restore(t.Context(), m.Run, "alice", false); !errors.Is(err, archive.ErrExists) {
		t.Errorf("second Restore without overwrite: err = %v, want ErrExists", err)
	}
	mustWrite(t, filepath.Join(ws, rel, "stray.txt"), "written after restore", 0o644)
	if _, err := a.Restore(t.Context(), m.Run, "alice", true); err != nil {
		t.Fatalf("Restore with overwrite: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ws, rel, "stray.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("overwrite kept a file that is not in the archive (err=%v)", err)
	}
	ents, _ := os.ReadDir(ws)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("leftover temporary directory %s", e.Name())
		}
	}
}

func TestRestoreRefusesCorruptArchive(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", false)
	a := newArchiver(t, root, newClock(), 0)
	m, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(root, "archives", m.Run, "alice.tar.gz")
	data, _ := os.ReadFile(name)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(name, data, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Restore(t.Context(), m.Run, "alice", false); !errors.Is(err, archive.ErrChecksum) {
		t.Fatalf("Restore of a corrupted archive: err = %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(filepath.Join(root, "users", "alice", "restored-"+m.Run)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused restore created its destination")
	}
}

type tarEntry struct {
	name, link, body string
	typ              byte
}

// plant writes a hand-made archive with a valid .sha256 into a run.
func plant(t *testing.T, root, run, user string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), ModTime: time.Unix(1e9, 0)}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	dir := filepath.Join(root, "archives", run)
	os.MkdirAll(dir, 0o750)
	if err := os.WriteFile(filepath.Join(dir, user+".tar.gz"), buf.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	line := sum(buf.Bytes()) + "  " + user + ".tar.gz\n"
	if err := os.WriteFile(filepath.Join(dir, user+".tar.gz.sha256"), []byte(line), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreRefusesMaliciousArchives(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
	}{
		{"parent traversal", []tarEntry{{name: "../../escaped.txt", body: "x", typ: tar.TypeReg}}},
		{"traversal inside the path", []tarEntry{{name: "a/../../escaped.txt", body: "x", typ: tar.TypeReg}}},
		{"absolute path", []tarEntry{{name: "/tmp/escaped.txt", body: "x", typ: tar.TypeReg}}},
		{"write through an escaping symlink", []tarEntry{{name: "link", link: "../../..", typ: tar.TypeSymlink}, {name: "link/escaped.txt", body: "x", typ: tar.TypeReg}}},
		{"write through an absolute symlink", []tarEntry{{name: "link", link: "/tmp", typ: tar.TypeSymlink}, {name: "link/escaped.txt", body: "x", typ: tar.TypeReg}}},
		{"directory through a symlink", []tarEntry{{name: "link", link: "..", typ: tar.TypeSymlink}, {name: "link/sub/", typ: tar.TypeDir}}},
		{"file replacing a symlink", []tarEntry{{name: "link", link: "../../../escaped.txt", typ: tar.TypeSymlink}, {name: "link", body: "x", typ: tar.TypeReg}}},
		{"hard link", []tarEntry{{name: "hl", link: "/etc/passwd", typ: tar.TypeLink}}},
		{"device", []tarEntry{{name: "dev", typ: tar.TypeChar}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			ws := filepath.Join(root, "users", "alice")
			mustWrite(t, filepath.Join(ws, "keep.txt"), "mine", 0o644)
			run := "2025-01-01T000000Z"
			plant(t, root, run, "alice", append([]tarEntry{{name: "ok.txt", body: "fine", typ: tar.TypeReg}}, tt.entries...))
			a := newArchiver(t, root, newClock(), 0)
			_, err := a.Restore(t.Context(), run, "alice", false)
			if !errors.Is(err, archive.ErrUnsafeArchive) {
				t.Fatalf("Restore: err = %v, want ErrUnsafeArchive", err)
			}
			for _, p := range []string{
				filepath.Join(root, "escaped.txt"),
				filepath.Join(root, "users", "escaped.txt"),
				filepath.Join(ws, "escaped.txt"),
				filepath.Join(ws, "restored-"+run),
			} {
				if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists after a refused restore", p)
				}
			}
			ents, _ := os.ReadDir(ws)
			if len(ents) != 1 {
				t.Errorf("workspace holds %d entries after a refused restore, want only keep.txt", len(ents))
			}
		})
	}
}

// faultWriter fails with err once limit bytes were written.
type faultWriter struct {
	w     io.Writer
	limit int64
	err   error
}

func (f *faultWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > f.limit {
		n, _ := f.w.Write(p[:f.limit])
		f.limit = 0
		return n, f.err
	}
	f.limit -= int64(len(p))
	return f.w.Write(p)
}

func TestDiskFullFailsCleanly(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", true)
	clock := newClock()
	a := newArchiver(t, root, clock, 1)
	first, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	firstFile := filepath.Join(root, "archives", first.Run, "alice.tar.gz")
	firstSum := fileSum(t, firstFile)

	clock.Advance(24 * time.Hour)
	archive.SetOutputHook(a, func(w io.Writer) io.Writer {
		return &faultWriter{w: w, limit: 5 << 20, err: &fs.PathError{Op: "write", Path: "alice.tar.gz.partial", Err: syscall.ENOSPC}}
	})
	m, err := a.Run(t.Context(), []string{"alice"})
	if err == nil {
		t.Fatal("Run on a full disk succeeded")
	}
	if !strings.Contains(err.Error(), "storage is full") || !strings.Contains(m.Entries[0].Error, "storage is full") {
		t.Errorf("error does not say the storage is full: %v / entry %q", err, m.Entries[0].Error)
	}
	if _, err := a.ArchiveUser(t.Context(), m.Run, "alice"); !errors.Is(err, archive.ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("ArchiveUser: err = %v, want ErrDiskFull wrapping ENOSPC", err)
	}
	runDir := filepath.Join(root, "archives", m.Run)
	for _, name := range []string{"alice.tar.gz", "alice.tar.gz.partial"} {
		if _, err := os.Lstat(filepath.Join(runDir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("failed run left %s", name)
		}
	}
	if _, err := os.Stat(filepath.Join(runDir, "manifest.json")); err != nil {
		t.Errorf("the failed run has no manifest recording the error: %v", err)
	}
	if got := fileSum(t, firstFile); got != firstSum {
		t.Errorf("previous archive changed")
	}
	runs, _ := a.Runs(t.Context())
	if len(runs) != 2 {
		t.Errorf("runs = %v: retention must not drop the last good run after a failed one", runNames(runs))
	}
}

func TestOpenValidatesNames(t *testing.T) {
	root := t.TempDir()
	makeWorkspace(t, root, "alice", false)
	a := newArchiver(t, root, newClock(), 0)
	m, err := a.Run(t.Context(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, run, user string
		want            error
	}{
		{"traversal in user", m.Run, "../alice", archive.ErrInvalidName},
		{"slash in user", m.Run, "a/b", archive.ErrInvalidName},
		{"dot user", m.Run, "..", archive.ErrInvalidName},
		{"empty user", m.Run, "", archive.ErrInvalidName},
		{"traversal in run", "../users", "alice", archive.ErrInvalidName},
		{"run not a run id", "latest", "alice", archive.ErrInvalidName},
		{"unknown user", m.Run, "bob", archive.ErrNotFound},
		{"unknown run", "2020-01-01T000000Z", "alice", archive.ErrNotFound},
		{"existing archive", m.Run, "alice", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, size, err := a.Open(tt.run, tt.user)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open(%q, %q): err = %v, want %v", tt.run, tt.user, err, tt.want)
			}
			if err == nil {
				defer rc.Close()
				data, _ := io.ReadAll(rc)
				if int64(len(data)) != size || sum(data) != m.Entries[0].SHA256 {
					t.Errorf("Open returned %d bytes (size %d) not matching the manifest", len(data), size)
				}
			}
			if _, err := a.Restore(t.Context(), tt.run, tt.user, false); tt.want == archive.ErrInvalidName && !errors.Is(err, archive.ErrInvalidName) {
				t.Errorf("Restore(%q, %q): err = %v, want ErrInvalidName", tt.run, tt.user, err)
			}
		})
	}
}

func TestStreamWorkspace(t *testing.T) {
	root := t.TempDir()
	ws := makeWorkspace(t, root, "alice", false)
	a := newArchiver(t, root, newClock(), 0)
	var buf bytes.Buffer
	if err := a.StreamWorkspace(t.Context(), &buf, "alice"); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, treeOf(t, ws, defaultSkip), listTar(t, &buf))
	if _, err := os.Stat(filepath.Join(root, "archives")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("StreamWorkspace wrote under archives/")
	}
	if err := a.StreamWorkspace(t.Context(), io.Discard, "../alice"); !errors.Is(err, archive.ErrInvalidName) {
		t.Errorf("StreamWorkspace(../alice): err = %v, want ErrInvalidName", err)
	}
}
