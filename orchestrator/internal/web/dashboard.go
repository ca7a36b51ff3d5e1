package web

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// RunningCount is the number of running servers at the last sample; it
// never calls Redis, so a metrics scrape can read it.
func (s *Server) RunningCount() int { return int(s.running.Load()) }

// sampleEvery is how often SampleRunning looks; the series keeps one value
// per minute.
const sampleEvery = 30 * time.Second

// SampleRunning counts running servers now and then every 30 seconds until
// ctx ends, for the dashboard's 24-hour chart and RunningCount. Every
// replica may run it: samples of the same minute replace each other.
func (s *Server) SampleRunning(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		if err := s.sampleOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sampling running servers", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) sampleOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	servers, err := s.d.Store.ListServers(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, sv := range servers {
		if sv.State == store.StateRunning {
			n++
		}
	}
	s.running.Store(int64(n))
	return s.d.Store.RecordRunning(ctx, s.now(), n)
}

// adminLink builds dashboard URLs that keep the current search, filter and
// sort.
type adminLink struct {
	q userQuery
}

func (a adminLink) url(offset int, sortBy string) string {
	v := url.Values{}
	if a.q.Filter != "" {
		v.Set("q", a.q.Filter)
	}
	if a.q.State != "" {
		v.Set("state", a.q.State)
	}
	if sortBy != "" && sortBy != "name" {
		v.Set("sort", sortBy)
	}
	if offset > 0 {
		v.Set("offset", strconv.Itoa(offset))
	}
	if a.q.Limit != adminPageSize {
		v.Set("limit", strconv.Itoa(a.q.Limit))
	}
	if len(v) == 0 {
		return "/hub/admin"
	}
	return "/hub/admin?" + v.Encode()
}

const adminPageSize = 50

type sortHeader struct {
	Label, URL, Arrow string
	Active            bool
}

type pager struct {
	From, To, Total int
	Prev, Next      string
	Page, Pages     int
}

func (s *Server) adminPage(c echo.Context) error {
	id, _ := identityOf(c)
	ctx := c.Request().Context()
	q, err := parseUserQuery(c, adminPageSize, 500)
	if err != nil {
		return err
	}
	snap, err := s.loadUsers(ctx)
	if err != nil {
		return err
	}
	page, total := selectUsers(snap.Users, q)
	link := adminLink{q}
	headers := map[string]sortHeader{}
	for key, label := range map[string]string{"name": "User", "state": "Server", "started": "Started", "last_activity": "Last activity", "disk": "Disk"} {
		h := sortHeader{Label: label, URL: link.url(0, key)}
		switch q.Sort {
		case key:
			h.Active, h.Arrow, h.URL = true, "▲", link.url(0, "-"+key)
		case "-" + key:
			h.Active, h.Arrow = true, "▼"
		}
		headers[key] = h
	}
	pg := pager{Total: total, From: min(q.Offset+1, total), To: min(q.Offset+len(page), total),
		Page: q.Offset/q.Limit + 1, Pages: max(1, (total+q.Limit-1)/q.Limit)}
	if q.Offset > 0 {
		pg.Prev = link.url(max(0, q.Offset-q.Limit), q.Sort)
	}
	if q.Offset+q.Limit < total {
		pg.Next = link.url(q.Offset+q.Limit, q.Sort)
	}
	evs, err := s.d.Store.Events(ctx, "", 15)
	if err != nil {
		s.log.Warn("dashboard: reading events", "err", err)
	}
	data := map[string]any{
		"Wide": true, "XSRF": id.XSRF, "Users": page, "Snap": snap, "Query": q, "Headers": headers, "Pager": pg,
		"Events": evs, "AdminAccess": s.o.AdminAccess, "SoftLimit": s.o.DiskSoftLimit, "Image": s.imageInfo(ctx),
		"Chart": s.chart(ctx), "States": []string{"active", "ready", "inactive", "outdated", "failed", "blocked"},
		"Lecture": s.lectureView(ctx, snap.Counts),
	}
	if s.d.Archives != nil {
		runs, err := s.archiveRuns(ctx)
		data["ArchivesOn"] = true
		data["Archives"] = runs
		if err != nil {
			data["ArchivesError"] = "The archive list cannot be read right now: " + err.Error()
		}
	}
	if s.d.Prestarts != nil {
		s.prestartData(ctx, data)
	}
	return s.render(c, http.StatusOK, "admin.html", data)
}

