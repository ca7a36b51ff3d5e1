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
func resourceTable(path string, orch, bare courseResult) (table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return table{}, err
	}
	samples := parseSamples(string(b))
	o, w := window(samples, orch.From, orch.To), window(samples, bare.From, bare.To)
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
		Head:  []string{"container", "node", "swarmhub side: CPU mean", "CPU peak", "memory peak", "bare side: CPU mean", "CPU peak", "memory peak"},
	}
	var nodesO, nodesB float64
	for _, k := range keys {
		a, z := o[k], w[k]
		name, node := k[1], k[0]
		if node == "host" {
			name, node = k[1]+" (the whole node)", k[1]
			nodesO += a.CPUMean
			nodesB += z.CPUMean
		}
		t.add(name, node, pctf(a.CPUMean), pctf(a.CPUPeak), mib(a.MemPeak), pctf(z.CPUMean), pctf(z.CPUPeak), mib(z.MemPeak))
	}
	if nodesO > 0 {
		t.add("all nodes", "", pctf(nodesO), "", "", pctf(nodesB), "", "")
		t.add("ratio swarmhub / bare (all nodes, CPU mean)", "", ratio(nodesO, nodesB), "", "", "", "", "")
	}
	t.Notes = append(t.Notes, fmt.Sprintf("Samples of `docker stats --no-stream` (CPU in %% of one core) taken in a loop inside each manager and, for the nodes themselves, on the host; %d samples in the swarmhub window (%s), %d in the bare window (%s). A node's figures include its dockerd and every server on it.",
		count(o), orch.To.Sub(orch.From).Round(time.Second), count(w), bare.To.Sub(bare.From).Round(time.Second)))
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
