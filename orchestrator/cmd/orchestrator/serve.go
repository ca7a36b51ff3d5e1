package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmhub/swarmhub/orchestrator/internal/accesscookie"
	"github.com/swarmhub/swarmhub/orchestrator/internal/activity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/archive"
	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/diskusage"
	"github.com/swarmhub/swarmhub/orchestrator/internal/dockerclient"
	"github.com/swarmhub/swarmhub/orchestrator/internal/httpguard"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/jobs"
	"github.com/swarmhub/swarmhub/orchestrator/internal/metrics"
	"github.com/swarmhub/swarmhub/orchestrator/internal/oauth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/prepull"
	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
	"github.com/swarmhub/swarmhub/orchestrator/internal/seed"
	"github.com/swarmhub/swarmhub/orchestrator/internal/sessioncache"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, ho))
	}
	return slog.New(slog.NewJSONHandler(w, ho))
}

func newRedis(cfg config.Config) redis.UniversalClient {
	addrs := []string{cfg.Redis.Address}
	if len(cfg.Redis.SentinelAddresses) > 0 {
		addrs = cfg.Redis.SentinelAddresses
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:       addrs,
		MasterName:  cfg.Redis.SentinelMaster,
		Password:    cfg.Redis.Password,
		DB:          cfg.Redis.DB,
		DialTimeout: cfg.Redis.DialTimeout,
		// Short timeouts: a hung Redis must turn into a clear 503, not a
		// request that hangs until the browser gives up.
		ReadTimeout:  3 * time.Second,
		WriteTimeout: 3 * time.Second,
		// Progress streams hold a connection while they block; a lecture
		// start opens many at once.
		PoolSize: 256,
	})
}

