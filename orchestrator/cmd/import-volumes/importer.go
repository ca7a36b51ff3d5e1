package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

// state is ROOT/.import-state.json: the volumes already imported.
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
