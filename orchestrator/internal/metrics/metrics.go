// Package metrics exposes swarmhub's Prometheus metrics: running servers,
// spawns, proxied requests, websockets, culls, archives and logins.
package metrics

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawnfail"
)

// Options name the cheap sources the gauges read at scrape time. Each must
// answer from memory: a scrape must not fan out into Redis or Docker.
type Options struct {
	RunningServers func() int // e.g. web.Server.RunningCount
	OpenWebsockets func() int // e.g. proxy.Proxy.OpenWebsockets
	// WorkspaceBytes is every workspace's size on disk (e.g.
	// diskusage.Snapshot.Bytes).
	WorkspaceBytes func() map[string]int64
	// Lecture is the capacity and the start line as last read, false
	// before the first reading.
	Lecture func() (Lecture, bool)
	// DockerRequests is how many requests this replica sent to the Docker
	// API so far (e.g. dockerclient.Counter.Requests).
	DockerRequests func() uint64
}

// Lecture is what the capacity and start-line gauges show.
type Lecture struct {
	NodeFit  map[string]int // node hostname -> more servers that fit; -1 unlimited
	Fit      int            // in total; -1 unlimited
	Waiting  int            // starts waiting in line
	Starting int            // starts in flight
	Bound    int            // starts allowed in flight at once; 0 unbounded
}

// Login outcomes, the label values of swarmhub_logins_total.
const (
	LoginSuccess        = "success"
	LoginBadCredentials = "bad_credentials"
	LoginBanned         = "banned"
	LoginNotAllowed     = "not_allowed"
	LoginUnavailable    = "unavailable"
)

// Metrics is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	spawnDuration *prometheus.HistogramVec
	spawnFailures *prometheus.CounterVec
	culls         prometheus.Counter
	archives      *prometheus.CounterVec
	archiveBytes  prometheus.Counter
	logins        *prometheus.CounterVec

	// Proxied requests by status class, resolved once so that a request
	// costs no label lookup.
	proxyCount [6]prometheus.Counter
	proxyTime  [6]prometheus.Observer
}

// New registers every metric on a fresh registry (with Go and process
// collectors).
func New(o Options) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg}
	if o.RunningServers != nil {
		f := o.RunningServers
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "swarmhub_running_servers", Help: "User servers in state running.",
		}, func() float64 { return float64(f()) }))
	}
	if o.OpenWebsockets != nil {
		f := o.OpenWebsockets
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "swarmhub_open_websockets", Help: "Websocket connections proxied by this replica right now.",
		}, func() float64 { return float64(f()) }))
	}
	if o.WorkspaceBytes != nil {
		reg.MustRegister(&usageCollector{read: o.WorkspaceBytes, desc: prometheus.NewDesc("swarmhub_workspace_bytes",
			"Space a user's workspace takes on disk, as last measured in the background.", []string{"user"}, nil)})
	}
	if o.Lecture != nil {
		reg.MustRegister(lectureCollector{o.Lecture})
	}
	if o.DockerRequests != nil {
		f := o.DockerRequests
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "swarmhub_docker_requests_total", Help: "Requests this replica sent to the Docker API.",
		}, func() float64 { return float64(f()) }))
	}
	m.spawnDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "swarmhub_spawn_duration_seconds",
		Help:    "Time from a start request until the server was ready or the spawn failed.",
		Buckets: []float64{1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180, 300},
	}, []string{"outcome"})
	m.spawnFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarmhub_spawn_failures_total", Help: "Failed spawns by reason class.",
	}, []string{"reason"})
	m.culls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "swarmhub_culled_servers_total", Help: "Servers stopped by the idle culler.",
	})
	m.archives = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarmhub_archives_total", Help: "Workspace archives written, by result.",
	}, []string{"result"})
	m.archiveBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "swarmhub_archive_bytes_total", Help: "Bytes of workspace archives written.",
	})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarmhub_logins_total", Help: "Login attempts by outcome.",
	}, []string{"outcome"})
	proxyReqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarmhub_proxy_requests_total", Help: "Requests proxied to user servers, by status class.",
	}, []string{"code"})
	proxyDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "swarmhub_proxy_request_duration_seconds",
		Help:    "Time to answer a proxied request (websockets: until the upgrade).",
		Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"code"})
	reg.MustRegister(m.spawnDuration, m.spawnFailures, m.culls, m.archives, m.archiveBytes, m.logins, proxyReqs, proxyDur)
	for i, class := range []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"} {
		m.proxyCount[i] = proxyReqs.WithLabelValues(class)
		m.proxyTime[i] = proxyDur.WithLabelValues(class)
	}
	// Known label values appear at zero, so dashboards and alerts see them
	// before the first event.
	for _, c := range spawnfail.Classes() {
		m.spawnFailures.WithLabelValues(string(c))
	}
	for _, o := range []string{LoginSuccess, LoginBadCredentials, LoginBanned, LoginNotAllowed, LoginUnavailable} {
		m.logins.WithLabelValues(o)
	}
	m.archives.WithLabelValues("ok")
	m.archives.WithLabelValues("error")
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry lets cmd register more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SpawnFinished records one spawn; failureReason "" means it became ready.
// It satisfies spawner.SpawnObserver.
func (m *Metrics) SpawnFinished(d time.Duration, failureReason string) {
	if failureReason == "" {
		m.spawnDuration.WithLabelValues("ready").Observe(d.Seconds())
		return
	}
	m.spawnDuration.WithLabelValues("failed").Observe(d.Seconds())
	m.spawnFailures.WithLabelValues(string(spawnfail.Classify(failureReason))).Inc()
}

