// Command import-volumes moves the current JupyterHub setup's Docker volumes
// into swarmhub's storage root:
//
//	jupyterhub-user-NAME/_data/...  →  ROOT/users/NAME/...
//	exchange/_data/...              →  ROOT/exchange/...
//
// read either from a directory laid out like /var/lib/docker/volumes (--from)
// or from the zip archive the current setup makes of it (--from-zip, paths
// starting with var/lib/docker/volumes/).
//
// It is idempotent (a file whose size, mtime and SHA-256 already match is
// skipped), resumable (each file is written to NAME.swarmhub-import.tmp and
// renamed; ROOT/.import-state.json records finished volumes) and verified
// (every copy is re-read and compared with the source's SHA-256). It exits
// non-zero on any mismatch or error. --dry-run lists what it would do and
// changes nothing.
package main

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

const (
	userPrefix = "jupyterhub-user-"
	exchange   = "exchange"
	tmpSuffix  = ".swarmhub-import.tmp"
	stateName  = ".import-state.json"
	zipPrefix  = "var/lib/docker/volumes/"
	// Owner of imported files when running as root: the notebook image's
	// jovyan user and users group.
	ownerUID = 1000
	ownerGID = 100
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "import-volumes:", err)
		os.Exit(1)
	}
}

type options struct {
	from, fromZip, to string
	dryRun, mapNames  bool
	verify            bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("import-volumes", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o options
	fl.StringVar(&o.from, "from", "", "directory laid out like /var/lib/docker/volumes")
	fl.StringVar(&o.fromZip, "from-zip", "", "zip archive of /var/lib/docker/volumes (zip -r volumes.zip /var/lib/docker/volumes)")
	fl.StringVar(&o.to, "to", "", "swarmhub storage root (gets users/ and exchange/)")
	fl.BoolVar(&o.dryRun, "dry-run", false, "list what would be done and change nothing")
	fl.BoolVar(&o.mapNames, "map-names", false, "canonicalise user names: lower-case, undo DockerSpawner's escaping (a-2eb → a.b)")
	fl.BoolVar(&o.verify, "verify", false, "re-hash files of volumes a previous run completed instead of trusting size and mtime")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: import-volumes (--from DIR | --from-zip FILE) --to ROOT [--dry-run] [--map-names] [--verify]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if (o.from == "") == (o.fromZip == "") || o.to == "" || fl.NArg() > 0 {
		fl.Usage()
		return errors.New("give exactly one of --from and --from-zip, and --to")
	}

	var src source
	var err error
	if o.from != "" {
		src, err = openDirSource(o.from)
	} else {
		src, err = openZipSource(o.fromZip)
	}
	if err != nil {
		return err
	}
	defer src.Close()

	im := &importer{o: o, out: stdout}
	if err := im.plan(src.Volumes()); err != nil {
		return err
	}
	return im.run(ctx, src)
}

// entry is one file, directory or symlink of a volume.
type entry struct {
	rel   string // slash-separated, relative to _data; "." is _data itself
	mode  fs.FileMode
	mtime time.Time
	size  int64
	link  string
	open  func() (io.ReadCloser, error)
}

type source interface {
	Volumes() []string
	// Entries lists a volume's entries, parents before children.
	Entries(vol string) ([]entry, error)
	Close() error
}

// volume is a planned import.
type volume struct {
	name string // Docker volume name
	dest string // relative to ROOT: users/NAME or exchange
}

type state struct {
	Volumes map[string]volumeState `json:"volumes"`
}

type volumeState struct {
	Dest      string    `json:"dest"`
	Completed time.Time `json:"completed"`
	Files     int       `json:"files"`
	Bytes     int64     `json:"bytes"`
}

type summary struct {
	volumes, copied, skipped, mismatches, errors int
	bytes                                        int64
}

type importer struct {
	o    options
	out  io.Writer
	vols []volume
	st   state
	sum  summary
}

// plan maps volume names to destinations and rejects collisions before
// anything is written.
func (im *importer) plan(names []string) error {
	var namer *identity.Namer
	if im.o.mapNames {
		var err error
		if namer, err = identity.New(identity.Options{}); err != nil {
			return err
		}
	}
	byDest := map[string]string{}
	for _, n := range names {
		var dest string
		switch {
		case n == exchange:
			dest = exchange
		case strings.HasPrefix(n, userPrefix):
			user, err := userName(strings.TrimPrefix(n, userPrefix), namer)
			if err != nil {
				return fmt.Errorf("volume %s: %w", n, err)
			}
			dest = identity.WorkspaceDir(user)
		default:
			fmt.Fprintf(im.out, "ignore volume %s (not a user workspace or exchange)\n", n)
			continue
		}
		if prev, dup := byDest[dest]; dup {
			return fmt.Errorf("volumes %s and %s would both be imported into %s; import one of them by hand", prev, n, dest)
		}
		byDest[dest] = n
		im.vols = append(im.vols, volume{name: n, dest: dest})
	}
	if len(im.vols) == 0 {
		return errors.New("no jupyterhub-user-* or exchange volumes found in the source")
	}
	return nil
}

// userName turns a volume suffix into a workspace directory name.
func userName(raw string, namer *identity.Namer) (string, error) {
	name := raw
	if namer != nil {
		u, err := unescape(strings.ToLower(raw))
		if err != nil {
			return "", err
		}
		if name, err = namer.Canonical(u); err != nil {
			return "", fmt.Errorf("user name %q (from %q): %w", u, raw, err)
		}
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return "", fmt.Errorf("user name %q is not usable as a directory name", name)
	}
	return name, nil
}

// unescape undoes DockerSpawner's escapism ('-' followed by two hex digits
// per escaped byte), the inverse of identity.Escape.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%q is not an escaped name: '-' at %d is not followed by two hex digits", s, i)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("%q is not an escaped name: '-' at %d is not followed by two hex digits", s, i)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

func (im *importer) statePath() string { return filepath.Join(im.o.to, stateName) }

func (im *importer) loadState() error {
	im.st = state{Volumes: map[string]volumeState{}}
	data, err := os.ReadFile(im.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &im.st); err != nil {
		return fmt.Errorf("%s is corrupt (delete it to start over): %w", im.statePath(), err)
	}
	if im.st.Volumes == nil {
		im.st.Volumes = map[string]volumeState{}
	}
	return nil
}

func (im *importer) saveState() error {
	data, err := json.MarshalIndent(im.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := im.statePath() + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, im.statePath())
}

func (im *importer) run(ctx context.Context, src source) error {
	if err := im.loadState(); err != nil {
		return err
	}
	if !im.o.dryRun {
		if err := os.MkdirAll(filepath.Join(im.o.to, identity.UsersDir), 0o755); err != nil {
			return fmt.Errorf("create storage root: %w", err)
		}
	}
	for _, v := range im.vols {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := im.importVolume(ctx, src, v); err != nil {
			im.sum.errors++
			fmt.Fprintf(im.out, "ERROR volume %s: %v\n", v.name, err)
		}
	}
	if !im.o.dryRun {
		syscall.Sync()
	}
	s := im.sum
	verb := "copied"
	if im.o.dryRun {
		verb = "to copy"
	}
	fmt.Fprintf(im.out, "summary: volumes %d, files %s %d, skipped %d, bytes %s %d, mismatches %d, errors %d\n",
		s.volumes, verb, s.copied, s.skipped, verb, s.bytes, s.mismatches, s.errors)
	if s.mismatches > 0 || s.errors > 0 {
		return fmt.Errorf("%d checksum mismatches and %d errors; run again to retry, the import resumes", s.mismatches, s.errors)
	}
	return nil
}

func (im *importer) importVolume(ctx context.Context, src source, v volume) error {
	entries, err := src.Entries(v.name)
	if err != nil {
		return err
	}
	im.sum.volumes++
	prev, completed := im.st.Volumes[v.name]
	trust := completed && prev.Dest == v.dest && !im.o.verify
	if completed {
		fmt.Fprintf(im.out, "volume %s → %s (completed %s; checking for changes)\n", v.name, v.dest, prev.Completed.Format(time.RFC3339))
	} else {
		fmt.Fprintf(im.out, "volume %s → %s\n", v.name, v.dest)
	}

	destDir := filepath.Join(im.o.to, filepath.FromSlash(v.dest))
	var root *os.Root
	if im.o.dryRun {
		root, _ = os.OpenRoot(destDir) // nil when it does not exist yet
	} else {
		if err := os.MkdirAll(destDir, 0o755); err != nil {
			return err
		}
		if root, err = os.OpenRoot(destDir); err != nil {
			return err
		}
	}
	if root != nil {
		defer root.Close()
	}
	c := &copier{im: im, root: root, dest: v.dest, trust: trust, buf: make([]byte, 256<<10)}
	copiedBefore := im.sum.copied

	var dirs []entry
	failed := 0
	var files int
	var bytes int64
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasSuffix(e.rel, tmpSuffix) {
			continue
		}
		files++
		var err error
		switch {
		case e.mode.IsDir():
			err = c.dir(e)
			dirs = append(dirs, e)
		case e.mode&fs.ModeSymlink != 0:
			err = c.symlink(e)
		case e.mode.IsRegular():
			bytes += e.size
			err = c.file(e)
		default:
			fmt.Fprintf(im.out, "skip special file %s/%s (%s)\n", v.dest, e.rel, e.mode.Type())
			continue
		}
		if err != nil {
			failed++
			im.sum.errors++
			fmt.Fprintf(im.out, "ERROR %s/%s: %v\n", v.dest, e.rel, err)
		}
	}
	if im.o.dryRun {
		return nil
	}
	// Directories last, deepest first: writing children changed their mtimes.
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := c.finishDir(d); err != nil {
			failed++
			im.sum.errors++
			fmt.Fprintf(im.out, "ERROR %s/%s: %v\n", v.dest, d.rel, err)
		}
	}
	if failed > 0 || c.mismatches > 0 {
		return nil // counted already; the volume stays incomplete
	}
	if completed && prev.Dest == v.dest && im.sum.copied == copiedBefore {
		return nil // nothing changed: leave the state file alone
	}
	im.st.Volumes[v.name] = volumeState{Dest: v.dest, Completed: time.Now().UTC(), Files: files, Bytes: bytes}
	return im.saveState()
}

