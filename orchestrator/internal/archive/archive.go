// Package archive streams students' workspaces and the nbgrader exchange
// into checksummed tar.gz archives, keeps a number of runs, and restores a
// workspace from one of them.
//
// Layout under Options.Root (the storage root) and Options.Dir (default
// archives/ under the root, or a directory on another mount):
//
//	ROOT/users/NAME/                     workspaces
//	ROOT/exchange/                       nbgrader exchange
//	DIR/RUN/NAME.tar.gz                  one archive per user and run
//	DIR/RUN/NAME.tar.gz.sha256           "<hex>  NAME.tar.gz\n" (sha256sum -c)
//	DIR/RUN/exchange/exchange.tar.gz     the exchange (full runs), with its .sha256
//	DIR/RUN/manifest.json                written last: a run is complete only with it
//
// RUN is the UTC start time, 2006-01-02T150405Z, with "-N" appended when
// several runs start within the same second.
package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/atomicfile"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

// RunLayout is the time layout of a run id.
const RunLayout = "2006-01-02T150405Z"

const (
	manifestName  = "manifest.json"
	partialSuffix = ".partial"
	archiveSuffix = ".tar.gz"
	sumSuffix     = ".sha256"
)

var (
	// ErrInvalidName is returned for run or user names that are not plain
	// names (empty, "..", containing "/", ...).
	ErrInvalidName = errors.New("invalid name")
	// ErrNotFound is returned when a run or an archive does not exist.
	ErrNotFound = errors.New("archive not found")
	// ErrExists is returned by Restore when the destination exists and
	// overwrite was not requested.
	ErrExists = errors.New("restore destination exists")
	// ErrChecksum is returned by Restore when an archive does not match its
	// .sha256 file.
	ErrChecksum = errors.New("archive checksum mismatch")
	// ErrDiskFull marks a failure caused by a full storage volume.
	ErrDiskFull = errors.New("storage is full")
)

var runRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{6}Z(-\d{1,4})?$`)

// Options configures an Archiver.
type Options struct {
	// Root is the storage mount holding users/ and exchange/.
	Root string
	// Dir is where runs are written; default archives/ under Root. On
	// another filesystem, restores still stage on Root's (see Restore).
	Dir string
	// Exclude lists path.Match globs, matched against the path relative to
	// the workspace and against each of its elements. ".cache" is always
	// excluded.
	Exclude []string
	// Concurrency bounds how many workspaces Run archives at once (default 2).
	Concurrency int
	// Keep is how many complete runs retention keeps; <= 0 keeps all.
	Keep int
	// MaxFileSize leaves files with a larger apparent size out of archives
	// and downloads; 0 = no limit. Sparse files whose holes exceed 1 GiB
	// and half their size are always left out.
	MaxFileSize int64
	// MaxBytes bounds the file content of one workspace's archive or
	// download: files that would cross it are left out; 0 = no limit.
	MaxBytes int64
	// MaxDuration bounds the time one workspace's archive or download may
	// take: at the limit the stream is cut (the file being read ends in
	// zeros, later files are left out); 0 = no limit.
	MaxDuration time.Duration
	// Events records what the limits left out or cut; nil = log only.
	Events Events
	// Clock defaults to time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Events records a workspace's archive or download that the limits changed.
type Events interface {
	AddEvent(ctx context.Context, kind, user, message string)
}

// EventLimit is the event kind of an archive or a workspace download that
// left files out or was cut.
const EventLimit = "archive-limit"

// Archiver writes, lists, serves and restores archives.
type Archiver struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex      // serialises run-id allocation
	active map[string]bool // runs this process is writing; never cleaned up

	// test hooks (export_test.go)
	inputHook  func(rel string, r io.Reader) io.Reader
	outputHook func(w io.Writer) io.Writer
}

// New returns an Archiver. Root must be set.
func New(o Options) (*Archiver, error) {
	if o.Root == "" {
		return nil, errors.New("archive: Options.Root is empty")
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("archive: root %q: %w", o.Root, err)
	}
	o.Root = root
	if o.Dir == "" {
		o.Dir = filepath.Join(root, "archives")
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, fmt.Errorf("archive: dir %q: %w", o.Dir, err)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !slices.Contains(o.Exclude, ".cache") {
		o.Exclude = append(slices.Clone(o.Exclude), ".cache")
	}
	for _, p := range o.Exclude {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("archive: exclude pattern %q: %w", p, err)
		}
	}
	return &Archiver{opts: o, log: o.Logger, active: map[string]bool{}}, nil
}

// Entry is the result of archiving one workspace.
type Entry struct {
	User   string `json:"user"`
	File   string `json:"file,omitempty"`   // NAME.tar.gz, relative to the run directory
	Size   int64  `json:"size"`             // compressed bytes
	SHA256 string `json:"sha256,omitempty"` // of the .tar.gz
	Files  int    `json:"files"`            // entries in the archive
	Bytes  int64  `json:"bytes"`            // uncompressed file content
	// Skipped names files the limits left out ("path: reason"), the
	// first few of them; SkippedMore counts the rest.
	Skipped     []string `json:"skipped,omitempty"`
	SkippedMore int      `json:"skipped_more,omitempty"`
	// Cut says where the time limit ended the archive.
	Cut   string `json:"cut,omitempty"`
	Error string `json:"error,omitempty"`
}

// Manifest describes one run; it is written as manifest.json.
type Manifest struct {
	Run      string    `json:"run"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Duration float64   `json:"duration"` // seconds
	// Full is true for scheduled runs over all users and false for "archive
	// this user now"; retention counts only full runs.
	Full    bool    `json:"full"`
	Entries []Entry `json:"entries"`
	// Exchange is the nbgrader exchange's archive (full runs, when the
	// storage root has an exchange/).
	Exchange *Entry `json:"exchange,omitempty"`
}

