package archive

import "io"

// SetInputHook wraps every file's content reader while archiving (tests use
// it to cancel at a known byte offset).
func SetInputHook(a *Archiver, h func(rel string, r io.Reader) io.Reader) { a.inputHook = h }

// SetOutputHook wraps the archive file writer (tests inject write faults).
func SetOutputHook(a *Archiver, h func(w io.Writer) io.Writer) { a.outputHook = h }
