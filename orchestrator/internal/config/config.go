// Package config turns one YAML file, SWARMHUB_* environment variables and
// *_FILE secrets into one typed, validated Config.
//
// The struct tags are the single source of truth: `yaml` names the key (and,
// upper-cased, its environment variable), `help` documents it, `secret` marks
// values that may also come from a file. Keys, the README table and the
// environment variable names are all derived from them by reflection.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/prestart"
)

// Config is the whole orchestrator configuration. Durations are
// time.Duration, memory sizes ByteSize (bytes), CPUs float64.
type Config struct {
	Instance  string    `yaml:"instance" help:"Value of the swarmhub.instance label on every service this orchestrator manages; give each hub on one swarm its own."`
	PublicURL string    `yaml:"public_url" help:"URL students use, e.g. https://hub.example.edu (scheme and host, no path). Empty: derived from listen.port and tls, i.e. http://localhost:8000."`
	Listen    Listen    `yaml:"listen"`
	TLS       TLS       `yaml:"tls"`
	Log       Log       `yaml:"log"`
	Redis     Redis     `yaml:"redis"`
	Docker    Docker    `yaml:"docker"`
	Notebook  Notebook  `yaml:"notebook"`
	Storage   Storage   `yaml:"storage"`
	Auth      Auth      `yaml:"auth"`
	Session   Session   `yaml:"session"`
	Proxy     Proxy     `yaml:"proxy"`
	Lifecycle Lifecycle `yaml:"lifecycle"`
	Services  []Service `yaml:"services" help:"API clients that are no users (JupyterHub's services), e.g. jupyterhub-idle-culler: a list of {name, api_token_file, scopes: [JupyterHub 5 scopes]}; each authenticates with the token in its file and may do what its scopes allow."`
}

// Service is one JupyterHub-style service: a token with scopes, owned by
// no user.
type Service struct {
	Name         string   `yaml:"name"`
	APITokenFile string   `yaml:"api_token_file"`
	Scopes       []string `yaml:"scopes"`
	// APIToken is read from APITokenFile by Load.
	APIToken string `yaml:"-"`
}

// Listen is where the orchestrator accepts HTTP(S).
type Listen struct {
	Address        string   `yaml:"address" help:"IP address (or host name) to listen on; 0.0.0.0 is every interface."`
	Port           int      `yaml:"port" help:"Port for the hub (HTTPS when tls is set, else HTTP)."`
	RedirectPort   int      `yaml:"redirect_port" help:"Extra plain-HTTP port that redirects to the HTTPS public URL; needs tls. 0 = off."`
	TrustedProxies []string `yaml:"trusted_proxies" help:"Addresses (CIDRs, e.g. 10.0.0.0/8, or single IPs) of reverse proxies in front of the hub whose X-Forwarded-For names the client for login regulation. Empty: the header is ignored and the direct peer counts."`
	// Limits of every request, against slow or oversized clients.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" help:"Time a client has to send a request's line and headers; slower connections are closed (slowloris)."`
	BodyReadTimeout   time.Duration `yaml:"body_read_timeout" help:"Time a client has to send the body of a hub request (login form, API JSON); slower ones fail. Proxied /user/ requests (uploads, websockets) are not bounded. 0 = no limit."`
	IdleTimeout       time.Duration `yaml:"idle_timeout" help:"Keep-alive connections idle this long are closed."`
	MaxHeaderBytes    ByteSize      `yaml:"max_header_bytes" help:"Largest request line plus headers (cookies included); larger requests get 431. Between 4K and 1M."`
}

// TLS is the certificate served directly by the orchestrator.
type TLS struct {
	CertFile string `yaml:"cert_file" help:"PEM certificate (chain) file. Set both cert_file and key_file to serve HTTPS, or neither for plain HTTP."`
	KeyFile  string `yaml:"key_file" help:"PEM private key file matching cert_file."`
}

// Log controls the orchestrator's own log output.
type Log struct {
	Level  string `yaml:"level" help:"debug, info, warn or error."`
	Format string `yaml:"format" help:"json or text."`
}

