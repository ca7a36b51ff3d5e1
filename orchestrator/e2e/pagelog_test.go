package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// pageLog records what a tab did, so that a failed browser test says why a
// page stayed blank or broken: every request with its status and timing
// (and the ones never answered), navigations, console messages and
// uncaught exceptions. A screenshot alone shows only a white page.
type pageLog struct {
	mu    sync.Mutex
	start time.Time
	lines []string
	reqs  map[network.RequestID]*pageRequest
	order []network.RequestID
}

type pageRequest struct {
	what   string // method and URL
	sent   time.Duration
	status int64
	done   time.Duration
	failed string
	ended  bool
}

func (l *pageLog) since() time.Duration { return time.Since(l.start).Round(time.Millisecond) }

func (l *pageLog) note(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%9s ", l.since())+fmt.Sprintf(format, args...))
}

// event handles one protocol event; it runs on the tab's reading goroutine
// and must stay quick.
func (l *pageLog) event(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := l.since()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if r, ok := l.reqs[e.RequestID]; ok && e.RedirectResponse != nil {
			r.status, r.done, r.ended = e.RedirectResponse.Status, at, true
		}
		l.reqs[e.RequestID] = &pageRequest{what: e.Request.Method + " " + e.Request.URL, sent: at}
		l.order = append(l.order, e.RequestID)
	case *network.EventResponseReceived:
		if r, ok := l.reqs[e.RequestID]; ok && e.Response != nil {
			r.status = e.Response.Status
		}
	case *network.EventLoadingFinished:
		if r, ok := l.reqs[e.RequestID]; ok {
			r.done, r.ended = at, true
		}
	case *network.EventLoadingFailed:
		if r, ok := l.reqs[e.RequestID]; ok {
			r.done, r.ended = at, true
			r.failed = e.ErrorText
			if e.Canceled {
				r.failed += " (canceled)"
			}
			if e.BlockedReason != "" {
				r.failed += " (blocked: " + string(e.BlockedReason) + ")"
			}
		}
	case *page.EventFrameNavigated:
		if e.Frame != nil && e.Frame.ParentID == "" {
			l.lines = append(l.lines, fmt.Sprintf("%9s navigated to %s", at, e.Frame.URL))
		}
	}
}

// report is the log as text: events in order, then every request.
func (l *pageLog) report() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	b.WriteString("== navigations, console messages, exceptions\n")
	for _, s := range l.lines {
		b.WriteString(s + "\n")
	}
	b.WriteString("== requests (sent at, status, ended at)\n")
	for _, id := range l.order {
		r := l.reqs[id]
		end := "NEVER ANSWERED"
		if r.ended {
			end = r.done.String()
		}
		if r.failed != "" {
			end += " FAILED " + r.failed
		}
		fmt.Fprintf(&b, "%9s %3d %s  %s\n", r.sent, r.status, end, r.what)
	}
	return b.String()
}

// recordPage starts recording tab's events; if the test fails, t.Cleanup
// writes the record, the page's HTML and its readyState to
// artifacts/<test name>-page.txt. Call it before the browser is torn down
// (cleanups run last-in first-out, so after newChrome).
func recordPage(t testing.TB, tab context.Context) {
	t.Helper()
	l := &pageLog{start: time.Now(), reqs: map[network.RequestID]*pageRequest{}}
	if err := chromedp.Listen(tab, l.event); err != nil {
		t.Logf("record page events: %v", err)
		return
	}
	cctx, stop := context.WithCancel(tab)
	go func() {
		for m, err := range chromedp.Console(cctx) {
			if err != nil {
				return
			}
			l.note("console %s (%s:%d)", m, m.URL, m.Line)
		}
	}()
	t.Cleanup(func() {
		stop()
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " readyState=" + document.readyState`))
		if err != nil {
			state = "evaluate: " + err.Error()
		}
		html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		if err != nil {
			html = "evaluate: " + err.Error()
		}
		text := "== page: " + state + "\n" + l.report() + "== HTML\n" + html + "\n"
		file := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-page.txt"
		path := filepath.Join(artifactsDir(t), file)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Logf("page record: %v", err)
			return
		}
		t.Logf("page record (requests, console, HTML): %s", path)
	})
}