// copier writes one volume's entries through an os.Root, so a symlink in
// the data (or one planted in the destination) can never redirect a write
// outside the workspace.
type copier struct {
	im         *importer
	root       *os.Root // nil in a dry run whose destination does not exist
	dest       string
	trust      bool // size+mtime suffice (volume completed before)
	buf        []byte
	mismatches int
}

func (c *copier) say(format string, a ...any) { fmt.Fprintf(c.im.out, format+"\n", a...) }

func (c *copier) lstat(rel string) (fs.FileInfo, error) {
	if c.root == nil {
		return nil, fs.ErrNotExist
	}
	return c.root.Lstat(rel)
}

func (c *copier) own(rel string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return c.root.Lchown(rel, ownerUID, ownerGID)
}

func (c *copier) dir(e entry) error {
	fi, err := c.lstat(e.rel)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		return fmt.Errorf("destination exists and is not a directory (%s); move it away", fi.Mode().Type())
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if c.im.o.dryRun {
		c.say("mkdir %s/%s", c.dest, e.rel)
		return nil
	}
	return c.root.MkdirAll(e.rel, 0o700)
}

func (c *copier) finishDir(e entry) error {
	if err := c.root.Chmod(e.rel, e.mode.Perm()|e.mode&fs.ModeSticky); err != nil {
		return err
	}
	if err := c.own(e.rel); err != nil {
		return err
	}
	return c.root.Chtimes(e.rel, e.mtime, e.mtime)
}