// Redis holds sessions, users, server records, locks and events.
type Redis struct {
	Address           string        `yaml:"address" help:"host:port of Redis (ignored when sentinel_addresses is set)."`
	Password          string        `yaml:"password" secret:"true" help:"Redis password (AUTH). Secret: prefer password_file."`
	PasswordFile      string        `yaml:"password_file" help:"File holding redis.password (e.g. a Docker secret under /run/secrets); trailing newline trimmed."`
	DB                int           `yaml:"db" help:"Redis database number."`
	KeyPrefix         string        `yaml:"key_prefix" help:"Prefix of every key swarmhub writes, so several hubs can share one Redis."`
	SentinelMaster    string        `yaml:"sentinel_master" help:"Sentinel master name; set together with sentinel_addresses to use Redis Sentinel."`
	SentinelAddresses []string      `yaml:"sentinel_addresses" help:"host:port of each Sentinel."`
	DialTimeout       time.Duration `yaml:"dial_timeout" help:"Timeout for connecting to Redis."`
}

// Docker is how the orchestrator reaches the swarm manager's engine.
type Docker struct {
	Host string `yaml:"host" help:"Docker API endpoint of a swarm manager (unix:// or tcp://)."`
}

// Notebook describes every user's Jupyter server.
type Notebook struct {
	Image                string            `yaml:"image" help:"Image of every user's server (replaces c.DockerSpawner.image)."`
	AllowedImages        []string          `yaml:"allowed_images" help:"Images admins may switch to at runtime; when non-empty it must contain image."`
	ImageContracts       map[string]string `yaml:"image_contracts" help:"How each image is started: image -> token (swarmhub's contract, the default for unlisted images) or jupyterhub-singleuser (the image runs jupyterhub-singleuser and gets JupyterHub's environment, as with DockerSpawner)."`
	HubURL               string            `yaml:"hub_url" help:"The hub as user servers reach it on notebook.network, for jupyterhub-singleuser images (their JUPYTERHUB_API_URL is this plus /hub/api). Empty: http://tasks.orchestrator:PORT with listen.port (https with tls): the task addresses of the orchestrator service in docker-stack.yml, which has a VIP that cannot route where IPVS is missing."`
	MemLimit             ByteSize          `yaml:"mem_limit" help:"Memory limit per server: bytes or a size like 512M, 2G, 1.5G (binary units). 0 = no limit. Replaces c.Spawner.mem_limit."`
	MemGuarantee         ByteSize          `yaml:"mem_guarantee" help:"Memory reserved per server (swarm reservation); at most mem_limit. Replaces c.Spawner.mem_guarantee."`
	CPULimit             float64           `yaml:"cpu_limit" help:"CPU limit per server in cores. 0 = no limit. Replaces c.Spawner.cpu_limit."`
	CPUGuarantee         float64           `yaml:"cpu_guarantee" help:"CPU cores reserved per server; at most cpu_limit. Replaces c.Spawner.cpu_guarantee."`
	PidsLimit            int               `yaml:"pids_limit" help:"Processes plus threads per server (a fork bomb stops here; numerical libraries start a thread per core of the node). 0 = no limit."`
	NoNewPrivileges      bool              `yaml:"no_new_privileges" help:"Servers run with no_new_privs: setuid programs in the image cannot raise privileges. Docker Engine 25 (API 1.44) and later apply it to services; older engines (20.10) ignore it, so swarmhub's images set it themselves (README.md, Container hardening)."`
	CapDrop              []string          `yaml:"cap_drop" help:"Capabilities removed from every server's container (NET_RAW or CAP_NET_RAW; ALL for every one). Images that start as root and switch to the user need SETUID, SETGID, CHOWN and DAC_OVERRIDE."`
	NotebookDir          string            `yaml:"notebook_dir" help:"Workspace path inside the server; the user's storage is mounted here."`
	ExchangeDir          string            `yaml:"exchange_dir" help:"nbgrader exchange path inside the server (must match Exchange.root in nbgrader_config.py)."`
	UserVolume           string            `yaml:"user_volume" help:"Name template of each user's workspace volume; must contain {username}."`
	ExchangeVolume       string            `yaml:"exchange_volume" help:"Name of the shared nbgrader exchange volume."`
	CourseData           CourseData        `yaml:"course_data"`
	ServiceName          string            `yaml:"service_name" help:"Name template of each user's swarm service; must contain {username}."`
	Network              string            `yaml:"network" help:"Attachable overlay network shared by the orchestrator and user servers."`
	PlacementConstraints []string          `yaml:"placement_constraints" help:"Swarm placement constraints for user servers, e.g. node.role==worker."`
	Prepull              bool              `yaml:"prepull" help:"Pull the current image on every node that may run a server before anyone needs it (a global job service INSTANCE-prepull, run again when the image changes or a node joins); the dashboard and GET /hub/api/image show each node's state."`
	PlacementPreferences []string          `yaml:"placement_preferences" help:"Swarm placement preferences, e.g. spread=node.id."`
	Env                  map[string]string `yaml:"env" help:"Extra environment variables for every server (replaces c.Spawner.environment)."`
	Port                 int               `yaml:"port" help:"Port the Jupyter server listens on inside its container."`
	StartTimeout         time.Duration     `yaml:"start_timeout" help:"How long a start may take until the server answers, before it fails (replaces c.Spawner.start_timeout)."`
	ConcurrentSpawnLimit int               `yaml:"concurrent_spawn_limit" help:"Starts in progress at once, across all replicas; beyond it users get 429 and retry."`
	StartsPerNode        int               `yaml:"starts_per_node" help:"Server starts in flight at once per node eligible for user servers, first come first served; the rest wait in line with their position shown. -1 = the node's CPU count, 0 = no bound (all at once)."`
	LineTimeout          time.Duration     `yaml:"line_timeout" help:"A student waiting in the start line whose page has not asked for their place for this long leaves the line."`
	CourseID             string            `yaml:"course_id" help:"nbgrader course id, given to servers as NBGRADER_COURSE_ID."`
	InstructorUsers      []string          `yaml:"instructor_users" help:"Users who get the nbgrader formgrader besides admins (admins are always instructors)."`
}