// Limited counts entries the limits left incomplete.
func (m Manifest) Limited() int {
	n := 0
	for _, e := range m.Entries {
		if len(e.Skipped) > 0 || e.Cut != "" {
			n++
		}
	}
	return n
}

// Errors counts entries that failed, the exchange's included.
func (m Manifest) Errors() int {
	n := 0
	for _, e := range m.Entries {
		if e.Error != "" {
			n++
		}
	}
	if m.Exchange != nil && m.Exchange.Error != "" {
		n++
	}
	return n
}

// ValidUser reports whether user is safe as a file name: the same hard
// rules identity enforces, checked again here because names reach this
// package from URLs.
func ValidUser(user string) bool {
	if user == "" || len(user) > 255 || user == "." || user == ".." || strings.HasPrefix(user, ".") {
		return false
	}
	return !strings.ContainsAny(user, "/\\\x00 \t\n")
}

// ValidRun reports whether run has the shape of a run id.
func ValidRun(run string) bool { return runRe.MatchString(run) }

func (a *Archiver) userDir(user string) string {
	return filepath.Join(a.opts.Root, identity.WorkspaceDir(user))
}

func (a *Archiver) archivesDir() string { return a.opts.Dir }

func (a *Archiver) runDir(run string) string { return filepath.Join(a.archivesDir(), run) }

func checkNames(run, user string) error {
	if !ValidRun(run) {
		return fmt.Errorf("run %q: %w", run, ErrInvalidName)
	}
	if !ValidUser(user) {
		return fmt.Errorf("user %q: %w", user, ErrInvalidName)
	}
	return nil
}

// ArchiveUser writes archives/RUN/USER.tar.gz and its .sha256. The archive
// appears under its final name only once complete and synced; on any failure
// (including ctx cancellation) the partial file is removed and an earlier
// archive is left as it was.
func (a *Archiver) ArchiveUser(ctx context.Context, run, user string) (Entry, error) {
	if err := checkNames(run, user); err != nil {
		return Entry{User: user}, err
	}
	e, st, err := a.writeArchive(ctx, a.runDir(run), user+archiveSuffix, a.userDir(user), "workspace of "+strconv.Quote(user))
	e.User = user
	if err != nil {
		return e, err
	}
	a.report(ctx, "archive run "+run, user, st)
	return e, nil
}

// exchangeDir is the run's subdirectory for the exchange: no user's
// archive can be named like it, and Runs lists only files.
const exchangeDir = "exchange"

// archiveExchange writes the nbgrader exchange into RUN/exchange/; nil
// when the storage root has none.
func (a *Archiver) archiveExchange(ctx context.Context, run string) *Entry {
	src := filepath.Join(a.opts.Root, "exchange")
	if _, err := os.Lstat(src); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	e, st, err := a.writeArchive(ctx, filepath.Join(a.runDir(run), exchangeDir), "exchange"+archiveSuffix, src, "the exchange")
	if err != nil {
		e.Error = err.Error()
		if ctx.Err() == nil {
			a.log.Error("archiving the exchange failed", "run", run, "err", err)
		}
		return &e
	}
	e.File = exchangeDir + "/" + e.File
	a.report(ctx, "archive run "+run+" (exchange)", "", st)
	return &e
}

