// Package atomicfile writes small files so that a reader sees the old or
// the new content, never a mix, even across a crash.
package atomicfile

import "os"

// PartialSuffix marks a file being written; a crash can leave one behind.
const PartialSuffix = ".partial"

// WriteFile writes data to name+PartialSuffix, syncs it and renames it over
// name.
func WriteFile(name string, data []byte, perm os.FileMode) error {
	tmp := name + PartialSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// SyncDir makes a directory's new entries durable (best effort: a failure
// only weakens crash safety).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
