package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
)

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