// writeArchive streams the directory src into dir/file (tar.gz) with a
// .sha256 beside it.
func (a *Archiver) writeArchive(ctx context.Context, dir, file, src, what string) (Entry, stats, error) {
	var e Entry
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return e, stats{}, diskErr(fmt.Errorf("create run directory: %w", err))
	}
	final := filepath.Join(dir, file)
	partial := final + partialSuffix

	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return e, stats{}, diskErr(fmt.Errorf("create %s: %w", partial, err))
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(partial)
		}
	}()

	h := sha256.New()
	cw := &countWriter{w: f}
	var out io.Writer = cw
	if a.outputHook != nil {
		out = a.outputHook(out)
	}
	st, err := a.writeTar(ctx, io.MultiWriter(out, h), src, what)
	if err != nil {
		return e, st, diskErr(fmt.Errorf("archive %s: %w", what, err))
	}
	if err := f.Sync(); err != nil {
		return e, st, diskErr(fmt.Errorf("sync %s: %w", partial, err))
	}
	if err := f.Close(); err != nil {
		return e, st, diskErr(fmt.Errorf("close %s: %w", partial, err))
	}
	if err := ctx.Err(); err != nil {
		return e, st, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(partial, final); err != nil {
		return e, st, fmt.Errorf("rename %s: %w", partial, err)
	}
	ok = true
	line := fmt.Sprintf("%s  %s\n", sum, file)
	if err := atomicfile.WriteFile(final+sumSuffix, []byte(line), 0o640); err != nil {
		// Without a checksum the archive cannot be restored; drop it so the
		// run reports a clean failure.
		os.Remove(final)
		return e, st, diskErr(fmt.Errorf("write checksum of %s: %w", what, err))
	}
	atomicfile.SyncDir(dir)
	e.File = file
	e.Size = cw.n
	e.SHA256 = sum
	e.Files = st.Files
	e.Bytes = st.Bytes
	e.Skipped, e.SkippedMore, e.Cut = st.Skipped, st.More, st.Cut
	return e, st, nil
}

// diskErr marks ENOSPC and EDQUOT failures with ErrDiskFull so callers and
// admins see "storage is full" rather than a bare errno.
func diskErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

// Run archives every user in users into a new run directory with bounded
// concurrency, writes manifest.json, then applies retention. Failures of
// single users are recorded in the manifest and summarised in the returned
// error; the run still completes. A cancelled ctx leaves the run incomplete
// (no manifest) and removes nothing else.
func (a *Archiver) Run(ctx context.Context, users []string) (Manifest, error) {
	return a.run(ctx, users, true)
}

// ArchiveNow archives one user in a run of its own, for the admin API. Such
// runs do not count towards retention.
func (a *Archiver) ArchiveNow(ctx context.Context, user string) (Manifest, error) {
	if !ValidUser(user) {
		return Manifest{}, fmt.Errorf("user %q: %w", user, ErrInvalidName)
	}
	return a.run(ctx, []string{user}, false)
}