// CourseData is a directory every server sees, which only instructors can
// change.
type CourseData struct {
	Enabled   bool   `yaml:"enabled" help:"Mount course/ under the storage root into every server at mount_path: read-only for students (writing fails with 'Read-only file system'), writable for instructors (admins, the instructors group, notebook.instructor_users). Files appear in running servers at once; servers started before it was enabled get the mount at their next start."`
	MountPath string `yaml:"mount_path" help:"Where the course data appears inside every server."`
	Volume    string `yaml:"volume" help:"Name of the shared course data volume."`
}

// Storage is where workspaces, the exchange, course data and archives live.
type Storage struct {
	Backend  string   `yaml:"backend" help:"hostpath (a directory on every node) or nfs (Docker mounts an NFS export per user)."`
	Mount    string   `yaml:"mount" help:"Where this orchestrator sees the storage root; it creates users/NAME and archives/ there."`
	HostPath HostPath `yaml:"hostpath"`
	NFS      NFS      `yaml:"nfs"`
}

// HostPath is the hostpath storage backend.
type HostPath struct {
	Root string `yaml:"root" help:"The storage root as an absolute path on every node (a local disk or a shared filesystem mounted at the same path)."`
}

// NFS is the nfs storage backend.
type NFS struct {
	Server  string `yaml:"server" help:"NFS server host name or IP; required when backend is nfs."`
	Export  string `yaml:"export" help:"Exported path of the storage root on the server, e.g. /export/swarmhub; required when backend is nfs."`
	Options string `yaml:"options" help:"NFS mount options (addr= is added by swarmhub)."`
}