func (c *copier) symlink(e entry) error {
	fi, err := c.lstat(e.rel)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if target, _ := c.root.Readlink(e.rel); target == e.link {
			c.im.sum.skipped++
			return nil
		}
	}
	if err == nil && fi.IsDir() {
		return errors.New("destination is a directory, source a symlink; move it away")
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	c.im.sum.copied++
	if c.im.o.dryRun {
		c.say("link %s/%s -> %s", c.dest, e.rel, e.link)
		return nil
	}
	if err := c.parent(e.rel); err != nil {
		return err
	}
	if err == nil {
		c.root.Remove(e.rel)
	}
	if err := c.root.Symlink(e.link, e.rel); err != nil {
		return err
	}
	return c.own(e.rel)
}

// parent creates missing parents (zip archives may omit directory entries).
func (c *copier) parent(rel string) error {
	if p := path.Dir(rel); p != "." {
		return c.root.MkdirAll(p, 0o755)
	}
	return nil
}

func (c *copier) file(e entry) error {
	fi, err := c.lstat(e.rel)
	switch {
	case err == nil && fi.Mode().IsRegular() && fi.Size() == e.size && fi.ModTime().Equal(e.mtime):
		same := c.trust
		if !same {
			var herr error
			if same, herr = c.sameContent(e); herr != nil {
				return herr
			}
		}
		if same {
			c.im.sum.skipped++
			return c.fixMeta(e, fi)
		}
	case err == nil && fi.IsDir():
		return errors.New("destination is a directory, source a file; move it away")
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	c.im.sum.copied++
	c.im.sum.bytes += e.size
	if c.im.o.dryRun {
		c.say("copy %s/%s (%d bytes)", c.dest, e.rel, e.size)
		return nil
	}
	return c.copy(e)
}

// fixMeta repairs mode and owner of a file whose content is already right
// (e.g. copied by hand before, or by a run that was not root).
func (c *copier) fixMeta(e entry, fi fs.FileInfo) error {
	if c.im.o.dryRun {
		return nil
	}
	if fi.Mode().Perm() != e.mode.Perm() {
		if err := c.root.Chmod(e.rel, e.mode.Perm()); err != nil {
			return err
		}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && (st.Uid != ownerUID || st.Gid != ownerGID) {
		if err := c.own(e.rel); err != nil {
			return err
		}
		// chown does not change mtime, but be explicit: the skip test is
		// size+mtime.
		return c.root.Chtimes(e.rel, e.mtime, e.mtime)
	}
	return nil
}

func (c *copier) sameContent(e entry) (bool, error) {
	want, err := hashOf(e.open, c.buf)
	if err != nil {
		return false, fmt.Errorf("read source: %w", err)
	}
	got, err := hashOf(func() (io.ReadCloser, error) { return c.root.Open(e.rel) }, c.buf)
	if err != nil {
		return false, fmt.Errorf("read destination: %w", err)
	}
	return want == got, nil
}

// copy writes e to a temporary name, verifies it against the source hash,
// and renames it over the destination.
func (c *copier) copy(e entry) error {
	if err := c.parent(e.rel); err != nil {
		return err
	}
	tmp := e.rel + tmpSuffix
	in, err := e.open()
	if err != nil {
		return fmt.Errorf("read source: %w", err)
	}
	defer in.Close()
	out, err := c.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(out, h), in, c.buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.root.Remove(tmp)
		return fmt.Errorf("copy: %w", err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	got, err := hashOf(func() (io.ReadCloser, error) { return c.root.Open(tmp) }, c.buf)
	if err != nil || got != want || n != e.size {
		c.root.Remove(tmp)
		c.mismatches++
		c.im.sum.mismatches++
		return fmt.Errorf("verification failed: source sha256 %s (%d bytes), copy sha256 %s (%d bytes), err %v", want, e.size, got, n, err)
	}
	if err := c.root.Chmod(tmp, e.mode.Perm()); err != nil {
		return err
	}
	if err := c.own(tmp); err != nil {
		return err
	}
	if err := c.root.Chtimes(tmp, e.mtime, e.mtime); err != nil {
		return err
	}
	if fi, err := c.root.Lstat(e.rel); err == nil && !fi.Mode().IsRegular() {
		c.root.Remove(e.rel) // a symlink where the source has a file
	}
	return c.root.Rename(tmp, e.rel)
}

func hashOf(open func() (io.ReadCloser, error), buf []byte) (string, error) {
	r, err := open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, r, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// dirSource reads a directory laid out like /var/lib/docker/volumes.
type dirSource struct{ dir string }

func openDirSource(dir string) (*dirSource, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("--from %s is not a directory", dir)
	}
	return &dirSource{dir: dir}, nil
}

func (d *dirSource) Close() error { return nil }

func (d *dirSource) Volumes() []string {
	ents, _ := os.ReadDir(d.dir)
	var out []string
	for _, e := range ents {
		if fi, err := os.Stat(filepath.Join(d.dir, e.Name(), "_data")); err == nil && fi.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func (d *dirSource) Entries(vol string) ([]entry, error) {
	base := filepath.Join(d.dir, vol, "_data")
	var out []entry
	err := filepath.WalkDir(base, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		e := entry{rel: filepath.ToSlash(rel), mode: info.Mode(), mtime: info.ModTime(), size: info.Size()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			e.open = func() (io.ReadCloser, error) {
				return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
			}
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", base, err)
	}
	return out, nil
}

// zipSource reads `zip -r volumes.zip /var/lib/docker/volumes`.
type zipSource struct {
	zr   *zip.ReadCloser
	vols map[string][]*zip.File
}

func openZipSource(name string) (*zipSource, error) {
	zr, err := zip.OpenReader(name)
	if err != nil {
		return nil, fmt.Errorf("--from-zip: %w", err)
	}
	z := &zipSource{zr: zr, vols: map[string][]*zip.File{}}
	for _, f := range zr.File {
		p := strings.TrimPrefix(strings.TrimPrefix(f.Name, "/"), zipPrefix)
		vol, rest, ok := strings.Cut(p, "/")
		if !ok || (rest != "_data" && rest != "_data/" && !strings.HasPrefix(rest, "_data/")) {
			continue
		}
		z.vols[vol] = append(z.vols[vol], f)
	}
	return z, nil
}

func (z *zipSource) Close() error { return z.zr.Close() }

func (z *zipSource) Volumes() []string {
	var out []string
	for v := range z.vols {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func (z *zipSource) Entries(vol string) ([]entry, error) {
	var out []entry
	for _, f := range z.vols[vol] {
		_, rest, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(f.Name, "/"), zipPrefix), "/")
		rel := strings.Trim(strings.TrimPrefix(rest, "_data"), "/")
		if rel == "" {
			rel = "."
		}
		if !fs.ValidPath(rel) {
			return nil, fmt.Errorf("zip entry %q has an unsafe path", f.Name)
		}
		mode := f.Mode()
		if strings.HasSuffix(f.Name, "/") {
			mode |= fs.ModeDir
		}
		e := entry{rel: rel, mode: mode, mtime: f.Modified, size: int64(f.UncompressedSize64)}
		switch {
		case mode&fs.ModeSymlink != 0:
			r, err := f.Open()
			if err != nil {
				return nil, err
			}
			target, err := io.ReadAll(io.LimitReader(r, 4096))
			r.Close()
			if err != nil {
				return nil, fmt.Errorf("zip entry %s: %w", f.Name, err)
			}
			e.link = string(target)
		case mode.IsRegular():
			e.open = f.Open
		}
		out = append(out, e)
	}
	// Parents before children, whatever order zip wrote.
	slices.SortStableFunc(out, func(a, b entry) int {
		return strings.Compare(a.rel, b.rel)
	})
	return out, nil
}
