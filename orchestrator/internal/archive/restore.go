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

	"golang.org/x/sys/unix"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
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
// true.
//
// The workspace belongs to the student, who can rename and symlink anything
// in it while a restore runs as root. So nothing is created or followed
// there: extraction goes to a private staging directory on the storage
// root (root only, on the workspaces' filesystem even when the archives
// are on another mount), and the finished tree is moved in
// with renameat relative to a workspace descriptor opened component by
// component with O_NOFOLLOW. An old destination is first moved out the
// same way and deleted in the staging area. rename(2) never follows its
// last component, so a symlink put in place of restored-RUN is replaced or
// refused, never written through.
func (a *Archiver) Restore(ctx context.Context, run, user string, overwrite bool) (string, error) {
	if err := checkNames(run, user); err != nil {
		return "", err
	}
	rel := "restored-" + run
	ws, err := openDirNoFollow(a.opts.Root, identity.WorkspaceDir(user))
	if err != nil {
		return "", fmt.Errorf("restore into workspace of %q: workspace missing: %w (%w)", user, ErrNotFound, err)
	}
	defer ws.Close()
	if err := a.verify(ctx, run, user); err != nil {
		return "", err
	}
	if exists(ws, rel) && !overwrite {
		return "", fmt.Errorf("%s in the workspace of %q: %w (use overwrite to replace it)", rel, user, ErrExists)
	}

	staging, err := a.openStaging()
	if err != nil {
		return "", diskErr(err)
	}
	defer staging.Close()
	tmpName := fmt.Sprintf("%s-%s-%s", user, run, randHex())
	tmp := filepath.Join(a.stagingDir(), tmpName)
	if err := unix.Mkdirat(int(staging.Fd()), tmpName, 0o700); err != nil {
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
		if err := os.Lchown(tmp, restoreUID, restoreGID); err != nil {
			return "", fmt.Errorf("restore: chown %s: %w", tmp, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("restore: chmod %s: %w", tmp, err)
	}
	if overwrite {
		old := "old-" + tmpName
		err := unix.Renameat(int(ws.Fd()), rel, int(staging.Fd()), old)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return "", fmt.Errorf("restore: move old %s out of the workspace: %w", rel, err)
		}
		if err == nil {
			if err := os.RemoveAll(filepath.Join(a.stagingDir(), old)); err != nil {
				a.log.Warn("restore: removing the replaced restore folder", "user", user, "err", err)
			}
		}
	}
	if err := unix.Renameat(int(staging.Fd()), tmpName, int(ws.Fd()), rel); err != nil {
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EISDIR) {
			return "", fmt.Errorf("%s in the workspace of %q appeared during the restore: %w", rel, user, ErrExists)
		}
		if errors.Is(err, unix.EXDEV) {
			return "", fmt.Errorf("restore: move into place: %s and users/ must be on one filesystem: %w", a.stagingDir(), err)
		}
		return "", fmt.Errorf("restore: move into place: %w", err)
	}
	done = true
	a.log.Info("workspace restored", "run", run, "user", user, "dest", rel)
	return rel, nil
}

// stagingDir holds restores being extracted. It lies directly under the
// storage root, which students cannot reach (they see only their workspace
// and the exchange), on the filesystem of users/ whatever mount the
// archives are on, so the finished tree can be renamed into place.
func (a *Archiver) stagingDir() string { return filepath.Join(a.opts.Root, ".restore") }

// openStaging creates the staging directory (mode 0700) if needed, opens it
// without following symlinks and removes what crashed restores left there.
func (a *Archiver) openStaging() (*os.File, error) {
	dir := a.stagingDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restore: create %s: %w", dir, err)
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("restore: open %s: %w", dir, err)
	}
	if err := d.Chmod(0o700); err != nil {
		d.Close()
		return nil, fmt.Errorf("restore: chmod %s: %w", dir, err)
	}
	ents, _ := d.ReadDir(-1)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleStaging {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return d, nil
}

// staleStaging is the age after which a staging directory counts as left
// behind by a crashed restore (extraction touches it far more often).
const staleStaging = 24 * time.Hour

// openDirNoFollow opens root/rel one component at a time with O_NOFOLLOW, so
// no symlink anywhere below root is followed.
func openDirNoFollow(root, rel string) (*os.File, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return nil, &fs.PathError{Op: "openat", Path: filepath.Join(root, rel), Err: err}
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}

// exists reports whether name exists in dir, without following it.
func exists(dir *os.File, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
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
