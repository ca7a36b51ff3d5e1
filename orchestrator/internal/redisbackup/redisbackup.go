// Package redisbackup writes swarmhub's Redis keys to snapshot files and
// restores them. A snapshot is a logical dump, not Redis' own RDB file: in
// a swarm the orchestrator cannot reach Redis' data directory. Every key
// under the key prefix is saved with DUMP (Redis' binary-safe serialisation
// of any type) and its expiry, and restored with RESTORE ... REPLACE
// ABSTTL, so a key that would have expired meanwhile stays gone.
//
// Layout under Options.Dir:
//
//	ID.redis.gz   the keys (format below)
//	ID.json       manifest, written last with the data file's sha256: a
//	              snapshot is complete only with it
//
// ID is the UTC start time, 2006-01-02T150405Z, with "-N" appended when
// several snapshots start within the same second.
//
// The data file is gzip of: the line "swarmhub-redis-snapshot 1\n", then
// one record per key: uvarint key length, key, varint expiry (Unix
// milliseconds by Redis' clock, 0 = none), uvarint payload length, DUMP
// payload; then a uvarint 0 (no key is empty) and the uvarint key count.
//
// Locks (PREFIX lock:...) are neither saved nor touched: a restored lock
// would block jobs for a holder that no longer runs.
//
// A snapshot is not taken at one instant: keys written while SCAN walks
// may or may not be in it. Each key's value and expiry are read together.
package redisbackup

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
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
	"strings"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/atomicfile"

	"github.com/redis/go-redis/v9"
)

// IDLayout is the time layout of a snapshot id.
const IDLayout = "2006-01-02T150405Z"

const (
	// Format and Version name the data file's format in its first line and
	// in the manifest.
	Format  = "swarmhub-redis-snapshot"
	Version = 1

	dataSuffix     = ".redis.gz"
	manifestSuffix = ".json"
	partialSuffix  = ".partial"
	batch          = 200 // keys per pipelined round trip
)

var (
	// ErrNotFound: no complete snapshot with that id.
	ErrNotFound = errors.New("snapshot not found")
	// ErrInvalidID: the id is not of the form IDLayout[-N].
	ErrInvalidID = errors.New("invalid snapshot id")
	// ErrCorrupt: the data file does not match its manifest or format.
	ErrCorrupt = errors.New("snapshot corrupt")
	// ErrNotEmpty: Redis holds keys under the prefix and the restore was
	// not confirmed.
	ErrNotEmpty = errors.New("redis holds keys under the prefix")
)

var idRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{6}Z(-\d{1,4})?$`)

// Options configures a Backup.
type Options struct {
	// Dir holds the snapshots (created when needed).
	Dir string
	// Prefix is the key prefix every saved key starts with (redis.key_prefix).
	Prefix string
	// Keep is how many snapshots Write keeps; <= 0 keeps all.
	Keep int
	// Clock names snapshots; default time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Backup writes, lists and restores snapshots of one Redis.
type Backup struct {
	rdb  redis.UniversalClient
	opts Options
	log  *slog.Logger
}

// New returns a Backup; Dir and Prefix must be set.
func New(rdb redis.UniversalClient, o Options) (*Backup, error) {
	if o.Dir == "" || o.Prefix == "" {
		return nil, errors.New("redisbackup: Options.Dir and Options.Prefix are required")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Backup{rdb: rdb, opts: o, log: o.Logger}, nil
}

// Manifest describes one snapshot; it is written as ID.json.
type Manifest struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Prefix  string    `json:"prefix"`
	// RedisVersion is the server's: DUMP payloads restore into the same
	// or a newer Redis.
	RedisVersion string `json:"redis_version,omitempty"`
	Keys         int    `json:"keys"`
	// Kinds counts keys by the part after the prefix up to the first ':'
	// (user, token, session, events, ...).
	Kinds  map[string]int `json:"kinds"`
	File   string         `json:"file"`
	Size   int64          `json:"size"`
	SHA256 string         `json:"sha256"`
}

// Write saves every key under the prefix into a new snapshot, then deletes
// the oldest beyond Keep.
func (b *Backup) Write(ctx context.Context) (Manifest, error) {
	m, err := b.write(ctx)
	if err != nil {
		return m, err
	}
	if err := b.retain(ctx); err != nil {
		b.log.Error("redis snapshot retention", "err", err)
	}
	return m, nil
}

func (b *Backup) write(ctx context.Context) (Manifest, error) {
	if err := os.MkdirAll(b.opts.Dir, 0o750); err != nil {
		return Manifest{}, fmt.Errorf("redis snapshot: create %s: %w", b.opts.Dir, err)
	}
	b.removePartials()
	id, f, err := b.create()
	if err != nil {
		return Manifest{}, err
	}
	partial := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(partial)
		}
	}()
	m := Manifest{Format: Format, Version: Version, ID: id, Created: b.opts.Clock().UTC(), Prefix: b.opts.Prefix,
		Kinds: map[string]int{}, File: id + dataSuffix, RedisVersion: b.serverVersion(ctx)}

	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	gz, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return m, err
	}
	w := bufio.NewWriter(gz)
	fmt.Fprintf(w, "%s %d\n", Format, Version)
	err = b.scan(ctx, func(keys []string) error {
		recs, err := b.dump(ctx, keys)
		if err != nil {
			return err
		}
		for _, r := range recs {
			writeRecord(w, r)
			m.Keys++
			m.Kinds[kind(b.opts.Prefix, r.key)]++
		}
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("redis snapshot: %w", err)
	}
	w.Write(binary.AppendUvarint(nil, 0))
	w.Write(binary.AppendUvarint(nil, uint64(m.Keys)))
	if err := w.Flush(); err != nil {
		return m, fmt.Errorf("redis snapshot: write %s: %w", partial, err)
	}
	if err := gz.Close(); err != nil {
		return m, fmt.Errorf("redis snapshot: write %s: %w", partial, err)
	}
	if err := f.Sync(); err != nil {
		return m, fmt.Errorf("redis snapshot: sync %s: %w", partial, err)
	}
	if err := f.Close(); err != nil {
		return m, fmt.Errorf("redis snapshot: close %s: %w", partial, err)
	}
	final := filepath.Join(b.opts.Dir, m.File)
	if err := os.Rename(partial, final); err != nil {
		return m, fmt.Errorf("redis snapshot: %w", err)
	}
	ok = true
	m.Size = cw.n
	m.SHA256 = hex.EncodeToString(h.Sum(nil))
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := atomicfile.WriteFile(filepath.Join(b.opts.Dir, id+manifestSuffix), append(data, '\n'), 0o640); err != nil {
		os.Remove(final)
		return m, fmt.Errorf("redis snapshot: write manifest: %w", err)
	}
	atomicfile.SyncDir(b.opts.Dir)
	b.log.Info("redis snapshot written", "id", id, "keys", m.Keys, "bytes", m.Size)
	return m, nil
}

// create allocates an id and opens its partial data file exclusively.
func (b *Backup) create() (string, *os.File, error) {
	base := b.opts.Clock().UTC().Format(IDLayout)
	for i := 1; i < 10000; i++ {
		id := base
		if i > 1 {
			id = fmt.Sprintf("%s-%d", base, i)
		}
		if _, err := os.Lstat(filepath.Join(b.opts.Dir, id+manifestSuffix)); err == nil {
			continue
		}
		f, err := os.OpenFile(filepath.Join(b.opts.Dir, id+dataSuffix+partialSuffix), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("redis snapshot: %w", err)
		}
		return id, f, nil
	}
	return "", nil, fmt.Errorf("redis snapshot: too many snapshots in second %s", base)
}

// stalePartial is the age after which a partial file counts as left by a
// process that died while writing it.
const stalePartial = 24 * time.Hour

func (b *Backup) removePartials() {
	ents, _ := os.ReadDir(b.opts.Dir)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), partialSuffix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > stalePartial {
			os.Remove(filepath.Join(b.opts.Dir, e.Name()))
		}
	}
}

func (b *Backup) serverVersion(ctx context.Context) string {
	info, err := b.rdb.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

// scan calls fn with batches of the keys under the prefix, locks left out.
func (b *Backup) scan(ctx context.Context, fn func(keys []string) error) error {
	match := escapeGlob(b.opts.Prefix) + "*"
	locks := b.opts.Prefix + "lock:"
	var cursor uint64
	for {
		keys, next, err := b.rdb.Scan(ctx, cursor, match, batch).Result()
		if err != nil {
			return fmt.Errorf("scan %s: %w", match, err)
		}
		keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasPrefix(k, locks) })
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

type record struct {
	key      string
	expireAt int64 // Unix ms by Redis' clock; 0 = none
	payload  string
}

// dump reads the keys' payloads and expiries, each pair in one MULTI so
// they belong together. Keys deleted since the SCAN are left out.
func (b *Backup) dump(ctx context.Context, keys []string) ([]record, error) {
	var now *redis.TimeCmd
	dumps := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		now = p.Time(ctx)
		for i, k := range keys {
			dumps[i] = p.Dump(ctx, k)
			ttls[i] = p.PTTL(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dump keys: %w", err)
	}
	out := make([]record, 0, len(keys))
	for i, k := range keys {
		payload, err := dumps[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dump %s: %w", k, err)
		}
		ttl, err := ttls[i].Result()
		if err != nil {
			return nil, fmt.Errorf("pttl %s: %w", k, err)
		}
		r := record{key: k, payload: payload}
		// go-redis reports -1 (no expiry) and -2 (no key) as such durations.
		switch {
		case ttl == -2:
			continue
		case ttl > 0:
			r.expireAt = now.Val().Add(ttl).UnixMilli()
		}
		out = append(out, r)
	}
	return out, nil
}

func writeRecord(w *bufio.Writer, r record) {
	var buf [binary.MaxVarintLen64]byte
	w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(r.key)))])
	w.WriteString(r.key)
	w.Write(buf[:binary.PutVarint(buf[:], r.expireAt)])
	w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(r.payload)))])
	w.WriteString(r.payload)
}

// maxField bounds a key or payload read from a file: Redis' own limit of
// a string is 512 MB.
const maxField = 1 << 30

// readRecords calls fn for every record of a data file and checks the
// trailer's count.
func readRecords(r io.Reader, fn func(record) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: not gzip: %w", ErrCorrupt, err)
	}
	br := bufio.NewReader(gz)
	head, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("%w: no header: %w", ErrCorrupt, err)
	}
	if want := fmt.Sprintf("%s %d\n", Format, Version); head != want {
		return fmt.Errorf("%w: header %q, want %q", ErrCorrupt, strings.TrimSpace(head), strings.TrimSpace(want))
	}
	field := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > maxField {
			return nil, fmt.Errorf("field of %d bytes", n)
		}
		p := make([]byte, n)
		_, err = io.ReadFull(br, p)
		return p, err
	}
	n := 0
	for {
		key, err := field()
		if err != nil {
			return fmt.Errorf("%w: record %d: %w", ErrCorrupt, n+1, err)
		}
		if len(key) == 0 {
			break
		}
		exp, err := binary.ReadVarint(br)
		if err != nil {
			return fmt.Errorf("%w: record %d: %w", ErrCorrupt, n+1, err)
		}
		payload, err := field()
		if err != nil {
			return fmt.Errorf("%w: record %d: %w", ErrCorrupt, n+1, err)
		}
		n++
		if err := fn(record{key: string(key), expireAt: exp, payload: string(payload)}); err != nil {
			return err
		}
	}
	count, err := binary.ReadUvarint(br)
	if err != nil || count != uint64(n) {
		return fmt.Errorf("%w: %d records, trailer says %d (%v)", ErrCorrupt, n, count, err)
	}
	return nil
}

// kind is the part of key after prefix up to the first ':'.
func kind(prefix, key string) string {
	k, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), ":")
	return k
}

// escapeGlob quotes SCAN MATCH's special characters.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ValidID reports whether id has the shape of a snapshot id.
func ValidID(id string) bool { return idRe.MatchString(id) }

// List returns the complete snapshots, newest first.
func (b *Backup) List(ctx context.Context) ([]Manifest, error) {
	ents, err := os.ReadDir(b.opts.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list redis snapshots: %w", err)
	}
	var out []Manifest
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id, ok := strings.CutSuffix(e.Name(), manifestSuffix)
		if !ok || !ValidID(id) || !e.Type().IsRegular() {
			continue
		}
		m, err := b.manifest(id)
		if err != nil {
			b.log.Warn("redis snapshot: unreadable manifest", "id", id, "err", err)
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y Manifest) int { return compareIDs(y.ID, x.ID) })
	return out, nil
}

func (b *Backup) manifest(id string) (Manifest, error) {
	var m Manifest
	if !ValidID(id) {
		return m, fmt.Errorf("%q: %w", id, ErrInvalidID)
	}
	data, err := os.ReadFile(filepath.Join(b.opts.Dir, id+manifestSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("%s in %s: %w", id, b.opts.Dir, ErrNotFound)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%s: manifest: %w: %w", id, ErrCorrupt, err)
	}
	if m.Format != Format || m.Version != Version || m.ID != id || m.File != id+dataSuffix {
		return m, fmt.Errorf("%s: manifest of format %q version %d for %q: %w", id, m.Format, m.Version, m.ID, ErrCorrupt)
	}
	return m, nil
}

// compareIDs orders ids by time, then by their "-N" suffix.
func compareIDs(x, y string) int {
	xb, xn := splitID(x)
	yb, yn := splitID(y)
	if c := strings.Compare(xb, yb); c != 0 {
		return c
	}
	return xn - yn
}

func splitID(id string) (string, int) {
	base, suffix, ok := strings.Cut(id, "Z-")
	if !ok {
		return id, 1
	}
	n := 0
	fmt.Sscanf(suffix, "%d", &n)
	return base + "Z", n
}

// retain deletes complete snapshots beyond the newest Keep, manifest first
// so a half-deleted one reads as absent rather than corrupt.
func (b *Backup) retain(ctx context.Context) error {
	if b.opts.Keep <= 0 {
		return nil
	}
	list, err := b.List(ctx)
	if err != nil || len(list) <= b.opts.Keep {
		return err
	}
	var errs []error
	for _, m := range list[b.opts.Keep:] {
		b.log.Info("redis snapshot retention: removing", "id", m.ID, "keep", b.opts.Keep)
		if err := os.Remove(filepath.Join(b.opts.Dir, m.ID+manifestSuffix)); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(filepath.Join(b.opts.Dir, m.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
