package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

// valid is the smallest valid configuration: the defaults plus a chosen
// authenticator.
func valid() config.Config {
	c := config.Default()
	c.Auth.Authenticator = "dummy"
	c.Auth.Dummy.Password = "dev-password"
	return c
}

func validLDAP() config.Config {
	c := config.Default()
	c.Auth.Authenticator = "ldap"
	c.Auth.LDAP.ServerAddress = "ldap.example.edu"
	c.Auth.LDAP.BindDNTemplates = []string{"uid={username},ou=people,dc=example,dc=edu"}
	return c
}

// fieldErrors returns the *Errors inside err, failing the test otherwise.
func fieldErrors(t *testing.T, err error) config.Errors {
	t.Helper()
	var errs *config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want *config.Errors, got %T: %v", err, err)
	}
	return *errs
}

func TestValidConfigsPass(t *testing.T) {
	for name, c := range map[string]config.Config{"dummy": valid(), "ldap": validLDAP()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// An IANA zone name is accepted and read as that zone.
func TestArchiveTimezone(t *testing.T) {
	c := valid()
	c.Lifecycle.Archive.Timezone = "Europe/Berlin"
	c.Lifecycle.Archive.Dir = "/mnt/archives"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	loc, err := c.Lifecycle.Archive.Location()
	if err != nil || loc.String() != "Europe/Berlin" {
		t.Fatalf("Location() = %v, %v; want Europe/Berlin", loc, err)
	}
	if loc, err := config.Default().Lifecycle.Archive.Location(); err != nil || loc != time.Local {
		t.Fatalf("default Location() = %v, %v; want time.Local", loc, err)
	}
}

func TestDefaultNeedsOnlyAnAuthenticator(t *testing.T) {
	c := config.Default()
	errs := fieldErrors(t, c.Validate())
	if got := errs.Keys(); !slices.Equal(got, []string{"auth.authenticator"}) {
		t.Fatalf("keys with errors = %v, want only auth.authenticator:\n%v", got, errs)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name   string
		base   func() config.Config
		mutate func(c *config.Config)
		key    string
		msg    string // a fragment the message must hold
	}{
		{"instance with space", valid, func(c *config.Config) { c.Instance = "my hub" }, "instance", "label"},
		{"public url without scheme", valid, func(c *config.Config) { c.PublicURL = "hub.example.edu" }, "public_url", "https://hub.example.edu"},
		{"public url ftp", valid, func(c *config.Config) { c.PublicURL = "ftp://hub.example.edu" }, "public_url", "http(s)"},
		{"public url with path", valid, func(c *config.Config) { c.PublicURL = "https://example.edu/hub" }, "public_url", "path"},
		{"public url with query", valid, func(c *config.Config) { c.PublicURL = "https://example.edu/?a=b" }, "public_url", "query"},
		{"listen address empty", valid, func(c *config.Config) { c.Listen.Address = "" }, "listen.address", "required"},
		{"listen address with port", valid, func(c *config.Config) { c.Listen.Address = "0.0.0.0:80" }, "listen.address", "listen.port"},
		{"listen port zero", valid, func(c *config.Config) { c.Listen.Port = 0 }, "listen.port", "1-65535"},
		{"listen port too big", valid, func(c *config.Config) { c.Listen.Port = 70000 }, "listen.port", "1-65535"},
		{"redirect without tls", valid, func(c *config.Config) { c.Listen.RedirectPort = 80 }, "listen.redirect_port", "tls.cert_file"},
		{"cert without key", valid, func(c *config.Config) { c.TLS.CertFile = writeFile(t, "cert.pem", "x") }, "tls.key_file", "set both"},
		{"key without cert", valid, func(c *config.Config) { c.TLS.KeyFile = writeFile(t, "key.pem", "x") }, "tls.cert_file", "set both"},
		{"cert file missing", valid, func(c *config.Config) {
			c.TLS.CertFile, c.TLS.KeyFile = "/nonexistent/cert.pem", writeFile(t, "key.pem", "x")
		}, "tls.cert_file", "/nonexistent/cert.pem"},
		{"cert file is a directory", valid, func(c *config.Config) {
			c.TLS.CertFile, c.TLS.KeyFile = t.TempDir(), writeFile(t, "key.pem", "x")
		}, "tls.cert_file", "regular file"},
		{"log level", valid, func(c *config.Config) { c.Log.Level = "verbose" }, "log.level", "debug, info, warn, error"},
		{"log format", valid, func(c *config.Config) { c.Log.Format = "xml" }, "log.format", "json, text"},
		{"redis address without port", valid, func(c *config.Config) { c.Redis.Address = "redis" }, "redis.address", "host:port"},
		{"redis address bad port", valid, func(c *config.Config) { c.Redis.Address = "redis:0" }, "redis.address", "1-65535"},
		{"redis db negative", valid, func(c *config.Config) { c.Redis.DB = -1 }, "redis.db", "from 0"},
		{"redis prefix empty", valid, func(c *config.Config) { c.Redis.KeyPrefix = "" }, "redis.key_prefix", "non-empty"},
		{"redis dial timeout", valid, func(c *config.Config) { c.Redis.DialTimeout = 0 }, "redis.dial_timeout", "positive"},
		{"sentinels without master", valid, func(c *config.Config) { c.Redis.SentinelAddresses = []string{"s1:26379"} }, "redis.sentinel_master", "required"},
		{"master without sentinels", valid, func(c *config.Config) { c.Redis.SentinelMaster = "mymaster" }, "redis.sentinel_addresses", "required"},
		{"bad sentinel", valid, func(c *config.Config) {
			c.Redis.SentinelMaster, c.Redis.SentinelAddresses = "m", []string{"s1"}
		}, "redis.sentinel_addresses", "host:port"},
		{"docker host scheme", valid, func(c *config.Config) { c.Docker.Host = "/var/run/docker.sock" }, "docker.host", "scheme"},
		{"docker tcp without host", valid, func(c *config.Config) { c.Docker.Host = "tcp://" }, "docker.host", "no host"},
		{"image empty", valid, func(c *config.Config) { c.Notebook.Image = "" }, "notebook.image", "required"},
		{"image upper case", valid, func(c *config.Config) { c.Notebook.Image = "Course/Notebook" }, "notebook.image", "lower case"},
		{"image not allowed", valid, func(c *config.Config) { c.Notebook.AllowedImages = []string{"other/image:1"} }, "notebook.allowed_images", "does not contain notebook.image"},
		{"allowed image invalid", valid, func(c *config.Config) {
			c.Notebook.AllowedImages = []string{c.Notebook.Image, "bad image"}
		}, "notebook.allowed_images", "not a Docker image"},
		{"unknown contract", valid, func(c *config.Config) {
			c.Notebook.ImageContracts = map[string]string{c.Notebook.Image: "kubespawner"}
		}, "notebook.image_contracts", `contract "kubespawner" is unknown`},
		{"contract for an unused image", valid, func(c *config.Config) {
			c.Notebook.ImageContracts = map[string]string{"swarmhub/notebook-singlueser:dev": "jupyterhub-singleuser"}
		}, "notebook.image_contracts", "neither notebook.image nor in notebook.allowed_images"},
		{"singleuser env override", valid, func(c *config.Config) {
			c.Notebook.ImageContracts = map[string]string{c.Notebook.Image: "jupyterhub-singleuser"}
			c.Notebook.Env = map[string]string{"JUPYTERHUB_API_URL": "http://elsewhere"}
		}, "notebook.env", "JUPYTERHUB_API_URL is set by swarmhub for jupyterhub-singleuser images"},
		{"hub url without scheme", valid, func(c *config.Config) { c.Notebook.HubURL = "orchestrator:8000" }, "notebook.hub_url", "http(s)"},
		{"hub url with path", valid, func(c *config.Config) { c.Notebook.HubURL = "http://orchestrator:8000/hub/api" }, "notebook.hub_url", "/hub/api themselves"},
		{"mem limit tiny", valid, func(c *config.Config) { c.Notebook.MemLimit, c.Notebook.MemGuarantee = 1024, 0 }, "notebook.mem_limit", "6M"},
		{"mem guarantee above limit", valid, func(c *config.Config) { c.Notebook.MemGuarantee = 4 * config.GiB },
			"notebook.mem_guarantee", "4G is larger than notebook.mem_limit 2G; lower the guarantee or raise the limit"},
		{"mem guarantee negative", valid, func(c *config.Config) { c.Notebook.MemGuarantee = -1 }, "notebook.mem_guarantee", "negative"},
		{"cpu limit negative", valid, func(c *config.Config) { c.Notebook.CPULimit = -1 }, "notebook.cpu_limit", "0.01"},
		{"cpu guarantee above limit", valid, func(c *config.Config) { c.Notebook.CPUGuarantee = 2 }, "notebook.cpu_guarantee", "larger than notebook.cpu_limit 1"},
		{"notebook dir relative", valid, func(c *config.Config) { c.Notebook.NotebookDir = "home/jovyan" }, "notebook.notebook_dir", "absolute"},
		{"exchange dir empty", valid, func(c *config.Config) { c.Notebook.ExchangeDir = "" }, "notebook.exchange_dir", "required"},
		{"exchange dir is notebook dir", valid, func(c *config.Config) { c.Notebook.ExchangeDir = "/home/jovyan/" }, "notebook.exchange_dir", "notebook.notebook_dir"},
		{"user volume without placeholder", valid, func(c *config.Config) { c.Notebook.UserVolume = "workspace" }, "notebook.user_volume", "{username}"},
		{"user volume other placeholder", valid, func(c *config.Config) { c.Notebook.UserVolume = "ws-{user}-{username}" }, "notebook.user_volume", "{user}"},
		{"user volume invalid chars", valid, func(c *config.Config) { c.Notebook.UserVolume = "ws/{username}" }, "notebook.user_volume", "invalid names"},
		{"exchange volume", valid, func(c *config.Config) { c.Notebook.ExchangeVolume = "" }, "notebook.exchange_volume", "volume name"},
		{"service name without placeholder", valid, func(c *config.Config) { c.Notebook.ServiceName = "jupyter" }, "notebook.service_name", "{username}"},
		{"service name with underscore", valid, func(c *config.Config) { c.Notebook.ServiceName = "jupyter_{username}" }, "notebook.service_name", "invalid names"},
		{"service name too long", valid, func(c *config.Config) { c.Notebook.ServiceName = strings.Repeat("x", 62) + "{username}" }, "notebook.service_name", "63"},
		{"network", valid, func(c *config.Config) { c.Notebook.Network = "" }, "notebook.network", "network name"},
		{"placement constraint", valid, func(c *config.Config) { c.Notebook.PlacementConstraints = []string{"node.role=worker"} }, "notebook.placement_constraints", "=="},
		{"placement preference", valid, func(c *config.Config) { c.Notebook.PlacementPreferences = []string{"node.id"} }, "notebook.placement_preferences", "spread="},
		{"env bad name", valid, func(c *config.Config) { c.Notebook.Env = map[string]string{"1X": "y"} }, "notebook.env", "1X"},
		{"env reserved", valid, func(c *config.Config) { c.Notebook.Env = map[string]string{"JUPYTER_TOKEN": "y"} }, "notebook.env", "set by swarmhub"},
		{"env swarmhub prefix", valid, func(c *config.Config) { c.Notebook.Env = map[string]string{"SWARMHUB_INSTRUCTOR": "1"} }, "notebook.env", "set by swarmhub"},
		{"notebook port", valid, func(c *config.Config) { c.Notebook.Port = 0 }, "notebook.port", "1-65535"},
		{"start timeout", valid, func(c *config.Config) { c.Notebook.StartTimeout = -time.Second }, "notebook.start_timeout", "positive"},
		{"spawn limit", valid, func(c *config.Config) { c.Notebook.ConcurrentSpawnLimit = 0 }, "notebook.concurrent_spawn_limit", "at least 1"},
		{"negative pids limit", valid, func(c *config.Config) { c.Notebook.PidsLimit = -1 }, "notebook.pids_limit", "negative"},
		{"capability with a space", valid, func(c *config.Config) { c.Notebook.CapDrop = []string{"NET RAW"} }, "notebook.cap_drop", "capability name"},
		{"no header timeout", valid, func(c *config.Config) { c.Listen.ReadHeaderTimeout = 0 }, "listen.read_header_timeout", "positive"},
		{"no idle timeout", valid, func(c *config.Config) { c.Listen.IdleTimeout = 0 }, "listen.idle_timeout", "positive"},
		{"negative body timeout", valid, func(c *config.Config) { c.Listen.BodyReadTimeout = -time.Second }, "listen.body_read_timeout", "negative"},
		{"tiny header limit", valid, func(c *config.Config) { c.Listen.MaxHeaderBytes = 100 }, "listen.max_header_bytes", "4K-1M"},
		{"huge header limit", valid, func(c *config.Config) { c.Listen.MaxHeaderBytes = 2 * config.MiB }, "listen.max_header_bytes", "4K-1M"},
		{"course id", valid, func(c *config.Config) { c.Notebook.CourseID = "my course" }, "notebook.course_id", "course id"},
		{"instructor invalid", valid, func(c *config.Config) { c.Notebook.InstructorUsers = []string{"a/b"} }, "notebook.instructor_users", "a/b"},
		{"storage backend", valid, func(c *config.Config) { c.Storage.Backend = "s3" }, "storage.backend", "hostpath, nfs"},
		{"storage mount relative", valid, func(c *config.Config) { c.Storage.Mount = "srv" }, "storage.mount", "absolute"},
		{"hostpath root required", valid, func(c *config.Config) { c.Storage.HostPath.Root = "" }, "storage.hostpath.root", "required"},
		{"nfs server required", valid, func(c *config.Config) {
			c.Storage.Backend, c.Storage.NFS.Export = "nfs", "/export"
		}, "storage.nfs.server", "required"},
		{"nfs export required", valid, func(c *config.Config) {
			c.Storage.Backend, c.Storage.NFS.Server = "nfs", "nfs.example.edu"
		}, "storage.nfs.export", "required"},
		{"nfs options with addr", valid, func(c *config.Config) { c.Storage.NFS.Options = "addr=1.2.3.4,rw" }, "storage.nfs.options", "addr="},
		{"nfs options with space", valid, func(c *config.Config) { c.Storage.NFS.Options = "rw, hard" }, "storage.nfs.options", "commas"},
		{"authenticator unknown", valid, func(c *config.Config) { c.Auth.Authenticator = "pam" }, "auth.authenticator", "ldap or dummy"},
		{"pattern does not compile", valid, func(c *config.Config) { c.Auth.UsernamePattern = "^[a-z$" }, "auth.username_pattern", "compile"},
		{"pattern not anchored", valid, func(c *config.Config) { c.Auth.UsernamePattern = "[a-z]+" }, "auth.username_pattern", "^"},
		{"admin invalid", valid, func(c *config.Config) { c.Auth.AdminUsers = []string{"two words"} }, "auth.admin_users", "two words"},
		{"allowed invalid", valid, func(c *config.Config) { c.Auth.AllowedUsers = []string{"ok", "-dash"} }, "auth.allowed_users", "-dash"},
		{"blocked invalid", valid, func(c *config.Config) { c.Auth.BlockedUsers = []string{""} }, "auth.blocked_users", "not a valid username"},
		{"map target invalid", valid, func(c *config.Config) { c.Auth.UsernameMap = map[string]string{"boninho": "Data 8"} }, "auth.username_map", "Data 8"},
		{"map empty source", valid, func(c *config.Config) { c.Auth.UsernameMap = map[string]string{" ": "data8"} }, "auth.username_map", "empty"},
		{"dummy password missing", valid, func(c *config.Config) { c.Auth.Dummy.Password = "" }, "auth.dummy.password", "password_file"},
		{"dummy password both", valid, func(c *config.Config) { c.Auth.Dummy.PasswordFile = "/run/secrets/x" }, "auth.dummy.password", "auth.dummy.password_file"},
		{"redis password both", valid, func(c *config.Config) { c.Redis.Password, c.Redis.PasswordFile = "a", "/f" }, "redis.password", "SWARMHUB_REDIS_PASSWORD_FILE"},
		{"regulation failures", valid, func(c *config.Config) { c.Auth.Regulation.MaxFailures = 0 }, "auth.regulation.max_failures", "at least 1"},
		{"account ceiling zero", valid, func(c *config.Config) { c.Auth.Regulation.AccountMaxFailures = 0 }, "auth.regulation.account_max_failures", "at least 1"},
		{"trusted proxy not a CIDR", valid, func(c *config.Config) { c.Listen.TrustedProxies = []string{"10.0.0.0/8", "proxy.example"} }, "listen.trusted_proxies", `"proxy.example"`},
		{"regulation window", valid, func(c *config.Config) { c.Auth.Regulation.Window = 0 }, "auth.regulation.window", "positive"},
		{"regulation ban", valid, func(c *config.Config) { c.Auth.Regulation.Ban = 0 }, "auth.regulation.ban", "positive"},
		{"ldap server required", validLDAP, func(c *config.Config) { c.Auth.LDAP.ServerAddress = "" }, "auth.ldap.server_address", "required"},
		{"ldap server with scheme", validLDAP, func(c *config.Config) { c.Auth.LDAP.ServerAddress = "ldaps://ldap.example.edu" }, "auth.ldap.server_address", "auth.ldap.tls"},
		{"ldap server with port", validLDAP, func(c *config.Config) { c.Auth.LDAP.ServerAddress = "ldap.example.edu:636" }, "auth.ldap.server_address", "server_port"},
		{"ldap port", validLDAP, func(c *config.Config) { c.Auth.LDAP.ServerPort = 99999 }, "auth.ldap.server_port", "1-65535"},
		{"ldap tls", validLDAP, func(c *config.Config) { c.Auth.LDAP.TLS = "ssl" }, "auth.ldap.tls", "ldaps, starttls, none"},
		{"ldap ca file missing", validLDAP, func(c *config.Config) { c.Auth.LDAP.CAFile = "/nonexistent/ca.pem" }, "auth.ldap.ca_file", "/nonexistent/ca.pem"},
		{"ldap no templates", validLDAP, func(c *config.Config) { c.Auth.LDAP.BindDNTemplates = nil }, "auth.ldap.bind_dn_templates", "lookup_dn"},
		{"ldap template without placeholder", validLDAP, func(c *config.Config) {
			c.Auth.LDAP.BindDNTemplates = []string{"uid=admin,dc=example,dc=edu"}
		}, "auth.ldap.bind_dn_templates", "{username}"},
		{"ldap template not a dn", validLDAP, func(c *config.Config) { c.Auth.LDAP.BindDNTemplates = []string{"{username}"} }, "auth.ldap.bind_dn_templates", "not a DN"},
		{"ldap template other placeholder", validLDAP, func(c *config.Config) {
			c.Auth.LDAP.BindDNTemplates = []string{"uid={username},ou={ou}"}
		}, "auth.ldap.bind_dn_templates", "{ou}"},
		{"lookup dn without base", validLDAP, func(c *config.Config) { c.Auth.LDAP.LookupDN = true }, "auth.ldap.user_search_base", "required"},
		{"lookup dn without attribute", validLDAP, func(c *config.Config) {
			c.Auth.LDAP.LookupDN, c.Auth.LDAP.UserSearchBase, c.Auth.LDAP.UserAttribute = true, "dc=x", ""
		}, "auth.ldap.user_attribute", "required"},
		{"user attribute invalid", validLDAP, func(c *config.Config) { c.Auth.LDAP.UserAttribute = "u id" }, "auth.ldap.user_attribute", "attribute"},
		{"username attribute invalid", validLDAP, func(c *config.Config) { c.Auth.LDAP.LookupDNUserDNAttribute = "(cn)" }, "auth.ldap.lookup_dn_user_dn_attribute", "attribute"},
		{"bind dn without password", validLDAP, func(c *config.Config) { c.Auth.LDAP.BindDN = "cn=svc,dc=x" }, "auth.ldap.bind_password", "unauthenticated bind"},
		{"bind password without dn", validLDAP, func(c *config.Config) { c.Auth.LDAP.BindPassword = "x" }, "auth.ldap.bind_dn", "required"},
		{"search filter", validLDAP, func(c *config.Config) { c.Auth.LDAP.SearchFilter = "objectClass=person" }, "auth.ldap.search_filter", "parentheses"},
		{"search filter unbalanced", validLDAP, func(c *config.Config) { c.Auth.LDAP.SearchFilter = "(&(a=b)" }, "auth.ldap.search_filter", "parentheses"},
		{"allowed group not a dn", validLDAP, func(c *config.Config) { c.Auth.LDAP.AllowedGroups = []string{"course101"} }, "auth.ldap.allowed_groups", "group DN"},
		{"groups without member attributes", validLDAP, func(c *config.Config) {
			c.Auth.LDAP.AllowedGroups, c.Auth.LDAP.GroupMemberAttributes = []string{"cn=g,dc=x"}, nil
		}, "auth.ldap.group_member_attributes", "required"},
		{"member attribute invalid", validLDAP, func(c *config.Config) { c.Auth.LDAP.GroupMemberAttributes = []string{"member;x"} }, "auth.ldap.group_member_attributes", "attribute"},
		{"ldap dial timeout", validLDAP, func(c *config.Config) { c.Auth.LDAP.DialTimeout = 0 }, "auth.ldap.dial_timeout", "positive"},
		{"ldap operation timeout", validLDAP, func(c *config.Config) { c.Auth.LDAP.OperationTimeout = -1 }, "auth.ldap.operation_timeout", "positive"},
		{"cookie name", valid, func(c *config.Config) { c.Session.CookieName = "a b" }, "session.cookie_name", "cookie name"},
		{"idle timeout", valid, func(c *config.Config) { c.Session.IdleTimeout = 0 }, "session.idle_timeout", "positive"},
		{"idle above lifetime", valid, func(c *config.Config) { c.Session.IdleTimeout = 200 * time.Hour }, "session.idle_timeout", "168h"},
		{"max lifetime", valid, func(c *config.Config) { c.Session.MaxLifetime = 0 }, "session.max_lifetime", "positive"},
		{"allowed origin with path", valid, func(c *config.Config) { c.Proxy.AllowedOrigins = []string{"https://lab.example.edu/x"} }, "proxy.allowed_origins[0]", "not an origin"},
		{"allowed origin without scheme", valid, func(c *config.Config) { c.Proxy.AllowedOrigins = []string{"lab.example.edu"} }, "proxy.allowed_origins[0]", "not an origin"},
		{"negative websocket cap", valid, func(c *config.Config) { c.Proxy.MaxWebsocketsPerUser = -1 }, "proxy.max_websockets_per_user", "out of range"},
		{"huge request cap", valid, func(c *config.Config) { c.Proxy.MaxRequestsPerUser = 1 << 31 }, "proxy.max_requests_per_user", "out of range"},
		{"cull schedule", valid, func(c *config.Config) { c.Lifecycle.Cull.Schedule = "every minute" }, "lifecycle.cull.schedule", "5 cron fields"},
		{"cull schedule six fields", valid, func(c *config.Config) { c.Lifecycle.Cull.Schedule = "0 * * * * *" }, "lifecycle.cull.schedule", "5 cron fields"},
		{"cull schedule empty", valid, func(c *config.Config) { c.Lifecycle.Cull.Schedule = "" }, "lifecycle.cull.schedule", "required"},
		{"cull timeout", valid, func(c *config.Config) { c.Lifecycle.Cull.Timeout = 0 }, "lifecycle.cull.timeout", "positive"},
		{"cull max age", valid, func(c *config.Config) { c.Lifecycle.Cull.MaxAge = -time.Hour }, "lifecycle.cull.max_age", "0s"},
		{"cull concurrency", valid, func(c *config.Config) { c.Lifecycle.Cull.Concurrency = 0 }, "lifecycle.cull.concurrency", "at least 1"},
		{"archive schedule", valid, func(c *config.Config) { c.Lifecycle.Archive.Schedule = "61 * * * *" }, "lifecycle.archive.schedule", "61"},
		{"archive concurrency", valid, func(c *config.Config) { c.Lifecycle.Archive.Concurrency = 0 }, "lifecycle.archive.concurrency", "at least 1"},
		{"archive keep", valid, func(c *config.Config) { c.Lifecycle.Archive.Keep = 0 }, "lifecycle.archive.keep", "at least 1"},
		{"archive exclude", valid, func(c *config.Config) { c.Lifecycle.Archive.Exclude = []string{"[.cache"} }, "lifecycle.archive.exclude", "glob"},
		{"archive max file size", valid, func(c *config.Config) { c.Lifecycle.Archive.MaxFileSize = -1 }, "lifecycle.archive.max_file_size", "negative"},
		{"archive max workspace size", valid, func(c *config.Config) { c.Lifecycle.Archive.MaxWorkspaceSize = -1 }, "lifecycle.archive.max_workspace_size", "negative"},
		{"archive max duration", valid, func(c *config.Config) { c.Lifecycle.Archive.MaxDuration = -time.Minute }, "lifecycle.archive.max_duration", "negative"},
		{"archive dir relative", valid, func(c *config.Config) { c.Lifecycle.Archive.Dir = "backups" }, "lifecycle.archive.dir", "absolute"},
		{"archive dir in users", valid, func(c *config.Config) { c.Lifecycle.Archive.Dir = "/srv/swarmhub/users/archives" }, "lifecycle.archive.dir", "students can write"},
		{"archive dir is the exchange", valid, func(c *config.Config) { c.Lifecycle.Archive.Dir = "/srv/swarmhub/exchange/" }, "lifecycle.archive.dir", "students can write"},
		{"archive timezone", valid, func(c *config.Config) { c.Lifecycle.Archive.Timezone = "Europe/Berlinn" }, "lifecycle.archive.timezone", `"Europe/Berlinn" is not a time zone`},
		{"archive timezone offset", valid, func(c *config.Config) { c.Lifecycle.Archive.Timezone = "+01:00" }, "lifecycle.archive.timezone", "IANA name such as Europe/Berlin"},
		{"redis snapshot schedule", valid, func(c *config.Config) { c.Lifecycle.Snapshot.Schedule = "" }, "lifecycle.redis_snapshot.schedule", "required"},
		{"redis snapshot keep", valid, func(c *config.Config) { c.Lifecycle.Snapshot.Keep = 0 }, "lifecycle.redis_snapshot.keep", "at least 1"},
		{"reconcile interval", valid, func(c *config.Config) { c.Lifecycle.Reconcile.Interval = 0 }, "lifecycle.reconcile.interval", "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.base()
			tt.mutate(&c)
			errs := fieldErrors(t, c.Validate())
			for _, e := range errs {
				if e.Key != tt.key {
					t.Errorf("unexpected error for another key: %v", e)
				} else if !strings.Contains(e.Msg, tt.msg) {
					t.Errorf("message %q does not mention %q", e.Msg, tt.msg)
				}
			}
			if !slices.Contains(errs.Keys(), tt.key) {
				t.Errorf("no error for %s; got:\n%v", tt.key, errs)
			}
		})
	}
}

func TestValidateAcceptsVariants(t *testing.T) {
	tests := []struct {
		name   string
		base   func() config.Config
		mutate func(c *config.Config)
	}{
		{"https with tls and redirect", valid, func(c *config.Config) {
			c.PublicURL = "https://hub.example.edu/"
			c.Listen.Port, c.Listen.RedirectPort = 443, 80
			c.TLS.CertFile, c.TLS.KeyFile = writeFile(t, "c.pem", "x"), writeFile(t, "k.pem", "x")
		}},
		{"no limits", valid, func(c *config.Config) { c.Notebook.MemLimit, c.Notebook.CPULimit = 0, 0 }},
		{"no hardening and no body timeout", valid, func(c *config.Config) {
			c.Notebook.PidsLimit, c.Notebook.NoNewPrivileges, c.Notebook.CapDrop = 0, false, nil
			c.Listen.BodyReadTimeout = 0
		}},
		{"every capability dropped, in any spelling", valid, func(c *config.Config) { c.Notebook.CapDrop = []string{"all", "cap_net_raw", "Mknod"} }},
		{"image in allowed list with digest", valid, func(c *config.Config) {
			c.Notebook.Image = "registry.example.edu:5000/course/notebook@sha256:" + strings.Repeat("a", 64)
			c.Notebook.AllowedImages = []string{c.Notebook.Image, "swarmhub/notebook-debian:latest"}
		}},
		{"jupyterhub-singleuser image", valid, func(c *config.Config) {
			c.Notebook.AllowedImages = []string{c.Notebook.Image, "swarmhub/notebook-singleuser:dev"}
			c.Notebook.ImageContracts = map[string]string{"swarmhub/notebook-singleuser:dev": "jupyterhub-singleuser", c.Notebook.Image: "token"}
			c.Notebook.HubURL = "http://swarmhub_orchestrator:8000/"
			c.Notebook.Env = map[string]string{"TZ": "Europe/Berlin"}
		}},
		{"JUPYTERHUB_ variables without a singleuser image", valid, func(c *config.Config) {
			c.Notebook.Env = map[string]string{"JUPYTERHUB_API_URL": "http://elsewhere"}
		}},
		{"nfs", valid, func(c *config.Config) {
			c.Storage.Backend, c.Storage.NFS.Server, c.Storage.NFS.Export, c.Storage.HostPath.Root = "nfs", "10.0.0.5", "/export/hub", ""
		}},
		{"sentinel", valid, func(c *config.Config) {
			c.Redis.Address, c.Redis.SentinelMaster, c.Redis.SentinelAddresses = "", "mymaster", []string{"s1:26379", "[::1]:26379"}
		}},
		{"users with upper case and a map", valid, func(c *config.Config) {
			c.Auth.AdminUsers = []string{"Data8", " boninho "}
			c.Auth.UsernameMap = map[string]string{"Boninho": "data8"}
			c.Auth.AllowedUsers = []string{"m.mahdavi", "student_1"}
		}},
		{"cron descriptors", valid, func(c *config.Config) {
			c.Lifecycle.Cull.Schedule, c.Lifecycle.Archive.Schedule = "@hourly", "CRON_TZ=Europe/Berlin 30 2 * * 1-5"
		}},
		{"ldap lookup dn with service account", validLDAP, func(c *config.Config) {
			l := &c.Auth.LDAP
			l.BindDNTemplates, l.LookupDN, l.UserSearchBase = nil, true, "ou=people,dc=example,dc=edu"
			l.UserAttribute, l.BindDN, l.BindPasswordFile = "sAMAccountName", "cn=svc,dc=example,dc=edu", "/run/secrets/bind"
			l.SearchFilter = `(&(objectClass=person)(!(cn=a\29b)))`
			l.AllowedGroups, l.TLS, l.ServerPort = []string{"cn=course,ou=groups,dc=example,dc=edu"}, "starttls", 3389
			l.CAFile = writeFile(t, "ca.pem", "x")
		}},
		{"ldap settings ignored with dummy", valid, func(c *config.Config) { c.Auth.LDAP.BindDNTemplates = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.base()
			tt.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestErrorsListEveryProblemOnItsOwnLine(t *testing.T) {
	c := valid()
	c.Listen.Port = 0
	c.Notebook.MemGuarantee = 4 * config.GiB
	c.Log.Level = "loud"
	err := c.Validate()
	want := "log.level: \"loud\" is not one of debug, info, warn, error\n" +
		"listen.port: 0 is not a port; use 1-65535\n" +
		"notebook.mem_guarantee: 4G is larger than notebook.mem_limit 2G; lower the guarantee or raise the limit"
	lines := strings.Split(err.Error(), "\n")
	for _, w := range strings.Split(want, "\n") {
		if !slices.Contains(lines, w) {
			t.Errorf("missing line %q in:\n%v", w, err)
		}
	}
	if len(lines) != 3 {
		t.Errorf("want 3 lines, got %d:\n%v", len(lines), err)
	}
}

func TestWarnings(t *testing.T) {
	c := validLDAP()
	c.Auth.LDAP.TLS = "none"
	c.Auth.AllowAll = true
	c.Auth.AdminUsers = []string{"Data8"}
	c.Auth.BlockedUsers = []string{"data8"}
	got := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"auth.ldap.tls is none", "auth.allow_all", "public_url is not set", `"Data8" is also in auth.blocked_users`} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if w := valid().Warnings(); !strings.Contains(strings.Join(w, "\n"), "dummy") {
		t.Errorf("dummy authenticator gives no warning: %v", w)
	}
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		want   string
	}{
		{"default", func(c *config.Config) {}, "http://localhost:8000"},
		{"explicit with slash", func(c *config.Config) { c.PublicURL = "https://hub.example.edu/" }, "https://hub.example.edu"},
		{"tls on 443", func(c *config.Config) { c.TLS.CertFile, c.Listen.Port = "c", 443 }, "https://localhost"},
		{"http on 80", func(c *config.Config) { c.Listen.Port = 80 }, "http://localhost"},
	}
	for _, tt := range tests {
		c := valid()
		tt.mutate(&c)
		if got := c.BaseURL(); got != tt.want {
			t.Errorf("%s: BaseURL() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLDAPPort(t *testing.T) {
	for _, tt := range []struct {
		tls  string
		port int
		want int
	}{{"ldaps", 0, 636}, {"starttls", 0, 389}, {"none", 0, 389}, {"ldaps", 1636, 1636}} {
		l := config.LDAP{TLS: tt.tls, ServerPort: tt.port}
		if got := l.Port(); got != tt.want {
			t.Errorf("tls %s port %d: Port() = %d, want %d", tt.tls, tt.port, got, tt.want)
		}
	}
}

func TestRedactedHidesSecretsAndCopies(t *testing.T) {
	c := valid()
	c.Redis.Password = "redis-secret"
	c.Auth.AdminUsers = []string{"data8"}
	r := c.Redacted()
	if r.Redis.Password == "redis-secret" || r.Auth.Dummy.Password == "dev-password" {
		t.Fatalf("secrets not redacted: %+v", r)
	}
	if r.Auth.LDAP.BindPassword != "" {
		t.Errorf("empty secret became %q; leave empty ones empty so the output says it is unset", r.Auth.LDAP.BindPassword)
	}
	r.Auth.AdminUsers[0] = "changed"
	if c.Auth.AdminUsers[0] != "data8" || c.Redis.Password != "redis-secret" {
		t.Errorf("Redacted changed the original: %+v", c.Auth.AdminUsers)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHubInternalURL(t *testing.T) {
	c := valid()
	if got, want := c.HubInternalURL(), "http://tasks.orchestrator:8000"; got != want {
		t.Errorf("default: %q, want %q", got, want)
	}
	c.Listen.Port = 9000
	c.TLS.CertFile, c.TLS.KeyFile = "c.pem", "k.pem"
	if got, want := c.HubInternalURL(), "https://tasks.orchestrator:9000"; got != want {
		t.Errorf("tls on port 9000: %q, want %q", got, want)
	}
	c.Notebook.HubURL = "http://hub.internal:8000/"
	if got, want := c.HubInternalURL(), "http://hub.internal:8000"; got != want {
		t.Errorf("set: %q, want %q", got, want)
	}
}
