// Command bench measures swarmhub against baselines taken in the same run:
// the proxy against direct requests to user servers, spawn storms against
// bare `docker service create` plus readiness polls, the orchestrator's
// memory, and the Redis and Docker calls behind each proxied request.
//
// It runs inside a container on the bench stack's overlay network (user
// servers are reachable only there), started by scripts/bench, which also
// deploys and removes the stack. Subcommands:
//
//	bench run [flags] [SUITE...]     run suites (default: all) and print Markdown tables
//	bench dockerproxy --dir DIR      count Docker API calls (see dockerproxy.go)
//	bench relay                      reference hops for the proxy suite (see relay.go)
//	bench slapd [flags]              the LDAP test fixture with the course's students (on the host; see slapd.go)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: bench run [flags] [SUITE...] | bench dockerproxy --dir DIR | bench relay | bench slapd (suites: " + strings.Join(suiteNames(), ", ") + ")")
	}
	switch args[0] {
	case "run":
		o, err := parseRunFlags(args[1:])
		if err != nil {
			return err
		}
		return runSuites(ctx, o, stdout)
	case "dockerproxy":
		fs := flag.NewFlagSet("dockerproxy", flag.ContinueOnError)
		dir := fs.String("dir", "", "directory for orchestrator.sock and bench.sock")
		upstream := fs.String("upstream", "/var/run/docker.sock", "the Docker engine's socket")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *dir == "" {
			return errors.New("dockerproxy: --dir is required")
		}
		return serveDockerProxy(ctx, *dir, *upstream)
	case "relay":
		return serveRelay(ctx)
	case "slapd":
		return serveSlapd(ctx, args[1:], stdout)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	default:
		return fmt.Errorf("unknown subcommand %q (want run, dockerproxy, relay or slapd)", args[0])
	}
}

// runOptions are the flags of `bench run`.
type runOptions struct {
	Config        string        // the orchestrator.yaml the stack runs with
	Stack         string        // stack name: services STACK_orchestrator and STACK_redis
	DockerHost    string        // the bench's own Docker endpoint (the counting proxy)
	RawDockerHost string        // the engine itself, for exec into the Redis container
	Out           string        // Markdown results file
	Relay         string        // host of `bench relay` on the bench network; "" = no reference hops
	Duration      time.Duration // per HTTP load level
	WSRounds      int           // kernel round trips per side
	StormUsers    int
	StormPerNode  int // starts_per_node during the storms
	JupyterN      int
	SpawnRuns     int
	ImageRuns     int
	MemUsers      int
	MemServers    int
	HotRequests   int
	LectureUsers  int
	LectureSpread time.Duration
	CourseUsers   int
	CourseSpread  time.Duration
	CourseBare    string // the course suite's baselines: all (every start at once), bounded or both
	Stats         string // docker stats samples written by scripts/bench-course
	Password      string // every user's password, instead of the dummy authenticator's
	Suites        []string
	Note          string // printed above the tables (machine, load)
}

func parseRunFlags(args []string) (runOptions, error) {
	var o runOptions
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&o.Config, "config", "", "orchestrator.yaml of the bench stack (required)")
	fs.StringVar(&o.Stack, "stack", "swarmhub-bench", "stack name")
	fs.StringVar(&o.DockerHost, "docker", "unix:///var/run/docker.sock", "Docker API endpoint for the bench's own calls")
	fs.StringVar(&o.RawDockerHost, "docker-raw", "unix:///var/run/docker.sock", "the engine's own endpoint (exec into Redis; not counted)")
	fs.StringVar(&o.Out, "out", "", "also write the Markdown results here")
	fs.StringVar(&o.Relay, "relay", "", "host of `bench relay` on the bench network (the proxy suite's reference hops)")
	fs.DurationVar(&o.Duration, "duration", 4*time.Second, "measuring time per HTTP load level and side")
	fs.IntVar(&o.WSRounds, "ws-rounds", 200, "kernel execute round trips per side")
	fs.IntVar(&o.StormUsers, "storm-users", 100, "users in the spawn storm")
	fs.IntVar(&o.StormPerNode, "storm-starts-per-node", 0, "starts_per_node during the storms: 0 lets every start go at once, like the baseline; -1 is each node's CPU count (the default of a real hub)")
	fs.IntVar(&o.JupyterN, "jupyter-users", 20, "users in the real Jupyter storm")
	fs.IntVar(&o.SpawnRuns, "spawn-runs", 5, "sequential Debian notebook starts per side")
	fs.IntVar(&o.ImageRuns, "image-runs", 3, "sequential starts per side and image in the images suite")
	fs.IntVar(&o.MemUsers, "memory-users", 10000, "registered users in the memory suite")
	fs.IntVar(&o.MemServers, "memory-servers", 200, "running servers in the memory suite")
	fs.IntVar(&o.HotRequests, "hot-requests", 5000, "proxied requests in the hot-path suite")
	fs.IntVar(&o.LectureUsers, "lecture-users", 30, "students in the lecture suite")
	fs.DurationVar(&o.LectureSpread, "lecture-spread", 10*time.Second, "the lecture suite's students log in within this time")
	fs.IntVar(&o.CourseUsers, "course-users", 200, "students in the course suite")
	fs.DurationVar(&o.CourseSpread, "course-spread", time.Minute, "the course suite's students arrive within this time")
	fs.StringVar(&o.CourseBare, "course-bare", "both", "the course suite's baselines: all (every start at once), bounded (at most notebook.concurrent_spawn_limit starts in flight) or both")
	fs.StringVar(&o.Stats, "stats", "", "the course suite's CPU and memory samples (lines: UNIX-SECONDS NODE CONTAINER CPU% MEMORY)")
	fs.StringVar(&o.Password, "password", "", "every user's password (default: the dummy authenticator's from the configuration)")
	fs.StringVar(&o.Note, "note", "", "a line printed above the results (machine, load)")
	// Flags and suite names may come in any order.
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		o.Suites = append(o.Suites, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if o.Config == "" {
		return o, errors.New("run: --config is required")
	}
	switch o.CourseBare {
	case "all", "bounded", "both":
	default:
		return o, fmt.Errorf("run: --course-bare %q (want all, bounded or both)", o.CourseBare)
	}
	known := map[string]bool{}
	for _, n := range suiteNames() {
		known[n] = true
	}
	for _, s := range o.Suites {
		if !known[s] && s != "all" {
			return o, fmt.Errorf("unknown suite %q (known: %s, all)", s, strings.Join(suiteNames(), ", "))
		}
	}
	return o, nil
}