// serve runs the hub until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	log := newLogger(cfg, stdout)
	slog.SetDefault(log)
	log.Info("starting swarmhub orchestrator", "version", version, "instance", cfg.Instance, "authenticator", cfg.Auth.Authenticator)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	for _, v := range config.UnknownEnv(os.Environ()) {
		log.Warn("environment variable matches no configuration key; ignored", "variable", v)
	}

	namer, err := identity.New(identity.Options{
		Pattern: cfg.Auth.UsernamePattern, UsernameMap: cfg.Auth.UsernameMap,
		ServiceTemplate: cfg.Notebook.ServiceName, VolumeTemplate: cfg.Notebook.UserVolume,
	})
	if err != nil {
		return fmt.Errorf("username settings: %w", err)
	}

	rdb := newRedis(cfg)
	defer rdb.Close()
	st := store.New(rdb, cfg.Redis.KeyPrefix)

	docker, dockerCalls, err := dockerclient.New(cfg.Docker.Host)
	if err != nil {
		return err
	}
	defer docker.Close()

	authn, err := newAuthenticator(cfg, namer, log)
	if err != nil {
		return err
	}
	seeded := &seed.State{}
	if err := seed.Users(ctx, st, namer, cfg, log); err != nil {
		// Redis may come up after us; seeding is retried in the background
		// and /hub/health reports it until then.
		log.Warn("seeding users from the configuration failed; will retry", "err", err)
		seeded.Set(err)
	} else {
		seeded.Set(nil)
	}

	// The gauges read through closures over srv, px and lecture, assigned below.
	var srv *web.Server
	var px *proxy.Proxy
	usage := diskusage.NewSnapshot(st)
	lecture := &lectureGauges{}
	m := metrics.New(metrics.Options{
		RunningServers: func() int { return srv.RunningCount() },
		OpenWebsockets: func() int { return px.OpenWebsockets() },
		WorkspaceBytes: usage.Bytes,
		Lecture:        lecture.read,
		DockerRequests: dockerCalls.Requests,
	})
	room := capacity.NewReader(docker, capacityOptions(cfg), time.Second)

	mgr := spawner.NewManager(docker, spawner.WrapStore(st), spawner.ManagerOptions{
		Metrics:      m,
		Spec:         specOptions(cfg),
		Image:        cfg.Notebook.Image,
		Namer:        namer,
		StorageMount: cfg.Storage.Mount,
		StartTimeout: cfg.Notebook.StartTimeout,
		SpawnLimit:   cfg.Notebook.ConcurrentSpawnLimit,
		// Short: blocked students retry in small steps instead of waiting
		// out a long one while slots free up.
		RetryAfter:  2 * time.Second,
		Line:        st,
		Room:        room,
		Settings:    st,
		LineTimeout: cfg.Notebook.LineTimeout,
		// px is assigned below, before WatchAddresses starts.
		AddressGone: func(addr string) { px.DropUpstream(addr) },
	}, log.With("component", "spawner"))

	var puller *prepull.Puller
	if cfg.Notebook.Prepull {
		puller = prepull.New(docker, prepull.Options{Instance: cfg.Instance, Constraints: cfg.Notebook.PlacementConstraints,
			Logger: log.With("component", "prepull")})
	}
	jb, err := jobs.New(cfg, st, mgr, puller, room, log.With("component", "lifecycle"))
	if err != nil {
		return err
	}

	act := activity.New(st, log)
	secure := cfg.TLS.CertFile != "" || strings.HasPrefix(cfg.PublicURL, "https://")
	hubCookie, accessCookie := web.CookieNames(cfg.Session.CookieName, secure)
	cookies := &web.AccessCookies{Name: accessCookie, Secure: secure, Signer: &accesscookie.Signer{}}
	if err := loadAccessKey(ctx, st, cookies.Signer); err != nil {
		log.Warn("loading the access cookie key failed; will retry", "err", err)
	}
	sessions := sessioncache.New(st, cfg.Session.IdleTimeout, cfg.Session.MaxLifetime, 30*time.Second, hubCookie)
	access := &store.AccessEvents{Store: st, Log: log}
	px = proxy.New(web.ProxyIdentifier{Cache: sessions, Access: cookies}, mgr, act, access, proxy.Options{
		AdminAccess:      cfg.Auth.AdminAccess,
		CookieName:       hubCookie,
		ServerCookieName: accessCookie,
		Logger:           log.With("component", "proxy"),
		ErrNotRunning:    spawner.ErrNotRunning,
		Namer:            namer,
		PublicURL:        cfg.PublicURL,
		AllowedOrigins:   cfg.Proxy.AllowedOrigins,
		MaxWebsockets:    cfg.Proxy.MaxWebsocketsPerUser,
		MaxRequests:      cfg.Proxy.MaxRequestsPerUser,
	})

	srv = web.New(web.Options{
		Version:         version,
		PublicURL:       cfg.PublicURL,
		CookieName:      hubCookie,
		SecureCookies:   secure,
		TLS:             cfg.TLS.CertFile != "",
		SessionIdle:     cfg.Session.IdleTimeout,
		SessionMax:      cfg.Session.MaxLifetime,
		AdminAccess:     cfg.Auth.AdminAccess,
		AllowedImages:   append([]string{cfg.Notebook.Image}, cfg.Notebook.AllowedImages...),
		InstructorUsers: canonicalList(namer, cfg.Notebook.InstructorUsers),
		DiskSoftLimit:   int64(cfg.Lifecycle.DiskUsage.SoftLimit),
		RemoveData:      jb.RemoveData,
		Services:        serviceList(cfg.Services),
		TrustedProxies:  cfg.Listen.TrustedPrefixes(),
		BodyReadTimeout: cfg.Listen.BodyReadTimeout,
		Metrics:         m.Handler(),
		WrapProxy:       m.WrapProxy,
		Logger:          log.With("component", "web"),
		Checks: map[string]web.Checker{
			"redis":  checkFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() }),
			"docker": checkFunc(func(ctx context.Context) error { _, err := docker.Ping(ctx); return err }),
			"auth":   authn,
			"users":  seeded,
		},
	}, web.Deps{
		Store:        st,
		Auth:         authn,
		Policy:       auth.NewPolicy(cfg.Auth.AllowAll),
		Regulator:    auth.NewRegulator(st, auth.RegulationOptions{MaxFailures: cfg.Auth.Regulation.MaxFailures, AccountMaxFailures: cfg.Auth.Regulation.AccountMaxFailures, Window: cfg.Auth.Regulation.Window, Ban: cfg.Auth.Regulation.Ban}),
		FailedLogins: auth.NewFailureLog(st, auth.FailureLogOptions{}),
		Namer:        namer,
		Servers:      mgr,
		Proxy:        px,
		Sessions:     sessions,
		Jobs:         jb,
		Logins:       m,
		Archives:     jobs.ArchiveRuns{Archiver: jb.Archiver()},
		OAuth:        oauth.New(st),
		Prestarts:    jb.Prestarts(),
		Images:       imageNodes(puller),
		Access:       cookies,
		Line:         mgr,
		Capacity:     room,
	})
	jb.UseHub(srv)

	// Listen before serving so a taken port fails now, with its address.
	addr := net.JoinHostPort(cfg.Listen.Address, strconv.Itoa(cfg.Listen.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (listen.address/listen.port): %w", addr, err)
	}
	httpLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	limits := httpguard.Limits{
		ReadHeaderTimeout: cfg.Listen.ReadHeaderTimeout,
		IdleTimeout:       cfg.Listen.IdleTimeout,
		MaxHeaderBytes:    int(cfg.Listen.MaxHeaderBytes),
	}
	hs := httpguard.NewServer(srv, limits, httpLog)
	var tc *tls.Config
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	bg, stopBg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	goBg := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	goBg(func() { act.Run(bg, 5*time.Second) })
	goBg(func() { watchRevocations(bg, st, srv, log) })
	if !cookies.Signer.Ready() {
		goBg(func() { retryAccessKey(bg, st, cookies.Signer, log) })
	}
	goBg(func() { seed.RetryLoop(bg, st, namer, cfg, log, seeded) })
	goBg(func() { srv.SampleRunning(bg) })
	goBg(func() { usage.Follow(bg, time.Minute, log) })
	goBg(func() { mgr.WatchAddresses(bg, cfg.Lifecycle.Reconcile.Interval, docker) })
	goBg(func() { mgr.RunLine(bg) })
	goBg(func() { lecture.run(bg, mgr, room, log) })
	jb.OnCull(m.CullStopped)
	jb.OnArchive(func(mf archive.Manifest) {
		var bytes int64
		for _, e := range mf.Entries {
			bytes += e.Size
		}
		m.ArchiveFinished(mf.Errors() == 0, bytes)
	})
	jb.Start(bg)
	// Reconcile once at startup: adopt what runs, forget what is gone.
	goBg(func() {
		if _, err := jb.TriggerReconcile(bg); err != nil && !errors.Is(err, web.ErrJobRunning) {
			log.Warn("startup reconcile", "err", err)
		}
	})

	errc := make(chan error, 2)
	go func() {
		log.Info("listening", "address", addr, "tls", cfg.TLS.CertFile != "", "public_url", cfg.PublicURL)
		var lane func(net.Listener) net.Listener
		if cfg.Proxy.Lane {
			lane = func(ln net.Listener) net.Listener {
				return px.Lane(ln, proxy.LaneOptions{ReadHeaderTimeout: limits.ReadHeaderTimeout, IdleTimeout: limits.IdleTimeout,
					MaxHeaderBytes: limits.MaxHeaderBytes, Observe: m.ObserveProxy})
			}
		}
		errc <- httpguard.Serve(hs, ln, tc, lane)
	}()
	var redirect *http.Server
	if cfg.TLS.CertFile != "" && cfg.Listen.RedirectPort > 0 {
		raddr := net.JoinHostPort(cfg.Listen.Address, strconv.Itoa(cfg.Listen.RedirectPort))
		rln, err := net.Listen("tcp", raddr)
		if err != nil {
			_ = ln.Close()
			stopBg()
			return fmt.Errorf("listen on %s (listen.redirect_port): %w", raddr, err)
		}
		redirect = httpguard.NewServer(httpsRedirect(cfg.PublicURL), limits, httpLog)
		go func() { errc <- httpguard.Serve(redirect, rln, nil, nil) }()
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-errc:
		log.Error("server stopped", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = px.Shutdown(sctx)
	_ = hs.Shutdown(sctx)
	if redirect != nil {
		_ = redirect.Shutdown(sctx)
	}
	_ = jb.Stop(sctx)
	stopBg()
	wg.Wait()
	_ = mgr.Wait(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

func capacityOptions(cfg config.Config) capacity.Options {
	return capacity.Options{
		CPUGuarantee:  cfg.Notebook.CPUGuarantee,
		MemGuarantee:  int64(cfg.Notebook.MemGuarantee),
		Constraints:   cfg.Notebook.PlacementConstraints,
		StartsPerNode: cfg.Notebook.StartsPerNode,
	}
}

func specOptions(cfg config.Config) spawner.Options {
	n := cfg.Notebook
	o := spawner.Options{
		Network:        n.Network,
		NotebookDir:    n.NotebookDir,
		ExchangeDir:    n.ExchangeDir,
		ExchangeVolume: n.ExchangeVolume,
		CPULimit:       n.CPULimit,
		CPUGuarantee:   n.CPUGuarantee,
		MemLimit:       int64(n.MemLimit),
		MemGuarantee:   int64(n.MemGuarantee),
		Storage: spawner.Storage{
			Backend:    cfg.Storage.Backend,
			HostRoot:   cfg.Storage.HostPath.Root,
			NFSServer:  cfg.Storage.NFS.Server,
			NFSExport:  cfg.Storage.NFS.Export,
			NFSOptions: cfg.Storage.NFS.Options,
		},
		Constraints: n.PlacementConstraints,
		Preferences: n.PlacementPreferences,
		Env:         n.Env,
		Port:        n.Port,
		CourseID:    n.CourseID,
		Instance:    cfg.Instance,
		Contracts:   n.ImageContracts,
		HubURL:      cfg.HubInternalURL(),
		AdminAccess: cfg.Auth.AdminAccess,

		PidsLimit:       int64(n.PidsLimit),
		NoNewPrivileges: n.NoNewPrivileges,
		CapDrop:         n.CapDrop,
	}
	if n.CourseData.Enabled {
		o.CourseDataPath, o.CourseDataVolume = n.CourseData.MountPath, n.CourseData.Volume
	}
	return o
}

func newAuthenticator(cfg config.Config, namer *identity.Namer, log *slog.Logger) (auth.Authenticator, error) {
	switch cfg.Auth.Authenticator {
	case "dummy":
		return auth.NewDummy(cfg.Auth.Dummy.Password, namer, log), nil
	case "ldap":
		l := cfg.Auth.LDAP
		a, err := auth.NewLDAP(auth.LDAPOptions{
			ServerAddress: l.ServerAddress, ServerPort: l.ServerPort, TLS: l.TLS, CAFile: l.CAFile,
			InsecureSkipVerify: l.InsecureSkipVerify, ServerName: l.ServerName, BindDNTemplates: l.BindDNTemplates,
			LookupDN: l.LookupDN, BindDN: l.BindDN, BindPassword: l.BindPassword, UserSearchBase: l.UserSearchBase,
			UserAttribute: l.UserAttribute, SearchFilter: l.SearchFilter, LookupDNUserDNAttribute: l.LookupDNUserDNAttribute,
			AllowedGroups: l.AllowedGroups, GroupSearchBase: l.GroupSearchBase, GroupMemberAttributes: l.GroupMemberAttributes,
			DialTimeout: l.DialTimeout, OperationTimeout: l.OperationTimeout,
		}, namer, log.With("component", "ldap"))
		if err != nil {
			return nil, fmt.Errorf("auth.ldap: %w", err)
		}
		return a, nil
	default:
		return nil, fmt.Errorf("auth.authenticator %q is not supported (use ldap or dummy)", cfg.Auth.Authenticator)
	}
}

type checkFunc func(ctx context.Context) error

func (f checkFunc) Check(ctx context.Context) error { return f(ctx) }

func canonicalList(n *identity.Namer, in []string) []string {
	out := make([]string, 0, len(in))
	for _, raw := range in {
		if c, err := n.Canonical(raw); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// watchRevocations drops cached sessions and websockets of users revoked on
// any replica.
func watchRevocations(ctx context.Context, st *store.Store, srv *web.Server, log *slog.Logger) {
	for ctx.Err() == nil {
		ch, closeSub := st.SubscribeRevoke(ctx)
		for user := range ch {
			srv.DropLocal(user)
		}
		closeSub()
		log.Warn("revocation subscription ended; resubscribing")
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// loadAccessKey installs the key, shared by every replica through Redis,
// that signs servers' access cookies.
func loadAccessKey(ctx context.Context, st *store.Store, s *accesscookie.Signer) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key, err := st.AccessCookieKey(ctx)
	if err != nil {
		return err
	}
	return s.SetKey(key)
}

// retryAccessKey keeps trying while Redis is away at start; until it
// succeeds no server's page opens (the hub answers 503).
func retryAccessKey(ctx context.Context, st *store.Store, s *accesscookie.Signer, log *slog.Logger) {
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		if err := loadAccessKey(ctx, st, s); err != nil {
			log.Debug("loading the access cookie key", "err", err)
			continue
		}
		log.Info("access cookie key loaded")
		return
	}
}

// httpsRedirect sends plain-HTTP visitors to the public HTTPS URL.
func httpsRedirect(public string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := strings.TrimSuffix(public, "/")
		if base == "" || !strings.HasPrefix(base, "https://") {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			base = "https://" + host
		}
		http.Redirect(w, r, base+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}

// serviceList hands the configured services to the web layer.
func serviceList(svcs []config.Service) []web.Service {
	out := make([]web.Service, 0, len(svcs))
	for _, sv := range svcs {
		out = append(out, web.Service{Name: sv.Name, Token: sv.APIToken, Scopes: sv.Scopes})
	}
	return out
}

// imageNodes keeps a nil puller a nil interface (the web layer then hides
// the nodes).
func imageNodes(p *prepull.Puller) web.ImageNodes {
	if p == nil {
		return nil
	}
	return p
}
