package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// dist summarises a sample of durations.
type dist struct {
	N                  int
	P50, P95, P99, Max time.Duration
	Mean               time.Duration
}

// summarize sorts ds in place and takes nearest-rank percentiles.
func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return dist{N: len(ds), P50: pct(ds, 50), P95: pct(ds, 95), P99: pct(ds, 99),
		Max: ds[len(ds)-1], Mean: sum / time.Duration(len(ds))}
}

// pct is the nearest-rank percentile of sorted ds.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

func median(ds []time.Duration) time.Duration {
	c := append([]time.Duration(nil), ds...)
	return summarize(c).P50
}

// table is one Markdown table with a title and notes under it.
type table struct {
	Title string
	Head  []string
	Rows  [][]string
	Notes []string
}

func (t *table) add(cells ...string) { t.Rows = append(t.Rows, cells) }

func (t table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", t.Title)
	b.WriteString("| " + strings.Join(t.Head, " | ") + " |\n")
	seps := make([]string, len(t.Head))
	for i := range seps {
		seps[i] = "---"
		if i > 0 {
			seps[i] = "---:"
		}
	}
	b.WriteString("| " + strings.Join(seps, " | ") + " |\n")
	for _, r := range t.Rows {
		cells := append([]string(nil), r...)
		for len(cells) < len(t.Head) {
			cells = append(cells, "")
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	for _, n := range t.Notes {
		b.WriteString("\n" + n + "\n")
	}
	return b.String()
}

// ms formats a duration in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

// secs formats a duration in seconds.
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// ratio formats a/b, or "n/a" when b is zero.
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// signed formats an added latency (proxied minus direct) with its sign.
func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "−" + ms(-d)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
