package main

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

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
