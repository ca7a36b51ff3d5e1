package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var mtime = time.Date(2024, 10, 1, 9, 30, 0, 0, time.UTC)

type file struct {
	body string
	mode fs.FileMode
	link string // symlink target when set
}

// volumes is the fixture: the current setup's volumes, by volume and path.
var volumes = map[string]map[string]file{
	"jupyterhub-user-alice": {
		"assignment1/solution.ipynb": {body: `{"cells": []}`, mode: 0o644},
		"assignment1/data.csv":       {body: "a,b\n1,2\n", mode: 0o600},
		"bin/run.sh":                 {body: "#!/bin/sh\n", mode: 0o755},
		"latest":                     {link: "assignment1/solution.ipynb"},
	},
	"jupyterhub-user-a-2eb": { // DockerSpawner's escaping of "a.b"
		"notes.txt": {body: "hello", mode: 0o644},
	},
	"exchange": {
		"course101/outbound/assignment1/task.ipynb": {body: `{"task": 1}`, mode: 0o644},
	},
	"some-other-volume": {
		"x": {body: "not ours", mode: 0o644},
	},
}

func makeVolumes(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for vol, files := range volumes {
		data := filepath.Join(dir, vol, "_data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		for rel, f := range files {
			p := filepath.Join(data, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if f.link != "" {
				if err := os.Symlink(f.link, p); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, f.mode)
			os.Chtimes(p, mtime, mtime)
		}
	}
	return dir
}

// makeZip builds what `zip -r -y volumes.zip /var/lib/docker/volumes` holds.
func makeZip(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "volumes.zip")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for vol, files := range volumes {
		for rel, fl := range files {
			h := &zip.FileHeader{Name: "var/lib/docker/volumes/" + vol + "/_data/" + rel, Method: zip.Deflate, Modified: mtime}
			body := fl.body
			if fl.link != "" {
				h.SetMode(fs.ModeSymlink | 0o777)
				body = fl.link
			} else {
				h.SetMode(fl.mode)
			}
			w, err := zw.CreateHeader(h)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, body)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return name
}

// wantTree is where each fixture file must land (with --map-names).
func wantTree() map[string]file {
	out := map[string]file{}
	for vol, files := range volumes {
		var dest string
		switch vol {
		case "jupyterhub-user-alice":
			dest = "users/alice"
		case "jupyterhub-user-a-2eb":
			dest = "users/a.b"
		case "exchange":
			dest = "exchange"
		default:
			continue
		}
		for rel, f := range files {
			out[dest+"/"+rel] = f
		}
	}
	return out
}

func importOnce(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(t.Context(), args, &out, &out)
	return out.String(), err
}

// checkTree compares the storage root with wantTree: content, mode, mtime,
// symlink target, and owner 1000:100 when running as root.
func checkTree(t *testing.T, root string) {
	t.Helper()
	for rel, f := range wantTree() {
		p := filepath.Join(root, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if os.Geteuid() == 0 {
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != 1000 || st.Gid != 100 {
				t.Errorf("%s owned by %d:%d, want 1000:100", rel, st.Uid, st.Gid)
			}
		}
		if f.link != "" {
			if target, _ := os.Readlink(p); target != f.link {
				t.Errorf("%s: link to %q, want %q", rel, target, f.link)
			}
			continue
		}
		data, _ := os.ReadFile(p)
		if string(data) != f.body || fi.Mode().Perm() != f.mode || !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: %q mode %v mtime %s, want %q mode %v mtime %s", rel, data, fi.Mode().Perm(), fi.ModTime(), f.body, f.mode, mtime)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "users", "some-other-volume")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("an unrelated volume was imported")
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if strings.HasSuffix(p, tmpSuffix) {
			t.Errorf("leftover temporary file %s", p)
		}
		return nil
	})
}

// snapshot records every path's inode and mtime, to prove a run wrote nothing.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		st := fi.Sys().(*syscall.Stat_t)
		out[p] = fmt.Sprintf("ino=%d mtime=%d mode=%v", st.Ino, fi.ModTime().UnixNano(), fi.Mode())
		return nil
	})
	return out
}

