package archive

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// compressionLevel is gzip.BestSpeed. BenchmarkArchive (25 MB random + 25 MB
// notebook-like text, 2 vCPU): BestSpeed 190 MB/s at ratio 0.5055, the
// default level 26 MB/s at 0.5048, `tar czf` 16 MB/s at 0.5048. Nightly runs
// over hundreds of workspaces are CPU-bound; 0.1% more bytes is cheap.
const compressionLevel = gzip.BestSpeed

// stats counts what one tar stream contained and what the limits left out.
type stats struct {
	Files   int      // entries written (files, directories, symlinks)
	Bytes   int64    // uncompressed file content
	Skipped []string // "path: reason", at most maxSkipList
	More    int      // files skipped beyond the list
	Cut     string   // why and where the time limit ended the stream
}

// maxSkipList bounds the skipped files named in a manifest entry and an
// event: a student can create millions of them.
const maxSkipList = 20

func (st *stats) skip(rel, reason string) {
	if len(st.Skipped) < maxSkipList {
		st.Skipped = append(st.Skipped, rel+": "+reason)
	} else {
		st.More++
	}
}

// limited reports whether the limits changed what the stream contains.
func (st *stats) limited() bool { return len(st.Skipped) > 0 || st.Cut != "" }

// sparseHoles is how much of a file may be holes before the file is left
// out (when holes are also most of it): tar stores holes as zeros, so a
// 16 TiB sparse file created with truncate would cost hours of CPU, fill
// the archive disk, and come back non-sparse on restore.
const sparseHoles = 1 << 30

// errCut ends the walk once the time limit is reached.
var errCut = errors.New("archive time limit reached")

// budget holds the Options.MaxDuration deadline of one stream.
type budget struct {
	clock    func() time.Time
	deadline time.Time // zero: no time limit
}

func (b budget) expired() bool { return !b.deadline.IsZero() && b.clock().After(b.deadline) }

// writeTar streams the directory dir (what names it in messages) as tar.gz
// into w. Every file is opened through an os.Root with O_NOFOLLOW, so a
// student who swaps a file for a symlink while the archive runs cannot make
// the orchestrator read anything outside the directory.
func (a *Archiver) writeTar(ctx context.Context, w io.Writer, dir, what string) (stats, error) {
	var st stats
	fi, err := os.Lstat(dir)
	if err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("%s: %s is not a directory", what, dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, fmt.Errorf("open %s: %w", what, err)
	}
	defer root.Close()

	gz, err := gzip.NewWriterLevel(w, compressionLevel)
	if err != nil {
		return st, err
	}
	tw := tar.NewWriter(gz)
	buf := make([]byte, 256<<10)
	b := budget{clock: a.opts.Clock}
	if a.opts.MaxDuration > 0 {
		b.deadline = a.opts.Clock().Add(a.opts.MaxDuration)
	}

	walkErr := fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			if rel == "." {
				return err
			}
			// A file vanishing under a running server is normal; keep going.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("read %s: %w", rel, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if b.expired() {
			st.Cut = fmt.Sprintf("time limit %s reached before %s; it and the files after it are left out", a.opts.MaxDuration, rel)
			return errCut
		}
		if a.excluded(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", rel, err)
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			st.Files++
			return tw.WriteHeader(header(rel+"/", tar.TypeDir, info, 0, ""))
		case mode&fs.ModeSymlink != 0:
			target, err := root.Readlink(rel)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("readlink %s: %w", rel, err)
			}
			st.Files++
			return tw.WriteHeader(header(rel, tar.TypeSymlink, info, 0, target))
		case mode.IsRegular():
			return a.writeFile(ctx, tw, root, rel, buf, b, &st)
		default:
			// Sockets, FIFOs and devices have no content worth keeping.
			a.log.Debug("archive: skipping special file", "dir", what, "path", rel, "mode", mode.String())
			return nil
		}
	})
	if walkErr != nil && !errors.Is(walkErr, errCut) {
		return st, walkErr
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	if err := gz.Close(); err != nil {
		return st, err
	}
	return st, nil
}

