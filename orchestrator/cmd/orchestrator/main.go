// Command orchestrator is swarmhub: one login, one Jupyter server per user on
// Docker Swarm. Subcommands: serve, healthcheck, version, check-config,
// restore-redis.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	_ "time/tzdata" // lifecycle.archive.timezone inside a FROM scratch image

	_ "golang.org/x/crypto/x509roots/fallback" // CA roots inside a FROM scratch image

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const defaultConfigPath = "/etc/swarmhub/orchestrator.yaml"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "orchestrator:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a code after the message was printed.
type exitError int

func (e exitError) Error() string { return "exit " + strconv.Itoa(int(e)) }

const usage = `usage: orchestrator <command> [flags]

commands:
  serve         [--config FILE]   run the hub (default config ` + defaultConfigPath + `)
  check-config  [--probe ldap,nfs] FILE
                print every problem in FILE and its TLS certificate (expiring
                within 14 days, key not its own) and exit non-zero if any;
                --probe also connects to the LDAP directory and/or NFS server
  healthcheck   [--config FILE] [--url URL]  exit 0 when the local hub answers /hub/health
  restore-redis [--config FILE] [--yes] SNAPSHOT|latest  restore a Redis snapshot (--list: show them)
  version                         print the version
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError(2)
	}
	switch args[0] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", envOr(getenv, "SWARMHUB_CONFIG_FILE", defaultConfigPath), "configuration file")
		if err := fs.Parse(args[1:]); err != nil {
			return exitError(2)
		}
		cfg, err := config.Load(*path, getenv)
		if err != nil {
			return fmt.Errorf("configuration %s is not valid:\n%w", *path, err)
		}
		return serve(ctx, cfg, stdout)
	case "check-config":
		return checkConfig(ctx, args[1:], getenv, stdout, stderr, defaultProber)
	case "healthcheck":
		return healthcheck(ctx, args[1:], getenv, stderr)
	case "restore-redis":
		return restoreRedis(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "swarmhub orchestrator", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)
		return exitError(2)
	}
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// healthcheck asks the hub on this host; the container HEALTHCHECK runs it.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", envOr(getenv, "SWARMHUB_CONFIG_FILE", defaultConfigPath), "configuration file")
	url := fs.String("url", "", "health URL (default from the configuration's port and TLS)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	target := *url
	if target == "" {
		scheme, port := "http", 8000
		if cfg, err := config.Load(*path, getenv); err == nil {
			port = cfg.Listen.Port
			if cfg.TLS.CertFile != "" {
				scheme = "https"
			}
		}
		target = fmt.Sprintf("%s://127.0.0.1:%d/hub/health", scheme, port)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	// The certificate names the public host, not 127.0.0.1; this only asks
	// whether our own process answers.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "unhealthy:", err)
		return exitError(1)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "unhealthy: status", resp.StatusCode)
		return exitError(1)
	}
	return nil
}