// Auth selects the authenticator and the admission policy.
type Auth struct {
	Authenticator   string            `yaml:"authenticator" help:"Required: ldap, or dummy (one shared password, development only). Replaces c.JupyterHub.authenticator_class."`
	AdminUsers      []string          `yaml:"admin_users" help:"Admins (seeded into Redis at every start). Replaces c.Authenticator.admin_users."`
	AllowedUsers    []string          `yaml:"allowed_users" help:"Users allowed to log in (seeded into Redis at every start; remove through the API). Replaces c.Authenticator.whitelist / allowed_users."`
	BlockedUsers    []string          `yaml:"blocked_users" help:"Users never allowed, even if admin or allowed. Replaces c.Authenticator.blocked_users."`
	AllowAll        bool              `yaml:"allow_all" help:"Admit every user the authenticator accepts. Off: only allowed users, allowed groups and admins."`
	UsernameMap     map[string]string `yaml:"username_map" help:"Login name -> account, e.g. several instructor ids -> one admin account. Replaces c.Authenticator.username_map."`
	UsernamePattern string            `yaml:"username_pattern" help:"Regular expression (anchored with ^ and $) every canonical username must match."`
	AdminAccess     bool              `yaml:"admin_access" help:"Admins may open other users' servers (each access is recorded). Replaces c.JupyterHub.admin_access."`
	Dummy           Dummy             `yaml:"dummy"`
	Regulation      Regulation        `yaml:"regulation"`
	LDAP            LDAP              `yaml:"ldap"`
}

// Dummy is the development authenticator: any name, one shared password.
type Dummy struct {
	Password     string `yaml:"password" secret:"true" help:"The shared password; required when authenticator is dummy. Secret: prefer password_file."`
	PasswordFile string `yaml:"password_file" help:"File holding auth.dummy.password (e.g. /run/secrets/dummy-password)."`
}

// Regulation limits failed logins per user and client address, per user and
// per client address.
type Regulation struct {
	MaxFailures        int           `yaml:"max_failures" help:"Failed logins for one user from one client address (IPv6: its /64) within window that ban that address for that user."`
	AccountMaxFailures int           `yaml:"account_max_failures" help:"Failed logins for one user from all addresses within window that ban the user everywhere (a guess spread over many addresses); a value below max_failures counts as max_failures, so configurations from before this key keep working."`
	Window             time.Duration `yaml:"window" help:"Time window in which failures are counted."`
	Ban                time.Duration `yaml:"ban" help:"How long logins are refused after too many failures, even with the right password."`
}

// LDAP configures the directory login (options as in LDAPAuthenticator).
type LDAP struct {
	ServerAddress           string        `yaml:"server_address" help:"Directory host name (no scheme); required for ldap. Replaces c.LDAPAuthenticator.server_address."`
	ServerPort              int           `yaml:"server_port" help:"Directory port; 0 = 636 for ldaps, else 389."`
	TLS                     string        `yaml:"tls" help:"ldaps, starttls or none (replaces use_ssl = True -> ldaps). Certificates are always verified."`
	CAFile                  string        `yaml:"ca_file" help:"PEM CA bundle to verify the directory's certificate; empty = system roots."`
	InsecureSkipVerify      bool          `yaml:"insecure_skip_verify" help:"Do not verify the directory's certificate. Dangerous; logged loudly at every start."`
	ServerName              string        `yaml:"server_name" help:"Host name expected in the directory's certificate; empty = server_address."`
	BindDNTemplates         []string      `yaml:"bind_dn_templates" help:"DNs tried in order to bind as the user, each with {username}. Replaces c.LDAPAuthenticator.bind_dn_template."`
	LookupDN                bool          `yaml:"lookup_dn" help:"Find the user's DN by searching user_search_base for user_attribute, then bind as it."`
	BindDN                  string        `yaml:"bind_dn" help:"Service account DN for lookup_dn and group searches; empty = anonymous search. Replaces lookup_dn_search_user."`
	BindPassword            string        `yaml:"bind_password" secret:"true" help:"Password of bind_dn. Secret: prefer bind_password_file. Replaces lookup_dn_search_password."`
	BindPasswordFile        string        `yaml:"bind_password_file" help:"File holding auth.ldap.bind_password."`
	UserSearchBase          string        `yaml:"user_search_base" help:"Base DN of the user search; required with lookup_dn."`
	UserAttribute           string        `yaml:"user_attribute" help:"Attribute holding the login name, e.g. uid or sAMAccountName."`
	SearchFilter            string        `yaml:"search_filter" help:"Extra LDAP filter ANDed into the user search, e.g. (objectClass=person)."`
	LookupDNUserDNAttribute string        `yaml:"lookup_dn_user_dn_attribute" help:"Take the canonical username from this attribute of the user's entry (e.g. cn); empty = the login name."`
	AllowedGroups           []string      `yaml:"allowed_groups" help:"Group DNs whose members are allowed (in addition to allowed_users)."`
	GroupSearchBase         string        `yaml:"group_search_base" help:"Base DN for group searches; empty = search each allowed group's own DN."`
	GroupMemberAttributes   []string      `yaml:"group_member_attributes" help:"Group attributes that list members (DN for member/uniqueMember, name for memberUid)."`
	DialTimeout             time.Duration `yaml:"dial_timeout" help:"Timeout for connecting to the directory (including TLS)."`
	OperationTimeout        time.Duration `yaml:"operation_timeout" help:"Timeout for each bind or search."`
}