// writeFile adds one regular file, unless a limit leaves it out (recorded
// in st). When the time limit strikes while it is read, the rest of the
// file is zeros, st.Cut says so, and errCut ends the walk.
func (a *Archiver) writeFile(ctx context.Context, tw *tar.Writer, root *os.Root, rel string, buf []byte, b budget, st *stats) error {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		// ELOOP: the file became a symlink since the directory was read.
		if errors.Is(err, syscall.ELOOP) {
			return nil
		}
		return fmt.Errorf("open %s: %w", rel, err)
	}
	defer f.Close()
	// Describe what was opened, not what the directory listing said.
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	size := info.Size()
	if reason := a.leaveOut(f, size, st.Bytes); reason != "" {
		st.skip(rel, reason)
		return nil
	}
	if err := tw.WriteHeader(header(rel, tar.TypeReg, info, size, "")); err != nil {
		return err
	}
	st.Files++
	st.Bytes += size
	var r io.Reader = &ctxReader{ctx: ctx, r: f, b: b}
	if a.inputHook != nil {
		r = a.inputHook(rel, r)
	}
	n, err := io.CopyBuffer(tw, io.LimitReader(r, size), buf)
	cut := errors.Is(err, errCut)
	if err != nil && !cut {
		return fmt.Errorf("archive %s: %w", rel, err)
	}
	if n < size {
		// The header promised size bytes, so pad with zeros and say so
		// rather than fail the whole archive.
		if cut {
			st.Cut = fmt.Sprintf("time limit %s reached while reading %s: its bytes from %d on are zeros, and the files after it are left out", a.opts.MaxDuration, rel, n)
		} else {
			a.log.Warn("archive: file shrank while being archived; padded with zeros", "path", rel, "want", size, "got", n)
		}
		if _, err := io.CopyBuffer(tw, io.LimitReader(zeroReader{}, size-n), buf); err != nil {
			return fmt.Errorf("archive %s: %w", rel, err)
		}
	}
	if cut {
		return errCut
	}
	return nil
}

// leaveOut says why a regular file of size bytes is not archived, or "".
// done is the content already in this stream.
func (a *Archiver) leaveOut(f *os.File, size, done int64) string {
	if a.opts.MaxFileSize > 0 && size > a.opts.MaxFileSize {
		return fmt.Sprintf("apparent size %d bytes exceeds the limit of %d", size, a.opts.MaxFileSize)
	}
	if size > sparseHoles {
		if holes := size - dataBytes(f, size); holes > sparseHoles && holes > size/2 {
			return fmt.Sprintf("sparse: apparent size %d bytes, %d of them holes", size, holes)
		}
	}
	if a.opts.MaxBytes > 0 && done+size > a.opts.MaxBytes {
		return fmt.Sprintf("%d bytes would take the workspace past its limit of %d", size, a.opts.MaxBytes)
	}
	return ""
}

// maxExtents bounds the SEEK_DATA/SEEK_HOLE walk of one file; what lies
// beyond counts as data.
const maxExtents = 4096

// dataBytes counts the bytes of f that are data rather than holes, and
// rewinds f. Filesystems without hole support report everything as data.
func dataBytes(f *os.File, size int64) int64 {
	defer f.Seek(0, io.SeekStart)
	var data, off int64
	for range maxExtents {
		start, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // only a hole after off
			return data
		}
		if err != nil {
			return size
		}
		end, err := f.Seek(start, unix.SEEK_HOLE)
		if err != nil {
			return size
		}
		data += end - start
		if off = end; off >= size {
			return data
		}
	}
	return data + size - off
}

// header builds a PAX header by hand: tar.FileInfoHeader looks user names up
// in /etc/passwd and rounds mtimes to whole seconds, and a restore must give
// back the exact mtime.
func header(name string, typ byte, info fs.FileInfo, size int64, link string) *tar.Header {
	h := &tar.Header{
		Typeflag: typ,
		Name:     name,
		Linkname: link,
		Size:     size,
		Mode:     int64(info.Mode().Perm()),
		ModTime:  info.ModTime(),
		Format:   tar.FormatPAX,
	}
	if info.Mode()&fs.ModeSetuid != 0 {
		h.Mode |= 0o4000
	}
	if info.Mode()&fs.ModeSetgid != 0 {
		h.Mode |= 0o2000
	}
	if info.Mode()&fs.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	if sys, ok := info.Sys().(*syscall.Stat_t); ok {
		h.Uid = int(sys.Uid)
		h.Gid = int(sys.Gid)
	}
	// PAX stores sub-second mtimes; whole seconds keep plain USTAR headers.
	if h.ModTime.Nanosecond() == 0 {
		h.Format = tar.FormatUnknown
	}
	return h
}

// excluded reports whether rel (slash-separated, relative to the workspace)
// matches an exclude pattern, as a whole or in any of its elements.
func (a *Archiver) excluded(rel string) bool {
	elems := strings.Split(rel, "/")
	for _, p := range a.opts.Exclude {
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
		for _, e := range elems {
			if ok, _ := path.Match(p, e); ok {
				return true
			}
		}
	}
	return false
}

// ctxReader stops a copy between two reads once ctx is cancelled, so a large
// file does not finish streaming after a shutdown, or once the budget's
// time is up (errCut).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	b   budget
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if c.b.expired() {
		return 0, errCut
	}
	return c.r.Read(p)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// countWriter counts bytes that reached the underlying writer.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
