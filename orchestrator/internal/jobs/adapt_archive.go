package jobs

import (
	"context"

	"github.com/swarmhub/swarmhub/orchestrator/internal/archive"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// ArchiveRuns shows the archiver's runs on the dashboard.
type ArchiveRuns struct{ Archiver *archive.Archiver }

// Runs lists the archive runs in the dashboard's terms.
func (r ArchiveRuns) Runs(ctx context.Context) ([]web.ArchiveRun, error) {
	runs, err := r.Archiver.Runs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]web.ArchiveRun, 0, len(runs))
	for _, run := range runs {
		v := web.ArchiveRun{Run: run.Run, Complete: run.Complete, Users: len(run.Files)}
		if run.Manifest != nil {
			v.Users = len(run.Manifest.Entries)
			v.Errors = run.Manifest.Errors()
		}
		for _, f := range run.Files {
			v.Files = append(v.Files, web.ArchiveFile{User: f.User, Size: f.Size})
		}
		out = append(out, v)
	}
	return out, nil
}