// Session controls browser sessions.
type Session struct {
	CookieName  string        `yaml:"cookie_name" help:"Name of the hub's session cookie (Path=/hub/); servers' access cookies are named NAME-server (Path=/user/USER/). Under HTTPS both take the __Secure- prefix."`
	IdleTimeout time.Duration `yaml:"idle_timeout" help:"A session ends after this long without a request."`
	MaxLifetime time.Duration `yaml:"max_lifetime" help:"A session ends this long after login regardless of use (replaces c.JupyterHub.cookie_max_age_days; 168h = 7 days)."`
}

// Proxy guards the /user/ reverse proxy.
type Proxy struct {
	AllowedOrigins       []string `yaml:"allowed_origins" help:"Origins (scheme://host[:port]) besides the hub's own (public_url, or the address a request was sent to) whose pages may open websockets to and send POST/PUT/PATCH/DELETE to /user/NAME/; any other Origin, and Sec-Fetch-Site cross-site or same-site, is refused (403)."`
	MaxWebsocketsPerUser int      `yaml:"max_websockets_per_user" help:"Proxied websockets (kernels, terminals) one user may hold open on one replica; beyond it 429. 0 = no cap."`
	MaxRequestsPerUser   int      `yaml:"max_requests_per_user" help:"Proxied HTTP requests of one user in flight at once on one replica; beyond it 429. 0 = no cap."`
	Lane                 bool     `yaml:"lane" help:"On plain HTTP, forward GET and HEAD requests to /user/ on each client connection's own goroutine over one kept connection to the server (about 0.8 of direct at one connection instead of 0.65); every other request takes net/http's path, as all do with false or behind tls.cert_file."`
}

// Lifecycle holds the scheduled jobs.
type Lifecycle struct {
	Cull      Cull                `yaml:"cull"`
	Archive   Archive             `yaml:"archive"`
	Snapshot  Snapshot            `yaml:"redis_snapshot"`
	Reconcile Reconcile           `yaml:"reconcile"`
	DiskUsage DiskUsage           `yaml:"disk_usage"`
	Prestart  []prestart.Schedule `yaml:"prestart" help:"Servers started ahead of lectures: a list of {name, cron (lecture starts, e.g. '15 10 * * 1') or times (['2026-12-07 10:15']), group (empty = every allowed user), lead (default 30m before), rate_per_minute (default 30), grace (the culler spares them until this long after the lecture begins, default 30m)}. Seeded at every start; also edited from the dashboard and /hub/api/prestarts."`
}