func (a *Archiver) run(ctx context.Context, users []string, full bool) (Manifest, error) {
	if full {
		a.removeStale(ctx)
	}
	run, started, err := a.newRun()
	if err != nil {
		return Manifest{}, err
	}
	defer func() {
		a.mu.Lock()
		delete(a.active, run)
		a.mu.Unlock()
	}()
	m := Manifest{Run: run, Started: started, Full: full, Entries: make([]Entry, len(users))}
	a.log.Info("archive run started", "run", run, "users", len(users))

	sem := make(chan struct{}, a.opts.Concurrency)
	var wg sync.WaitGroup
	for i, u := range users {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			e, err := a.ArchiveUser(ctx, run, u)
			if err != nil {
				e.Error = err.Error()
				if ctx.Err() == nil {
					a.log.Error("archive failed", "run", run, "user", u, "err", err)
				}
			} else {
				a.log.Debug("archived", "run", run, "user", u, "size", e.Size, "files", e.Files)
			}
			m.Entries[i] = e
		})
	}
	wg.Wait()
	if full && ctx.Err() == nil {
		// Submissions and feedback live only here, and are worth the same
		// care as the workspaces.
		m.Exchange = a.archiveExchange(ctx, run)
	}
	if err := ctx.Err(); err != nil {
		a.log.Warn("archive run interrupted; it stays incomplete and earlier runs are untouched", "run", run)
		return m, fmt.Errorf("archive run %s interrupted: %w", run, err)
	}
	m.Finished = a.opts.Clock().UTC()
	m.Duration = m.Finished.Sub(m.Started).Seconds()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := atomicfile.WriteFile(filepath.Join(a.runDir(run), manifestName), append(data, '\n'), 0o640); err != nil {
		return m, diskErr(fmt.Errorf("write manifest of run %s: %w", run, err))
	}
	atomicfile.SyncDir(a.runDir(run))
	a.log.Info("archive run finished", "run", run, "users", len(users), "errors", m.Errors(), "seconds", m.Duration)
	if err := a.retain(ctx); err != nil {
		a.log.Error("archive retention", "err", err)
	}
	if n := m.Errors(); n > 0 {
		var errs []error
		for _, e := range m.Entries {
			if e.Error != "" {
				errs = append(errs, fmt.Errorf("%s: %s", e.User, e.Error))
			}
		}
		if m.Exchange != nil && m.Exchange.Error != "" {
			errs = append(errs, fmt.Errorf("exchange: %s", m.Exchange.Error))
		}
		return m, fmt.Errorf("archive run %s: %d failed: %w", run, n, errors.Join(errs...))
	}
	return m, nil
}

// newRun allocates a fresh run directory named after the current UTC second.
func (a *Archiver) newRun() (string, time.Time, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Clock().UTC()
	base := now.Format(RunLayout)
	if err := os.MkdirAll(a.archivesDir(), 0o750); err != nil {
		return "", now, diskErr(fmt.Errorf("create archives directory: %w", err))
	}
	for i := 1; i < 10000; i++ {
		run := base
		if i > 1 {
			run = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Mkdir(a.runDir(run), 0o750)
		if err == nil {
			a.active[run] = true
			return run, now, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", now, diskErr(fmt.Errorf("create run directory: %w", err))
		}
	}
	return "", now, fmt.Errorf("too many archive runs in second %s", base)
}

// StreamWorkspace writes the user's workspace as tar.gz to w, with the same
// excludes as archives and without a temporary file (a student's own
// download).
func (a *Archiver) StreamWorkspace(ctx context.Context, w io.Writer, user string) error {
	if !ValidUser(user) {
		return fmt.Errorf("user %q: %w", user, ErrInvalidName)
	}
	st, err := a.writeTar(ctx, w, a.userDir(user), "workspace of "+strconv.Quote(user))
	a.report(ctx, "workspace download", user, st)
	return err
}

// report logs and records what the limits left out of, or cut from, one
// workspace's stream.
func (a *Archiver) report(ctx context.Context, what, user string, st stats) {
	if !st.limited() {
		return
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "%s of %s's workspace is incomplete", what, user)
	if len(st.Skipped) > 0 {
		fmt.Fprintf(&msg, "; left out: %s", strings.Join(st.Skipped, "; "))
		if st.More > 0 {
			fmt.Fprintf(&msg, "; and %d more files", st.More)
		}
	}
	if st.Cut != "" {
		fmt.Fprintf(&msg, "; cut: %s", st.Cut)
	}
	a.log.Warn("archive: limits applied", "user", user, "what", what, "skipped", len(st.Skipped)+st.More, "cut", st.Cut, "detail", msg.String())
	if a.opts.Events != nil {
		// A download whose client left still gets its event.
		a.opts.Events.AddEvent(context.WithoutCancel(ctx), EventLimit, user, msg.String())
	}
}

// Open returns the archive of user in run, with its size.
func (a *Archiver) Open(run, user string) (io.ReadCloser, int64, error) {
	if err := checkNames(run, user); err != nil {
		return nil, 0, err
	}
	name := filepath.Join(a.runDir(run), user+archiveSuffix)
	fi, err := os.Lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("run %s, user %s: %w", run, user, ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("run %s, user %s: not a regular file: %w", run, user, ErrNotFound)
	}
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, err
	}
	return f, fi.Size(), nil
}
