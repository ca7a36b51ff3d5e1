package archive

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Owner of restored files when running as root: the notebook image's
// jovyan user and users group.
const (
	restoreUID = 1000
	restoreGID = 100
)

// ErrUnsafeArchive is returned when an archive holds an entry that could
// write outside the restore directory.
var ErrUnsafeArchive = errors.New("unsafe archive entry")

// Restore verifies the archive of user in run against its .sha256 and
// extracts it into users/USER/restored-RUN/, returning that path relative to
// the workspace. An existing destination is replaced only when overwrite is
// true. Extraction goes to a hidden temporary directory first and is renamed
// into place, so a failed restore leaves nothing half-written behind.
func (a *Archiver) Restore(ctx context.Context, run, user string, overwrite bool) (string, error) {
	if err := checkNames(run, user); err != nil {
		return "", err
	}
	rel := "restored-" + run
	ws := a.userDir(user)
	if fi, err := os.Lstat(ws); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("restore into workspace of %q: workspace missing: %w", user, ErrNotFound)
	}
	if err := a.verify(ctx, run, user); err != nil {
		return "", err
	}
	dest := filepath.Join(ws, rel)
	if _, err := os.Lstat(dest); err == nil && !overwrite {
		return "", fmt.Errorf("%s in the workspace of %q: %w (use overwrite to replace it)", rel, user, ErrExists)
	}

	tmp := filepath.Join(ws, fmt.Sprintf(".%s.tmp-%s", rel, randHex()))
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", diskErr(fmt.Errorf("restore: create %s: %w", tmp, err))
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	f, _, err := a.Open(run, user)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := a.extract(ctx, f, tmp); err != nil {
		return "", diskErr(fmt.Errorf("restore %s of %q: %w", run, user, err))
	}
	if os.Geteuid() == 0 {
		os.Lchown(tmp, restoreUID, restoreGID)
	}
	if overwrite {
		if err := os.RemoveAll(dest); err != nil {
			return "", fmt.Errorf("restore: remove old %s: %w", dest, err)
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		return "", fmt.Errorf("restore: move into place: %w", err)
	}
	done = true
	a.log.Info("workspace restored", "run", run, "user", user, "dest", rel)
	return rel, nil
}

// verify checks the archive against its .sha256 file.
func (a *Archiver) verify(ctx context.Context, run, user string) error {
	sumFile := filepath.Join(a.runDir(run), user+archiveSuffix+sumSuffix)
	data, err := os.ReadFile(sumFile)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("run %s, user %s: checksum file missing: %w", run, user, ErrNotFound)
	}
	if err != nil {
		return err
	}
	want, _, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
	f, _, err := a.Open(run, user)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: f}); err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("run %s, user %s: %w (file %s, recorded %s)", run, user, ErrChecksum, got, want)
	}
	return nil
}

// extract unpacks a tar.gz into dir. Entries with absolute names, ".."
// elements, unsupported types (hard links, devices) or a path through a
// symlink of the same archive fail the whole restore. Symlinks themselves
// are restored as they were, whatever they point at: they came from the
// student's own workspace (the checksum was verified), a student can create
// them there at any time, and nothing here ever writes or reads through one.
// All writes go through an os.Root as a second line of defence.
func (a *Archiver) extract(ctx context.Context, r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	gz, err := gzip.NewReader(bufio.NewReader(r))
	if err != nil {
		return fmt.Errorf("not a gzip archive: %w", err)
	}
	tr := tar.NewReader(gz)
	chown := os.Geteuid() == 0
	type dirTime struct {
		name string
		mode fs.FileMode
		mt   time.Time
	}
	var dirs []dirTime
	links := map[string]bool{}
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		name, err := cleanEntryName(h.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if links[p] {
				return fmt.Errorf("%w: %s lies below the symlink %s", ErrUnsafeArchive, name, p)
			}
		}
		if links[name] {
			return fmt.Errorf("%w: %s replaces a symlink", ErrUnsafeArchive, name)
		}
		mode := fs.FileMode(h.Mode).Perm() // setuid/setgid are never restored
		if h.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		if parent := path.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", parent, err)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create %s: %w", name, err)
			}
			// Mode and mtime are set at the end: a read-only directory
			// must still accept its children first.
			dirs = append(dirs, dirTime{name, mode, h.ModTime})
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
			_, err = io.CopyBuffer(f, &ctxReader{ctx: ctx, r: tr}, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
			if err := root.Chmod(name, mode); err != nil {
				return err
			}
			if err := root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("create symlink %s: %w", name, err)
			}
			links[name] = true
		default:
			return fmt.Errorf("%w: %s has unsupported type %q", ErrUnsafeArchive, name, h.Typeflag)
		}
		if chown {
			if err := root.Lchown(name, restoreUID, restoreGID); err != nil {
				return fmt.Errorf("chown %s: %w", name, err)
			}
		}
	}
	// Directories last, deepest first: creating children changed their mtimes.
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := root.Chmod(d.name, d.mode); err != nil {
			return err
		}
		if err := root.Chtimes(d.name, d.mt, d.mt); err != nil {
			return err
		}
	}
	return nil
}

// cleanEntryName rejects absolute names and any ".." element and returns
// the cleaned relative name.
func cleanEntryName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: %q", ErrUnsafeArchive, name)
	}
	for _, e := range strings.Split(name, "/") {
		if e == ".." {
			return "", fmt.Errorf("%w: %q", ErrUnsafeArchive, name)
		}
	}
	return path.Clean(name), nil
}

func randHex() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