// Cull stops idle servers (replaces the cull-idle service).
type Cull struct {
	Enabled              bool          `yaml:"enabled" help:"Stop idle servers (replaces the cull-idle service)."`
	Schedule             string        `yaml:"schedule" help:"When to look for idle servers: cron (5 fields) or @every 1m style."`
	Timeout              time.Duration `yaml:"timeout" help:"Stop a server idle for longer than this (cull-idle --timeout)."`
	MaxAge               time.Duration `yaml:"max_age" help:"Stop servers older than this even if active (cull-idle --max-age). 0s = off."`
	CullAdmins           bool          `yaml:"cull_admins" help:"Cull admins' servers too."`
	BusyKernelsAreActive bool          `yaml:"busy_kernels_are_active" help:"A kernel that is busy (running code), or that Jupyter still reports as starting, counts as activity."`
	Concurrency          int           `yaml:"concurrency" help:"Servers stopped in parallel."`
}

// Archive writes every workspace to archives/DATE/NAME.tar.gz.
type Archive struct {
	Enabled     bool     `yaml:"enabled" help:"Archive every workspace on schedule (replaces zip -r volumes.zip ... by hand)."`
	Schedule    string   `yaml:"schedule" help:"When to archive: cron (5 fields, e.g. 0 3 * * * = 03:00 daily) or @daily style."`
	Concurrency int      `yaml:"concurrency" help:"Workspaces archived in parallel."`
	Keep        int      `yaml:"keep" help:"Archive runs kept; older runs are deleted."`
	Dir         string   `yaml:"dir" help:"Where archives and Redis snapshots are written: an absolute path, best another mount than the storage root (a second disk or NFS export). Empty = archives/ under storage.mount."`
	Timezone    string   `yaml:"timezone" help:"IANA time zone (e.g. Europe/Berlin) the lifecycle schedules (archive, Redis snapshots, cull, pre-start crons) are read in, so 0 3 * * * means 03:00 there. Empty = the machine's local zone (a container's is usually UTC unless TZ is set)."`
	Exclude     []string `yaml:"exclude" help:"Glob patterns of files and directories left out (matched against each name)."`
	// The limits below also apply to a student's workspace download.
	MaxFileSize      ByteSize      `yaml:"max_file_size" help:"Files with a larger apparent size are left out of archives and workspace downloads (logged, event archive-limit). Sparse files with more than 1G of holes, over half their size, are always left out. 0 = no limit."`
	MaxWorkspaceSize ByteSize      `yaml:"max_workspace_size" help:"File content archived (or downloaded) per workspace; files that would go past it are left out (logged, event archive-limit). 0 = no limit."`
	MaxDuration      time.Duration `yaml:"max_duration" help:"Time one workspace's archive (or download) may take; then it is cut: the file being read ends in zeros, later files are left out (logged, event archive-limit). 0s = no limit."`
}

// DiskUsage measures every workspace in the background.
type DiskUsage struct {
	Interval  time.Duration `yaml:"interval" help:"How often every workspace's size is measured (in the background; shown on the student's home page, the dashboard and in /hub/metrics). 0s = never."`
	SoftLimit ByteSize      `yaml:"soft_limit" help:"A workspace larger than this warns its student on the home page and writes a disk-usage event (0 = no limit). Nothing is refused: it is a nudge, not a quota."`
}

// Snapshot dumps swarmhub's Redis keys to the archive directory.
type Snapshot struct {
	Enabled  bool   `yaml:"enabled" help:"Write a snapshot of every Redis key under redis.key_prefix (users, tokens, groups, events, ...) to redis/ in the archive directory; scripts/restore-redis restores one."`
	Schedule string `yaml:"schedule" help:"When to snapshot Redis: cron (5 fields) or @hourly style."`
	Keep     int    `yaml:"keep" help:"Redis snapshots kept; older ones are deleted."`
}

// Location is the zone of the lifecycle schedules: Timezone, or the
// machine's local zone when it is empty.
func (a Archive) Location() (*time.Location, error) {
	if a.Timezone == "" {
		return time.Local, nil
	}
	return time.LoadLocation(a.Timezone)
}

// Reconcile aligns Redis records with what runs on the swarm.
type Reconcile struct {
	Interval time.Duration `yaml:"interval" help:"How often records are reconciled with the swarm (also at startup)."`
}

