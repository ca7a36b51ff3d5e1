package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RunInfo describes one run directory.
type RunInfo struct {
	Run string `json:"run"`
	// Complete is true once manifest.json exists; Manifest is then set.
	Complete bool      `json:"complete"`
	Manifest *Manifest `json:"manifest,omitempty"`
	// Files lists the finished archives present (also for incomplete runs).
	Files []FileInfo `json:"files"`
}

// FileInfo is one finished archive in a run.
type FileInfo struct {
	User    string    `json:"user"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
}

// Runs lists run directories, newest first.
func (a *Archiver) Runs(ctx context.Context) ([]RunInfo, error) {
	ents, err := os.ReadDir(a.archivesDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list archive runs: %w", err)
	}
	var runs []RunInfo
	for _, d := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !d.IsDir() || !ValidRun(d.Name()) {
			continue
		}
		ri, err := a.runInfo(d.Name())
		if err != nil {
			return nil, err
		}
		runs = append(runs, ri)
	}
	slices.SortFunc(runs, func(x, y RunInfo) int { return compareRuns(y.Run, x.Run) })
	return runs, nil
}

func (a *Archiver) runInfo(run string) (RunInfo, error) {
	ri := RunInfo{Run: run, Files: []FileInfo{}}
	dir := a.runDir(run)
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	switch {
	case err == nil:
		var m Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			return ri, fmt.Errorf("run %s: corrupt manifest: %w", run, err)
		}
		ri.Complete = true
		ri.Manifest = &m
	case !errors.Is(err, os.ErrNotExist):
		return ri, fmt.Errorf("run %s: read manifest: %w", run, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ri, fmt.Errorf("run %s: %w", run, err)
	}
	for _, d := range ents {
		user, ok := strings.CutSuffix(d.Name(), archiveSuffix)
		if !ok || !d.Type().IsRegular() || !ValidUser(user) {
			continue
		}
		fi, err := d.Info()
		if err != nil {
			continue
		}
		ri.Files = append(ri.Files, FileInfo{User: user, Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return ri, nil
}

// compareRuns orders run ids by time, then by their "-N" suffix.
func compareRuns(x, y string) int {
	xb, xn := splitRun(x)
	yb, yn := splitRun(y)
	if c := strings.Compare(xb, yb); c != 0 {
		return c
	}
	return xn - yn
}

func splitRun(run string) (string, int) {
	base, suffix, ok := strings.Cut(run, "Z-")
	if !ok {
		return run, 1
	}
	n := 0
	fmt.Sscanf(suffix, "%d", &n)
	return base + "Z", n
}

// retain deletes old complete runs. It keeps the newest Keep full runs that
// finished without errors and every run newer than the oldest of them, so a
// string of failed nights (a full disk) never pushes good archives out.
// Single-user runs older than the oldest kept full run go too. Incomplete
// runs are left to removeStale.
func (a *Archiver) retain(ctx context.Context) error {
	if a.opts.Keep <= 0 {
		return nil
	}
	runs, err := a.Runs(ctx)
	if err != nil {
		return err
	}
	clean := 0
	cutoff := ""
	for _, r := range runs { // newest first
		if r.Complete && r.Manifest.Full && r.Manifest.Errors() == 0 {
			clean++
			if clean == a.opts.Keep {
				cutoff = r.Run
				break
			}
		}
	}
	if cutoff == "" {
		return nil
	}
	var errs []error
	for _, r := range runs {
		if !r.Complete || compareRuns(r.Run, cutoff) >= 0 {
			continue
		}
		a.log.Info("archive retention: removing run", "run", r.Run, "keep", a.opts.Keep)
		if err := a.removeRun(r.Run); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeStale removes incomplete runs older than the newest complete full
// run: leftovers of a process that died mid-run. Called at the start of a
// full run, when the job lock guarantees no other full run is writing.
func (a *Archiver) removeStale(ctx context.Context) {
	runs, err := a.Runs(ctx)
	if err != nil {
		a.log.Error("archive: list runs for cleanup", "err", err)
		return
	}
	newest := ""
	for _, r := range runs {
		if r.Complete && r.Manifest.Full {
			newest = r.Run
			break
		}
	}
	if newest == "" {
		return
	}
	for _, r := range runs {
		if r.Complete || compareRuns(r.Run, newest) >= 0 || a.isActive(r.Run) {
			continue
		}
		a.log.Info("archive: removing incomplete run left by an interrupted process", "run", r.Run)
		if err := a.removeRun(r.Run); err != nil {
			a.log.Error("archive: remove incomplete run", "run", r.Run, "err", err)
		}
	}
}

func (a *Archiver) removeRun(run string) error {
	if !ValidRun(run) {
		return fmt.Errorf("run %q: %w", run, ErrInvalidName)
	}
	dir := a.runDir(run)
	// Drop the manifest first: a half-deleted run then reads as incomplete
	// instead of complete with missing files.
	if err := os.Remove(filepath.Join(dir, manifestName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove run %s: %w", run, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove run %s: %w", run, err)
	}
	return nil
}

func (a *Archiver) isActive(run string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.active[run]
}
