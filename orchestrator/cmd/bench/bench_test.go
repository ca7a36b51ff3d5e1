package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEndpointDropsVersionsAndIDs(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v1.41/tasks", "GET /tasks"},
		{"POST", "/v1.41/services/create", "POST /services/create"},
		{"GET", "/v1.41/services/jupyter-alice", "GET /services/{id}"},
		{"DELETE", "/v1.41/services/abc123", "DELETE /services/{id}"},
		{"POST", "/v1.41/services/abc123/update", "POST /services/{id}/update"},
		{"GET", "/v1.41/containers/abc/stats", "GET /containers/{id}/stats"},
		{"GET", "/v1.41/containers/json", "GET /containers/json"},
		{"HEAD", "/_ping", "HEAD /_ping"},
		{"GET", "/v1.41/info", "GET /info"},
	} {
		if got := endpoint(c.method, c.path); got != c.want {
			t.Errorf("endpoint(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

func TestParseCommandStatsLeavesOutInfo(t *testing.T) {
	in := "# Commandstats\r\ncmdstat_get:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=3,usec=9\r\ncmdstat_client|setinfo:calls=2,usec=1\r\ncmdstat_hgetall:calls=7,usec=5\r\n"
	got := parseCommandStats(in)
	want := map[string]int64{"get": 12, "client|setinfo": 2, "hgetall": 7}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSummarizeNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := summarize(ds)
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", d.P50, 50 * time.Millisecond},
		{"p95", d.P95, 95 * time.Millisecond},
		{"p99", d.P99, 99 * time.Millisecond},
		{"max", d.Max, 100 * time.Millisecond},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	if (summarize(nil) != dist{}) {
		t.Error("an empty sample should summarise to zeros")
	}
	if got := summarize([]time.Duration{7}).P99; got != 7 {
		t.Errorf("p99 of one value = %s", got)
	}
}

func TestDeltaCountsOnlyChanges(t *testing.T) {
	before := callCounts{orchestratorSock: {"GET /tasks": 5, "GET /_ping": 2}}
	after := callCounts{orchestratorSock: {"GET /tasks": 9, "GET /_ping": 2, "POST /services/create": 1}, benchSock: {"GET /tasks": 100}}
	got := after.delta(before, orchestratorSock)
	want := map[string]int64{"GET /tasks": 4, "POST /services/create": 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestParseRunFlags(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		suites  []string
		wantErr string
	}{
		{"suites between flags", []string{"--config", "c.yaml", "proxy", "--duration", "2s", "storm"}, []string{"proxy", "storm"}, ""},
		{"no suites means all", []string{"--config", "c.yaml"}, nil, ""},
		{"unknown suite", []string{"--config", "c.yaml", "prxy"}, nil, `unknown suite "prxy"`},
		{"config required", []string{"proxy"}, nil, "--config is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseRunFlags(c.args)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.Suites, c.suites) {
				t.Fatalf("suites = %v, want %v", o.Suites, c.suites)
			}
		})
	}
}

func TestMarkdownTableRightAlignsFigures(t *testing.T) {
	tb := table{Title: "T", Head: []string{"a", "b"}}
	tb.add("x", "1")
	tb.add("y")
	got := tb.markdown()
	want := "### T\n\n| a | b |\n| --- | ---: |\n| x | 1 |\n| y |  |\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
