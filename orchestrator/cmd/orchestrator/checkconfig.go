package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

// prober asks, from where check-config runs, whether the services the
// configuration names answer.
type prober struct {
	nfsPort string        // NFS over TCP: 2049
	timeout time.Duration // per service
}

var defaultProber = prober{nfsPort: "2049", timeout: 10 * time.Second}

// checkConfig is `orchestrator check-config [--probe ldap,nfs] FILE`: the
// file's problems, the TLS certificate's (a key that is not its own, expiry
// within config.CertMinValidity), and with --probe an LDAP directory or NFS
// server that does not answer from this host.
func checkConfig(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, p prober) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	probe := fs.String("probe", "", "comma-separated: ldap connects to the directory (binding as auth.ldap.bind_dn if set), nfs to the NFS server's port 2049")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprint(stderr, "usage: orchestrator check-config [--probe ldap,nfs] FILE\n")
		return exitError(2)
	}
	probes := map[string]bool{}
	for _, s := range strings.Split(*probe, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "ldap", "nfs":
			probes[s] = true
		default:
			fmt.Fprintf(stderr, "check-config: --probe %q: use ldap, nfs or ldap,nfs\n", s)
			return exitError(2)
		}
	}
	path := fs.Arg(0)
	cfg, err := config.Load(path, getenv)
	if err != nil {
		fmt.Fprintf(stdout, "%s: configuration has problems:\n%v\n", path, err)
		return exitError(1)
	}
	problems := cfg.CheckCertificate(time.Now(), config.CertMinValidity)
	problems = append(problems, p.probe(ctx, cfg, probes)...)
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "%s: configuration has problems:\n%v\n", path, problems)
		return exitError(1)
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", path)
	checkCapacity(ctx, cfg, stdout)
	return nil
}

// probe connects to the directory and the NFS server the configuration
// uses, those of them named in which.
func (p prober) probe(ctx context.Context, cfg config.Config, which map[string]bool) config.Errors {
	var errs config.Errors
	if which["ldap"] && cfg.Auth.Authenticator == "ldap" {
		if err := p.ldap(ctx, cfg); err != nil {
			errs = append(errs, config.FieldError{Key: "auth.ldap.server_address",
				Msg: fmt.Sprintf("%s does not answer from this host: %v", cfg.Auth.LDAP.ServerAddress, err)})
		}
	}
	if which["nfs"] && cfg.Storage.Backend == "nfs" {
		addr := net.JoinHostPort(cfg.Storage.NFS.Server, p.nfsPort)
		dctx, cancel := context.WithTimeout(ctx, p.timeout)
		defer cancel()
		conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
		if err != nil {
			errs = append(errs, config.FieldError{Key: "storage.nfs.server",
				Msg: fmt.Sprintf("NFS at %s does not answer from this host: %v; every node mounts the export from there", addr, err)})
		} else {
			_ = conn.Close()
		}
	}
	return errs
}

// ldap runs the authenticator's own health check: TLS as configured
// (ca_file, server_name) and the search user's bind.
func (p prober) ldap(ctx context.Context, cfg config.Config) error {
	namer, err := identity.New(identity.Options{Pattern: cfg.Auth.UsernamePattern, UsernameMap: cfg.Auth.UsernameMap})
	if err != nil {
		return err
	}
	authn, err := newAuthenticator(cfg, namer, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return authn.Check(ctx)
}
