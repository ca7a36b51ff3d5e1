package main

import (
	"context"

	"github.com/swarmhub/swarmhub/orchestrator/internal/archive"
	"github.com/swarmhub/swarmhub/orchestrator/internal/metrics"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// newMetrics builds the Prometheus registry behind /hub/metrics. Both
// sources answer from memory: running is the web server's last count
// (kept fresh by web.Server.SampleRunning), sockets the proxy's registry.
//
// Wiring in serve: the metrics must exist before the spawner and web.New,
// so the gauges read through closures over variables assigned later:
//
//	var srv *web.Server
//	var px *proxy.Proxy
//	m := newMetrics(func() int { return srv.RunningCount() }, func() int { return px.OpenWebsockets() })
//	spawner.ManagerOptions{..., Metrics: m}
//	web.Options{..., Metrics: m.Handler(), WrapProxy: m.WrapProxy}
//	web.Deps{..., Logins: m, Archives: archiveRuns{archiver}}
//	goBg(func() { srv.SampleRunning(bg) })
//	culler: m.CullStopped(n); archiver: m.ArchiveFinished(ok, bytes)
func newMetrics(running func() int, openWebsockets func() int) *metrics.Metrics {
	return metrics.New(metrics.Options{RunningServers: running, OpenWebsockets: openWebsockets})
}

// archiveRuns shows the archiver's runs on the dashboard.
type archiveRuns struct{ a *archive.Archiver }

func (r archiveRuns) Runs(ctx context.Context) ([]web.ArchiveRun, error) {
	runs, err := r.a.Runs(ctx)
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
