package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sample is one `docker stats` reading of one container.
type sample struct {
	At        time.Time
	Node      string // the node whose engine ran it; "host" for the nodes themselves
	Container string // service name for a task (the task suffix dropped)
	CPU       float64
	Mem       uint64
}

// parseSamples reads lines "UNIX-SECONDS NODE NAME CPU% MEMORY", as
// scripts/bench-course writes them from `docker stats --no-stream`
// (MEMORY as it prints it, e.g. 12.5MiB); malformed lines are skipped.
func parseSamples(s string) []sample {
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 {
			continue
		}
		at, err1 := strconv.ParseFloat(f[0], 64)
		cpu, err2 := strconv.ParseFloat(strings.TrimSuffix(f[3], "%"), 64)
		mem, ok := parseSize(f[4])
		if err1 != nil || err2 != nil || !ok {
			continue
		}
		name := f[2]
		// A task's container: SERVICE.SLOT.TASKID.
		if parts := strings.Split(name, "."); len(parts) == 3 {
			name = parts[0]
		}
		out = append(out, sample{At: time.Unix(0, int64(at*1e9)), Node: f[1], Container: name, CPU: cpu, Mem: mem})
	}
	return out
}

// parseSize reads a size as docker stats prints it: 512B, 1.5KiB, 12MiB,
// 1GiB (and the decimal kB, MB, GB).
func parseSize(s string) (uint64, bool) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return 0, false
			}
			return uint64(f * u.mult), true
		}
	}
	return 0, false
}

// usage is CPU and memory of one container over a window.
type usage struct {
	N       int
	CPUMean float64 // percent of one core
	CPUPeak float64
	MemPeak uint64
}

// window summarises the samples of every node/container in [from, to].
func window(samples []sample, from, to time.Time) map[[2]string]usage {
	sums := map[[2]string]float64{}
	out := map[[2]string]usage{}
	for _, s := range samples {
		if s.At.Before(from) || s.At.After(to) {
			continue
		}
		k := [2]string{s.Node, s.Container}
		u := out[k]
		u.N++
		sums[k] += s.CPU
		u.CPUPeak = max(u.CPUPeak, s.CPU)
		u.MemPeak = max(u.MemPeak, s.Mem)
		out[k] = u
	}
	for k, u := range out {
		u.CPUMean = sums[k] / float64(u.N)
		out[k] = u
	}
	return out
}

// resourceTable is CPU and memory of the replicas, Redis and the nodes
// during each side of the course suite.
func resourceTable(path string, orch courseResult, bare []courseSide) (table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return table{}, err
	}
	samples := parseSamples(string(b))
	o := window(samples, orch.From, orch.To)
	if len(o) == 0 {
		return table{}, fmt.Errorf("no samples in %s during the run", path)
	}
	keys := make([][2]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	// The nodes (sampled on the host) last, each group by name.
	sort.Slice(keys, func(i, j int) bool {
		hi, hj := keys[i][0] == "host", keys[j][0] == "host"
		if hi != hj {
			return hj
		}
		return keys[i][1]+keys[i][0] < keys[j][1]+keys[j][0]
	})
	t := table{
		Title: "First minute of a course: CPU and memory (docker stats)",
		Head:  []string{"container", "node", "swarmhub side: CPU mean", "CPU peak", "memory peak"},
	}
	windows := []map[[2]string]usage{o}
	note := fmt.Sprintf("%d samples in the swarmhub window (%s)", count(o), orch.To.Sub(orch.From).Round(time.Second))
	for _, s := range bare {
		w := window(samples, s.From, s.To)
		windows = append(windows, w)
		t.Head = append(t.Head, s.Name+" side: CPU mean", "CPU peak", "memory peak")
		note += fmt.Sprintf(", %d in the %s window (%s)", count(w), s.Name, s.To.Sub(s.From).Round(time.Second))
	}
	nodes := make([]float64, len(windows))
	for _, k := range keys {
		name, node := k[1], k[0]
		if node == "host" {
			name, node = k[1]+" (the whole node)", k[1]
		}
		row := []string{name, node}
		for i, w := range windows {
			u := w[k]
			if k[0] == "host" {
				nodes[i] += u.CPUMean
			}
			row = append(row, pctf(u.CPUMean), pctf(u.CPUPeak), mib(u.MemPeak))
		}
		t.add(row...)
	}
	if nodes[0] > 0 {
		row := []string{"all nodes", ""}
		for _, n := range nodes {
			row = append(row, pctf(n), "", "")
		}
		t.add(row...)
		for i, s := range bare {
			t.add("ratio swarmhub / "+s.Name+" (all nodes, CPU mean)", "", ratio(nodes[0], nodes[i+1]))
		}
	}
	t.Notes = append(t.Notes, "Samples of `docker stats --no-stream` (CPU in % of one core) taken in a loop inside each manager and, for the nodes themselves, on the host; "+note+". A node's figures include its dockerd and every server on it.")
	return t, nil
}

func count(m map[[2]string]usage) int {
	n := 0
	for _, u := range m {
		n += u.N
	}
	return n
}

func pctf(v float64) string { return fmt.Sprintf("%.0f%%", v) }