// Default returns the configuration used for every key the file and the
// environment leave unset. Its Auth.Authenticator is empty and therefore
// invalid: the operator must choose one.
func Default() Config {
	return Config{
		Instance: "swarmhub",
		Listen: Listen{
			Address: "0.0.0.0", Port: 8000,
			ReadHeaderTimeout: 10 * time.Second, BodyReadTimeout: 30 * time.Second,
			IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 * KiB,
		},
		Log: Log{Level: "info", Format: "json"},
		Redis: Redis{
			Address:     "redis:6379",
			KeyPrefix:   "swarmhub:",
			DialTimeout: 5 * time.Second,
		},
		Docker: Docker{Host: "unix:///var/run/docker.sock"},
		Notebook: Notebook{
			Image:                "swarmhub/notebook:latest",
			MemLimit:             2 * GiB,
			MemGuarantee:         512 * MiB,
			CPULimit:             1.0,
			CPUGuarantee:         0.25,
			PidsLimit:            2048,
			NoNewPrivileges:      true,
			CapDrop:              []string{"NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT"},
			NotebookDir:          "/home/jovyan",
			ExchangeDir:          "/home/jovyan/.exchange",
			UserVolume:           "jupyterhub-user-{username}",
			ExchangeVolume:       "exchange",
			CourseData:           CourseData{MountPath: "/home/jovyan/course", Volume: "course"},
			ServiceName:          "jupyter-{username}",
			Network:              "swarmhub-users",
			Port:                 8888,
			StartTimeout:         120 * time.Second,
			ConcurrentSpawnLimit: 20,
			Prepull:              true,
			StartsPerNode:        -1,
			LineTimeout:          time.Minute,
			CourseID:             "course101",
		},
		Storage: Storage{
			Backend:  "hostpath",
			Mount:    "/srv/swarmhub",
			HostPath: HostPath{Root: "/srv/swarmhub"},
			NFS:      NFS{Options: "nfsvers=4.1,rw,hard,timeo=600"},
		},
		Auth: Auth{
			UsernamePattern: `^[a-z0-9][a-z0-9._-]{0,31}$`,
			Regulation:      Regulation{MaxFailures: 3, AccountMaxFailures: 10, Window: 2 * time.Minute, Ban: 5 * time.Minute},
			LDAP: LDAP{
				TLS:                   "ldaps",
				UserAttribute:         "uid",
				GroupMemberAttributes: []string{"member", "uniqueMember", "memberUid"},
				DialTimeout:           5 * time.Second,
				OperationTimeout:      10 * time.Second,
			},
		},
		Session: Session{CookieName: "swarmhub-session", IdleTimeout: 8 * time.Hour, MaxLifetime: 168 * time.Hour},
		Proxy:   Proxy{MaxWebsocketsPerUser: 64, MaxRequestsPerUser: 128, Lane: true},
		Lifecycle: Lifecycle{
			Cull: Cull{
				Enabled: true, Schedule: "@every 1m", Timeout: 15 * time.Minute,
				CullAdmins: true, BusyKernelsAreActive: true, Concurrency: 10,
			},
			Archive: Archive{Enabled: true, Schedule: "0 3 * * *", Concurrency: 2, Keep: 7, Exclude: []string{".cache"},
				MaxFileSize: 64 * GiB, MaxWorkspaceSize: 256 * GiB, MaxDuration: 2 * time.Hour},
			Snapshot:  Snapshot{Enabled: true, Schedule: "0 * * * *", Keep: 48},
			Reconcile: Reconcile{Interval: 30 * time.Second},
			DiskUsage: DiskUsage{Interval: 15 * time.Minute},
		},
	}
}

// TLSEnabled reports whether the orchestrator serves HTTPS itself.
func (c Config) TLSEnabled() bool { return c.TLS.CertFile != "" || c.TLS.KeyFile != "" }