func TestImportFromDirectoryIsIdempotent(t *testing.T) {
	from, root := makeVolumes(t), t.TempDir()
	out, err := importOnce(t, "--from", from, "--to", root, "--map-names")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	checkTree(t, root)
	if !strings.Contains(out, "summary: volumes 3, files copied 6, skipped 0") || !strings.Contains(out, "mismatches 0, errors 0") {
		t.Errorf("summary:\n%s", out)
	}
	before := snapshot(t, root)

	out, err = importOnce(t, "--from", from, "--to", root, "--map-names")
	if err != nil {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "files copied 0, skipped 6") {
		t.Errorf("second run copied something:\n%s", out)
	}
	after := snapshot(t, root)
	for p, s := range after {
		if before[p] != s && !strings.HasSuffix(p, stateName) {
			t.Errorf("%s changed on the second run: %s → %s", p, before[p], s)
		}
	}

	// A file changed at the source after the import is picked up.
	src := filepath.Join(from, "jupyterhub-user-alice", "_data", "assignment1", "data.csv")
	os.WriteFile(src, []byte("a,b\n1,2\n3,4\n"), 0o600)
	out, err = importOnce(t, "--from", from, "--to", root, "--map-names")
	if err != nil || !strings.Contains(out, "files copied 1, skipped 5") {
		t.Fatalf("import after a change: %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "users", "alice", "assignment1", "data.csv")); string(data) != "a,b\n1,2\n3,4\n" {
		t.Errorf("changed file not re-imported: %q", data)
	}
}

func TestImportDetectsSameSizeAndMtimeButDifferentContent(t *testing.T) {
	from, root := makeVolumes(t), t.TempDir()
	if out, err := importOnce(t, "--from", from, "--to", root, "--map-names"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	// Damage the copy without changing size or mtime.
	dst := filepath.Join(root, "users", "alice", "bin", "run.sh")
	os.WriteFile(dst, []byte("#!/bin/XX\n"), 0o755)
	os.Chtimes(dst, mtime, mtime)

	// A completed volume trusts size and mtime...
	out, err := importOnce(t, "--from", from, "--to", root, "--map-names")
	if err != nil || !strings.Contains(out, "files copied 0") {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	// ...and --verify hashes and repairs it.
	out, err = importOnce(t, "--from", from, "--to", root, "--map-names", "--verify")
	if err != nil || !strings.Contains(out, "files copied 1, skipped 5") {
		t.Fatalf("verify import: %v\n%s", err, out)
	}
	checkTree(t, root)
}

func TestImportFromZip(t *testing.T) {
	zipName, root := makeZip(t), t.TempDir()
	out, err := importOnce(t, "--from-zip", zipName, "--to", root, "--map-names")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	checkTree(t, root)
	out, err = importOnce(t, "--from-zip", zipName, "--to", root, "--map-names")
	if err != nil || !strings.Contains(out, "files copied 0, skipped 6") {
		t.Errorf("second zip import: %v\n%s", err, out)
	}
}

// TestImportFromRealZip uses Info-ZIP the way today's admins do (with -y so
// symlinks stay links, and the *.cache* exclusion).
func TestImportFromRealZip(t *testing.T) {
	zipBin, err := exec.LookPath("zip")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("zip is not installed (apt-get install zip)")
		}
		t.Skip("zip is not installed (apt-get install zip)")
	}
	top := t.TempDir()
	vols := filepath.Join(top, "var", "lib", "docker")
	if err := os.MkdirAll(vols, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(makeVolumes(t), filepath.Join(vols, "volumes")); err != nil {
		t.Fatal(err)
	}
	zipName := filepath.Join(t.TempDir(), "volumes.zip")
	cmd := exec.Command(zipBin, "-q", "-r", "-y", zipName, "var/lib/docker/volumes", "-x", "*.cache*")
	cmd.Dir = top
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v\n%s", err, out)
	}
	root := t.TempDir()
	if out, err := importOnce(t, "--from-zip", zipName, "--to", root, "--map-names"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	checkTree(t, root)
}

func TestDryRunWritesNothing(t *testing.T) {
	from, root := makeVolumes(t), t.TempDir()
	out, err := importOnce(t, "--from", from, "--to", root, "--map-names", "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 0 {
		t.Errorf("dry run wrote %d entries into the storage root", len(ents))
	}
	for _, want := range []string{
		"copy users/alice/assignment1/data.csv (8 bytes)",
		"link users/alice/latest -> assignment1/solution.ipynb",
		"copy users/a.b/notes.txt",
		"copy exchange/course101/outbound/assignment1/task.ipynb",
		"ignore volume some-other-volume",
		"files to copy 6",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	// After a real import, a dry run has nothing to do.
	if out, err := importOnce(t, "--from", from, "--to", root, "--map-names"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	before := snapshot(t, root)
	out, err = importOnce(t, "--from", from, "--to", root, "--map-names", "--dry-run")
	if err != nil || !strings.Contains(out, "files to copy 0") {
		t.Errorf("dry run after import: %v\n%s", err, out)
	}
	if after := snapshot(t, root); !mapsEqual(before, after) {
		t.Error("a dry run changed the storage root")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestInterruptedImportResumes(t *testing.T) {
	from, root := makeVolumes(t), t.TempDir()
	// What a killed run leaves: one file done, one half-written temporary,
	// no completion in the state file.
	ws := filepath.Join(root, "users", "alice", "assignment1")
	os.MkdirAll(ws, 0o755)
	os.WriteFile(filepath.Join(ws, "solution.ipynb"), []byte(`{"cells": []}`), 0o644)
	os.Chtimes(filepath.Join(ws, "solution.ipynb"), mtime, mtime)
	os.WriteFile(filepath.Join(ws, "data.csv"+tmpSuffix), []byte("a,"), 0o600)

	out, err := importOnce(t, "--from", from, "--to", root, "--map-names")
	if err != nil {
		t.Fatalf("resumed import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "files copied 5, skipped 1") {
		t.Errorf("resume did not skip the finished file:\n%s", out)
	}
	checkTree(t, root)
	state, err := os.ReadFile(filepath.Join(root, stateName))
	if err != nil {
		t.Fatal(err)
	}
	for _, vol := range []string{"jupyterhub-user-alice", "jupyterhub-user-a-2eb", "exchange"} {
		if !strings.Contains(string(state), `"`+vol+`"`) {
			t.Errorf("state file does not record %s as completed:\n%s", vol, state)
		}
	}
}

func TestNameMapping(t *testing.T) {
	tests := []struct {
		raw, want string
		mapNames  bool
		wantErr   bool
	}{
		{"alice", "alice", true, false},
		{"a-2eb", "a.b", true, false},
		{"Bob-2D1", "bob-1", true, false},
		{"a-2Eb", "a-2Eb", false, false},
		{"a-", "", true, true},
		{"a-zz", "", true, true},
		{"a-2f..", "", true, true}, // "a/.." is not a name
		{"..", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			im := &importer{o: options{mapNames: tt.mapNames}, out: io.Discard}
			err := im.plan([]string{"jupyterhub-user-" + tt.raw})
			if (err != nil) != tt.wantErr {
				t.Fatalf("plan: err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && im.vols[0].dest != "users/"+tt.want {
				t.Errorf("dest = %s, want users/%s", im.vols[0].dest, tt.want)
			}
		})
	}
}

func TestCollidingNamesAreRefused(t *testing.T) {
	im := &importer{o: options{mapNames: true}, out: io.Discard}
	err := im.plan([]string{"jupyterhub-user-alice", "jupyterhub-user-Alice"})
	if err == nil || !strings.Contains(err.Error(), "both be imported into users/alice") {
		t.Errorf("plan: err = %v, want a collision error", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--to", "/tmp/x"},
		{"--from", "a", "--from-zip", "b", "--to", "c"},
		{"--from", "/nonexistent-swarmhub-test", "--to", t.TempDir()},
	} {
		if _, err := importOnce(t, args...); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