// CullStopped counts servers the culler stopped.
func (m *Metrics) CullStopped(n int) {
	if n > 0 {
		m.culls.Add(float64(n))
	}
}

// ArchiveFinished counts one workspace archive and its size.
func (m *Metrics) ArchiveFinished(ok bool, bytes int64) {
	if !ok {
		m.archives.WithLabelValues("error").Inc()
		return
	}
	m.archives.WithLabelValues("ok").Inc()
	if bytes > 0 {
		m.archiveBytes.Add(float64(bytes))
	}
}

// Login counts one login attempt by outcome (the Login* constants).
func (m *Metrics) Login(outcome string) {
	m.logins.WithLabelValues(outcome).Inc()
}

// statusWriter records the status of a proxied response. It keeps the
// wrapped writer reachable (Unwrap) so http.ResponseController can flush
// and hijack, which the proxy needs for event streams and websockets.
type statusWriter struct {
	http.ResponseWriter
	status int
	start  time.Time
	// upgraded is the time to the upgrade of a websocket, whose handler
	// runs for as long as the connection lives.
	upgraded time.Duration
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack is what httputil.ReverseProxy and the proxy's websocket writer
// reach for; a hijacked connection counts as 101.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	if err == nil {
		w.upgraded = time.Since(w.start)
	}
	return c, brw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var writers = sync.Pool{New: func() any { return new(statusWriter) }}

// WrapProxy counts requests to user servers by status class and observes
// their latency. The wrapper is pooled, so a request allocates nothing here.
func (m *Metrics) WrapProxy(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := writers.Get().(*statusWriter)
		*sw = statusWriter{ResponseWriter: w, start: time.Now()}
		defer func() {
			status, d := sw.status, sw.upgraded
			if d == 0 {
				d = time.Since(sw.start)
			}
			sw.ResponseWriter = nil
			writers.Put(sw)
			if status == 0 {
				status = http.StatusOK
			}
			m.ObserveProxy(status, d)
		}()
		h.ServeHTTP(sw, r)
	})
}

// ObserveProxy counts one answered request to a user server; the proxy's
// lane reports its requests here, WrapProxy those net/http serves.
func (m *Metrics) ObserveProxy(status int, d time.Duration) {
	i := status/100 - 1
	if i < 0 || i > 4 {
		i = 5
	}
	m.proxyCount[i].Inc()
	m.proxyTime[i].Observe(d.Seconds())
}

// usageCollector exports one gauge per workspace from memory.
type usageCollector struct {
	desc *prometheus.Desc
	read func() map[string]int64
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	for user, b := range c.read() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(b), user)
	}
}

var (
	capacityNodeDesc = prometheus.NewDesc("swarmhub_capacity_servers",
		"More user servers that fit on the node by the configured guarantees (-1: no guarantee, no limit).", []string{"node"}, nil)
	capacityTotalDesc = prometheus.NewDesc("swarmhub_capacity_servers_total",
		"More user servers that fit on the cluster by the configured guarantees (-1: no limit).", nil, nil)
	lineWaitingDesc = prometheus.NewDesc("swarmhub_start_line_waiting",
		"Starts waiting in line for their turn or for room.", nil, nil)
	startsDesc = prometheus.NewDesc("swarmhub_starts_in_flight",
		"Server starts admitted from the line and not yet ready or failed.", nil, nil)
	startsBoundDesc = prometheus.NewDesc("swarmhub_starts_in_flight_bound",
		"Starts allowed in flight at once (0: no bound).", nil, nil)
)

// lectureCollector reports the last reading of the capacity and the line,
// from memory.
type lectureCollector struct{ read func() (Lecture, bool) }

func (c lectureCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{capacityNodeDesc, capacityTotalDesc, lineWaitingDesc, startsDesc, startsBoundDesc} {
		ch <- d
	}
}

func (c lectureCollector) Collect(ch chan<- prometheus.Metric) {
	l, ok := c.read()
	if !ok {
		return
	}
	for node, fit := range l.NodeFit {
		ch <- prometheus.MustNewConstMetric(capacityNodeDesc, prometheus.GaugeValue, float64(fit), node)
	}
	ch <- prometheus.MustNewConstMetric(capacityTotalDesc, prometheus.GaugeValue, float64(l.Fit))
	ch <- prometheus.MustNewConstMetric(lineWaitingDesc, prometheus.GaugeValue, float64(l.Waiting))
	ch <- prometheus.MustNewConstMetric(startsDesc, prometheus.GaugeValue, float64(l.Starting))
	ch <- prometheus.MustNewConstMetric(startsBoundDesc, prometheus.GaugeValue, float64(l.Bound))
}