// TrustedPrefixes is listen.trusted_proxies parsed; Validate has refused
// entries that do not parse.
func (l Listen) TrustedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(l.TrustedProxies))
	for _, s := range l.TrustedProxies {
		if p, err := ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ParsePrefix reads a CIDR or a single IP address (as its /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// BaseURL is public_url without a trailing slash, or, when public_url is
// empty, http(s)://localhost[:listen.port].
func (c Config) BaseURL() string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	scheme, std := "http", 80
	if c.TLSEnabled() {
		scheme, std = "https", 443
	}
	host := "localhost"
	if c.Listen.Port != std {
		host = net.JoinHostPort(host, strconv.Itoa(c.Listen.Port))
	}
	return (&url.URL{Scheme: scheme, Host: host}).String()
}

// HubInternalURL is notebook.hub_url without a trailing slash, or, when it
// is empty, the orchestrator's service name in docker-stack.yml with
// listen.port.
func (c Config) HubInternalURL() string {
	if c.Notebook.HubURL != "" {
		return strings.TrimSuffix(c.Notebook.HubURL, "/")
	}
	scheme := "http"
	if c.TLSEnabled() {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort("tasks.orchestrator", strconv.Itoa(c.Listen.Port))}).String()
}

// Start contracts of notebook.image_contracts.
const (
	ContractToken      = "token"
	ContractSingleUser = "jupyterhub-singleuser"
)

// Port is the directory port, applying the 636/389 default for port 0.
func (l LDAP) Port() int {
	if l.ServerPort != 0 {
		return l.ServerPort
	}
	if l.TLS == "ldaps" {
		return 636
	}
	return 389
}

// Warnings lists settings that are valid but risky, for logging at start.
func (c Config) Warnings() []string {
	var w []string
	if c.Auth.Authenticator == "dummy" {
		w = append(w, "auth.authenticator is dummy: anyone who knows the one shared password can log in as any user; use it for development only")
	}
	if c.Auth.Authenticator == "ldap" {
		if c.Auth.LDAP.TLS == "none" {
			w = append(w, "auth.ldap.tls is none: passwords travel to the directory unencrypted; use ldaps or starttls")
		}
		if c.Auth.LDAP.InsecureSkipVerify && c.Auth.LDAP.TLS != "none" {
			w = append(w, "auth.ldap.insecure_skip_verify is true: the directory's certificate is NOT verified, so anyone on the network path can read passwords; set ca_file instead")
		}
	}
	if c.Auth.AllowAll {
		w = append(w, "auth.allow_all is true: every user the authenticator accepts may log in and start a server")
	}
	if c.PublicURL == "" {
		w = append(w, fmt.Sprintf("public_url is not set; links and redirects use %s", c.BaseURL()))
	}
	blocked := map[string]bool{}
	for _, u := range c.Auth.BlockedUsers {
		blocked[identity.Fold(u)] = true
	}
	for _, u := range c.Auth.AdminUsers {
		if blocked[identity.Fold(u)] {
			w = append(w, fmt.Sprintf("auth.admin_users: %q is also in auth.blocked_users and will be refused", u))
		}
	}
	return w
}

// Redacted returns a copy with every secret replaced, safe to log or print.
func (c Config) Redacted() Config {
	out := c
	v := reflect.ValueOf(&out).Elem()
	for _, f := range leafFields() {
		if f.secret {
			fv := v.FieldByIndex(f.index)
			if fv.String() != "" {
				fv.SetString("REDACTED")
			}
		}
	}
	// Slices and maps share backing storage with c; copy them so a caller
	// editing the redacted copy cannot change the original.
	for _, f := range leafFields() {
		fv := v.FieldByIndex(f.index)
		switch fv.Kind() {
		case reflect.Slice:
			if !fv.IsNil() {
				fv.Set(reflect.AppendSlice(reflect.MakeSlice(fv.Type(), 0, fv.Len()), fv))
			}
		case reflect.Map:
			if !fv.IsNil() {
				m := reflect.MakeMapWithSize(fv.Type(), fv.Len())
				for _, k := range fv.MapKeys() {
					m.SetMapIndex(k, fv.MapIndex(k))
				}
				fv.Set(m)
			}
		}
	}
	return out
}