// prestartData fills the "Before the lecture" card: the schedules with
// their next run, and the groups for start all / stop all.
func (s *Server) prestartData(ctx context.Context, data map[string]any) {
	data["PrestartsOn"] = true
	all, err := s.d.Prestarts.List(ctx)
	if err != nil {
		data["PrestartsError"] = "The pre-start schedules cannot be read right now: " + err.Error()
	}
	data["Prestarts"] = all
	groups, err := s.d.Store.Groups(ctx)
	if err != nil {
		s.log.Warn("dashboard: reading groups", "err", err)
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	data["GroupNames"] = names
}

// archiveView is one run as the dashboard shows it: newest first, with at
// most maxFilesShown download links (the API lists all).
type archiveView struct {
	ArchiveRun
	Shown  []ArchiveFile
	Hidden int
	Bytes  int64
}

const maxFilesShown = 200

func (s *Server) archiveRuns(ctx context.Context) ([]archiveView, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	runs, err := s.d.Archives.Runs(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Run > runs[j].Run })
	if len(runs) > 10 {
		runs = runs[:10]
	}
	out := make([]archiveView, 0, len(runs))
	for _, r := range runs {
		v := archiveView{ArchiveRun: r}
		for _, f := range r.Files {
			v.Bytes += f.Size
		}
		v.Shown = r.Files
		if len(v.Shown) > maxFilesShown {
			v.Shown, v.Hidden = v.Shown[:maxFilesShown], len(r.Files)-maxFilesShown
		}
		out = append(out, v)
	}
	return out, nil
}

// chartData is the 24-hour running-servers chart, drawn as inline SVG by
// the template (no script, so the CSP holds).
type chartData struct {
	W, H           int
	Left, Top      int
	PlotW, PlotH   int
	Line, Area     string
	YTicks, XTicks []chartTick
	Samples, Peak  int
	Now            int
	Empty          bool
	LastX, LastY   float64
	Bottom, RightX int
	LabelY         int
	Description    string
}

type chartTick struct {
	Pos    float64
	Label  string
	Anchor string // SVG text-anchor, so the end labels stay inside
}

func (s *Server) chart(ctx context.Context) chartData {
	now := s.now()
	since := now.Add(-24 * time.Hour)
	samples, err := s.d.Store.RunningSeries(ctx, since)
	if err != nil {
		s.log.Warn("dashboard: reading the running-servers series", "err", err)
	}
	return buildChart(samples, now)
}

func buildChart(samples []store.Sample, now time.Time) chartData {
	c := chartData{W: 1200, H: 210, Left: 40, Top: 10, PlotW: 1150, PlotH: 170}
	c.Bottom = c.Top + c.PlotH
	c.RightX = c.Left + c.PlotW
	c.LabelY = c.Bottom + 18
	since := now.Add(-24 * time.Hour)
	for _, sm := range samples {
		c.Peak = max(c.Peak, sm.Value)
	}
	top := niceMax(c.Peak)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(since)) / float64(24*time.Hour)
		return float64(c.Left) + math.Max(0, math.Min(1, f))*float64(c.PlotW)
	}
	y := func(v int) float64 { return float64(c.Top) + float64(c.PlotH)*(1-float64(v)/float64(top)) }
	for i := 0; i <= 4; i++ {
		v := top * i / 4
		c.YTicks = append(c.YTicks, chartTick{Pos: y(v), Label: strconv.Itoa(v)})
	}
	for h := 0; h <= 24; h += 6 {
		t := since.Add(time.Duration(h) * time.Hour)
		tick := chartTick{Pos: x(t), Label: t.Local().Format("15:04"), Anchor: "middle"}
		switch h {
		case 0:
			tick.Anchor = "start"
		case 24:
			tick.Label, tick.Anchor = "now", "end"
		}
		c.XTicks = append(c.XTicks, tick)
	}
	c.Samples = len(samples)
	if len(samples) == 0 {
		c.Empty = true
		c.Description = "No samples yet."
		return c
	}
	var line strings.Builder
	for i, sm := range samples {
		if i > 0 {
			line.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%.1f,%.1f", x(sm.Time), y(sm.Value))
	}
	first, last := samples[0], samples[len(samples)-1]
	c.Line = line.String()
	c.Area = fmt.Sprintf("%.1f,%d %s %.1f,%d", x(first.Time), c.Bottom, c.Line, x(last.Time), c.Bottom)
	c.Now = last.Value
	c.LastX, c.LastY = x(last.Time), y(last.Value)
	c.Description = fmt.Sprintf("Running servers over the last 24 hours: peak %d, now %d, %d samples.", c.Peak, c.Now, c.Samples)
	return c
}

// niceMax rounds up to 1, 2 or 5 times a power of ten, at least 4, so the
// four grid steps are whole numbers where it matters.
func niceMax(v int) int {
	if v <= 4 {
		return 4
	}
	p := 1
	for p*10 < v {
		p *= 10
	}
	for _, m := range []int{1, 2, 4, 5, 8, 10} {
		if m*p >= v && (m*p)%4 == 0 {
			return m * p
		}
	}
	return 10 * p
}

func initial(name string) string {
	if name == "" {
		return "?"
	}
	return strings.ToUpper(name[:1])
}

// shortImage drops a registry host and path: "reg.example/course/nb:2025"
// shows as "nb:2025" (the title attribute keeps the full name).
func shortImage(img string) string {
	if i := strings.LastIndex(img, "/"); i >= 0 {
		return img[i+1:]
	}
	return img
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
