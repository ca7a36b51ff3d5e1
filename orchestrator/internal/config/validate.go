package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/prestart"
	"github.com/swarmhub/swarmhub/orchestrator/internal/scopes"
)

// FieldError is one problem with one key; Key is the dotted YAML path
// (e.g. "notebook.mem_limit"), empty when the file as a whole is unreadable.
type FieldError struct {
	Key string
	Msg string
}

func (e FieldError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// Errors is every problem found, in file order, then environment, then
// validation. Error() prints one "key: message" per line.
type Errors []FieldError

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Keys lists the keys that have problems, for tests and tools.
func (e Errors) Keys() []string {
	out := make([]string, len(e))
	for i, fe := range e {
		out[i] = fe.Key
	}
	return out
}

var (
	instanceRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	hostnameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$`)
	volumeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]+$`)
	serviceRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	networkRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	envKeyRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	attrRE       = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)$`)
	cookieRE     = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	courseRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	placeholder  = regexp.MustCompile(`\{[^{}]*\}`)
	constraintRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+\s*(==|!=)\s*\S.*$`)
	preferenceRE = regexp.MustCompile(`^spread=\S+$`)
	capabilityRE = regexp.MustCompile(`^(?i:ALL|(CAP_)?[A-Z][A-Z0-9_]*)$`)
	// A Docker image reference: [registry[:port]/]path[:tag][@digest], the
	// path in lower case (docker/distribution's reference grammar, simplified).
	imageRE = regexp.MustCompile(`^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`)
)

// reservedEnv are set by the spawner (the server start contract), so
// notebook.env must not override them.
var reservedEnv = map[string]bool{
	"JUPYTERHUB_USER": true, "JUPYTER_TOKEN": true, "NOTEBOOK_DIR": true, "NBGRADER_COURSE_ID": true,
}

// minMemLimit is Docker's smallest accepted memory limit.
const minMemLimit = 6 * MiB

type checker struct{ errs Errors }

func (v *checker) add(key, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks every key and returns *Errors listing all problems, or nil.
func (c *Config) Validate() error {
	v := &checker{}
	v.general(c)
	v.notebook(&c.Notebook)
	v.storage(&c.Storage)
	v.auth(&c.Auth, c.Notebook.InstructorUsers)
	v.secrets(c)
	v.session(&c.Session)
	v.proxy(&c.Proxy)
	v.lifecycle(&c.Lifecycle, c.Storage.Mount)
	v.courseData(c)
	v.services(c.Services)
	if len(v.errs) == 0 {
		return nil
	}
	errs := v.errs
	return &errs
}

func (v *checker) general(c *Config) {
	if !instanceRE.MatchString(c.Instance) {
		v.add("instance", "%q is not a valid label value; use letters, digits, '.', '_' or '-' (at most 63), e.g. swarmhub", c.Instance)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.add("public_url", "%q is not an absolute http(s) URL; write it like https://hub.example.edu", c.PublicURL)
		case u.Path != "" && u.Path != "/":
			v.add("public_url", "%q has a path; swarmhub serves /hub/ and /user/ at the root of its host, so give only scheme and host", c.PublicURL)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
			v.add("public_url", "%q may hold only scheme, host and port (no user, query or fragment)", c.PublicURL)
		}
	}
	switch a := c.Listen.Address; {
	case a == "":
		v.add("listen.address", "required: the IP address to listen on, e.g. 0.0.0.0 for every interface")
	case net.ParseIP(a) == nil && !hostnameRE.MatchString(a):
		v.add("listen.address", "%q is not an IP address or host name (no port here: set listen.port)", a)
	}
	v.port("listen.port", c.Listen.Port)
	if p := c.Listen.RedirectPort; p != 0 {
		v.port("listen.redirect_port", p)
		if p == c.Listen.Port {
			v.add("listen.redirect_port", "%d is also listen.port; choose another port (usually 80) or 0 for no redirect", p)
		}
		if !c.TLSEnabled() {
			v.add("listen.redirect_port", "redirects plain HTTP to HTTPS, which needs tls.cert_file and tls.key_file; set them or set redirect_port to 0")
		}
	}
	for _, p := range c.Listen.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			v.add("listen.trusted_proxies", "%q is not a CIDR (10.0.0.0/8) or an IP address", p)
		}
	}
	v.positive("listen.read_header_timeout", c.Listen.ReadHeaderTimeout)
	v.positive("listen.idle_timeout", c.Listen.IdleTimeout)
	if c.Listen.BodyReadTimeout < 0 {
		v.add("listen.body_read_timeout", "%s is negative; use 0s for no limit, or a duration such as 30s", fmtDuration(c.Listen.BodyReadTimeout))
	}
	if b := c.Listen.MaxHeaderBytes; b < 4*KiB || b > MiB {
		v.add("listen.max_header_bytes", "%d bytes is outside 4K-1M; browsers need a few KiB for cookies, e.g. 32K", int64(b))
	}
	switch {
	case c.TLS.CertFile != "" && c.TLS.KeyFile == "":
		v.add("tls.key_file", "required when tls.cert_file is set: set both to serve HTTPS, or neither for plain HTTP")
	case c.TLS.KeyFile != "" && c.TLS.CertFile == "":
		v.add("tls.cert_file", "required when tls.key_file is set: set both to serve HTTPS, or neither for plain HTTP")
	}
	v.file("tls.cert_file", c.TLS.CertFile)
	v.file("tls.key_file", c.TLS.KeyFile)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "text")

	r := c.Redis
	if len(r.SentinelAddresses) == 0 {
		v.hostPort("redis.address", r.Address)
		if r.SentinelMaster != "" {
			v.add("redis.sentinel_addresses", "required when redis.sentinel_master is set: list the Sentinels as host:port")
		}
	} else {
		for _, a := range r.SentinelAddresses {
			v.hostPort("redis.sentinel_addresses", a)
		}
		if r.SentinelMaster == "" {
			v.add("redis.sentinel_master", "required when redis.sentinel_addresses is set: the master name the Sentinels watch (often mymaster)")
		}
	}
	if r.DB < 0 {
		v.add("redis.db", "%d is negative; Redis databases are numbered from 0", r.DB)
	}
	if r.KeyPrefix == "" || strings.ContainsAny(r.KeyPrefix, " \t\r\n") {
		v.add("redis.key_prefix", "%q must be non-empty without spaces, e.g. swarmhub:", r.KeyPrefix)
	}
	v.positive("redis.dial_timeout", r.DialTimeout)

	if u, err := url.Parse(c.Docker.Host); err != nil || c.Docker.Host == "" {
		v.add("docker.host", "%q is not a Docker endpoint; use unix:///var/run/docker.sock or tcp://HOST:2376", c.Docker.Host)
	} else {
		switch u.Scheme {
		case "unix", "npipe":
			if u.Path == "" {
				v.add("docker.host", "%q names no socket path; use e.g. unix:///var/run/docker.sock", c.Docker.Host)
			}
		case "tcp", "http", "https", "ssh":
			if u.Host == "" {
				v.add("docker.host", "%q names no host; use e.g. tcp://manager1:2376", c.Docker.Host)
			}
		default:
			v.add("docker.host", "%q: scheme must be unix, tcp, http, https, ssh or npipe", c.Docker.Host)
		}
	}
}

func (v *checker) notebook(n *Notebook) {
	switch {
	case n.Image == "":
		v.add("notebook.image", "required: the image every user's server runs, e.g. swarmhub/notebook:latest")
	case !imageRE.MatchString(n.Image):
		v.add("notebook.image", "%q is not a Docker image reference (repository in lower case, e.g. registry.example.edu/course/notebook:2024)", n.Image)
	}
	found := false
	for _, img := range n.AllowedImages {
		if !imageRE.MatchString(img) {
			v.add("notebook.allowed_images", "%q is not a Docker image reference (repository in lower case, e.g. registry.example.edu/course/notebook:2024)", img)
		}
		found = found || img == n.Image
	}
	if len(n.AllowedImages) > 0 && !found && n.Image != "" {
		v.add("notebook.allowed_images", "does not contain notebook.image %q; add it, so admins can always switch back to the default image", n.Image)
	}
	singleUser := false
	for _, img := range sortedKeys(n.ImageContracts) {
		switch c := n.ImageContracts[img]; c {
		case ContractToken:
		case ContractSingleUser:
			singleUser = true
		default:
			v.add("notebook.image_contracts", "%s: contract %q is unknown; use %s or %s", img, c, ContractToken, ContractSingleUser)
		}
		if img != n.Image && !slices.Contains(n.AllowedImages, img) {
			v.add("notebook.image_contracts", "%q is neither notebook.image nor in notebook.allowed_images, so no server would use it; check its spelling", img)
		}
	}
	if n.HubURL != "" {
		u, err := url.Parse(n.HubURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.add("notebook.hub_url", "%q is not an absolute http(s) URL; write it like http://orchestrator:8000", n.HubURL)
		case (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "":
			v.add("notebook.hub_url", "%q may hold only scheme, host and port; servers add /hub/api themselves", n.HubURL)
		}
	}

	if n.MemLimit < 0 {
		v.add("notebook.mem_limit", "%d is negative; use a size like 2G, or 0 for no limit", n.MemLimit)
	} else if n.MemLimit > 0 && n.MemLimit < minMemLimit {
		v.add("notebook.mem_limit", "%s is below Docker's minimum of 6M; raise it (e.g. 2G) or use 0 for no limit", n.MemLimit)
	}
	if n.MemGuarantee < 0 {
		v.add("notebook.mem_guarantee", "%d is negative; use a size like 512M, or 0 for no reservation", n.MemGuarantee)
	} else if n.MemLimit > 0 && n.MemGuarantee > n.MemLimit {
		v.add("notebook.mem_guarantee", "%s is larger than notebook.mem_limit %s; lower the guarantee or raise the limit", n.MemGuarantee, n.MemLimit)
	}
	cpus := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	if n.CPULimit < 0 || (n.CPULimit > 0 && n.CPULimit < 0.01) {
		v.add("notebook.cpu_limit", "%s is not a CPU count; use at least 0.01 cores (e.g. 1 or 0.5), or 0 for no limit", cpus(n.CPULimit))
	}
	if n.CPUGuarantee < 0 {
		v.add("notebook.cpu_guarantee", "%s is negative; use a share of cores such as 0.25, or 0 for no reservation", cpus(n.CPUGuarantee))
	} else if n.CPULimit > 0 && n.CPUGuarantee > n.CPULimit {
		v.add("notebook.cpu_guarantee", "%s is larger than notebook.cpu_limit %s; lower the guarantee or raise the limit", cpus(n.CPUGuarantee), cpus(n.CPULimit))
	}
	v.absPath("notebook.notebook_dir", n.NotebookDir, true)
	v.absPath("notebook.exchange_dir", n.ExchangeDir, true)
	if n.ExchangeDir != "" && path.Clean(n.ExchangeDir) == path.Clean(n.NotebookDir) {
		v.add("notebook.exchange_dir", "%q is also notebook.notebook_dir; mount the exchange elsewhere, e.g. /home/jovyan/.exchange", n.ExchangeDir)
	}
	v.template("notebook.user_volume", n.UserVolume, func(s string) bool { return volumeNameRE.MatchString(s) && len(s) <= 255 },
		"letters, digits, '_', '.' or '-'")
	if !volumeNameRE.MatchString(n.ExchangeVolume) {
		v.add("notebook.exchange_volume", "%q is not a Docker volume name; use at least two letters, digits, '_', '.' or '-', e.g. exchange", n.ExchangeVolume)
	}
	v.template("notebook.service_name", n.ServiceName, func(s string) bool { return serviceRE.MatchString(s) },
		"letters, digits and '-', at most 63 characters (leave room for the name)")
	if !networkRE.MatchString(n.Network) {
		v.add("notebook.network", "%q is not a Docker network name; use letters, digits, '_', '.' or '-', e.g. swarmhub-users", n.Network)
	}
	for _, pc := range n.PlacementConstraints {
		if !constraintRE.MatchString(strings.TrimSpace(pc)) {
			v.add("notebook.placement_constraints", "%q is not a swarm constraint; write ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE, e.g. node.role==worker", pc)
		}
	}
	for _, pp := range n.PlacementPreferences {
		if !preferenceRE.MatchString(strings.TrimSpace(pp)) {
			v.add("notebook.placement_preferences", "%q is not a swarm placement preference; write spread=DESCRIPTOR, e.g. spread=node.labels.zone", pp)
		}
	}
	for _, k := range sortedKeys(n.Env) {
		switch {
		case !envKeyRE.MatchString(k):
			v.add("notebook.env", "%q is not a valid environment variable name (letters, digits, '_', not starting with a digit)", k)
		case reservedEnv[k] || strings.HasPrefix(k, "SWARMHUB_"):
			v.add("notebook.env", "%s is set by swarmhub itself for every server; remove it here", k)
		case singleUser && (strings.HasPrefix(k, "JUPYTERHUB_") || k == "JPY_API_TOKEN"):
			v.add("notebook.env", "%s is set by swarmhub for jupyterhub-singleuser images (notebook.image_contracts); remove it here", k)
		}
	}
	v.port("notebook.port", n.Port)
	v.positive("notebook.start_timeout", n.StartTimeout)
	if n.PidsLimit < 0 {
		v.add("notebook.pids_limit", "%d is negative; use 0 for no limit, or e.g. 2048", n.PidsLimit)
	}
	for _, c := range n.CapDrop {
		if !capabilityRE.MatchString(c) {
			v.add("notebook.cap_drop", "%q is not a capability name; write e.g. NET_RAW, CAP_MKNOD or ALL", c)
		}
	}
	if n.ConcurrentSpawnLimit < 1 {
		v.add("notebook.concurrent_spawn_limit", "%d must be at least 1 (starts allowed at the same time)", n.ConcurrentSpawnLimit)
	}
	if n.StartsPerNode < -1 {
		v.add("notebook.starts_per_node", "%d must be -1 (each node's CPU count), 0 (no bound) or a positive number", n.StartsPerNode)
	}
	v.positive("notebook.line_timeout", n.LineTimeout)
	if !courseRE.MatchString(n.CourseID) {
		v.add("notebook.course_id", "%q is not a valid nbgrader course id; use letters, digits, '_', '.' or '-', e.g. ds1edp_ws19", n.CourseID)
	}
}

func (v *checker) storage(s *Storage) {
	v.oneOf("storage.backend", s.Backend, "hostpath", "nfs")
	v.absPath("storage.mount", s.Mount, true)
	v.absPath("storage.hostpath.root", s.HostPath.Root, s.Backend == "hostpath")
	if s.Backend == "nfs" {
		switch {
		case s.NFS.Server == "":
			v.add("storage.nfs.server", "required when storage.backend is nfs: the NFS server's host name or IP")
		case net.ParseIP(s.NFS.Server) == nil && !hostnameRE.MatchString(s.NFS.Server):
			v.add("storage.nfs.server", "%q is not a host name or IP address", s.NFS.Server)
		}
		v.absPath("storage.nfs.export", s.NFS.Export, true)
	}
	if strings.ContainsAny(s.NFS.Options, " \t\r\n") {
		v.add("storage.nfs.options", "%q contains spaces; separate options with commas, e.g. nfsvers=4.1,rw,hard", s.NFS.Options)
	}
	for _, o := range strings.Split(s.NFS.Options, ",") {
		if strings.HasPrefix(strings.TrimSpace(o), "addr=") {
			v.add("storage.nfs.options", "remove %q: swarmhub sets addr= from storage.nfs.server", o)
		}
	}
}

func (v *checker) auth(a *Auth, instructors []string) {
	switch a.Authenticator {
	case "ldap", "dummy":
	case "":
		v.add("auth.authenticator", "required: ldap to log in against a directory, or dummy (one shared password) for development")
	default:
		v.add("auth.authenticator", "%q is not known; use ldap or dummy", a.Authenticator)
	}

	pattern, err := regexp.Compile(a.UsernamePattern)
	switch {
	case err != nil:
		v.add("auth.username_pattern", "does not compile: %v", err)
		pattern = nil
	case !strings.HasPrefix(a.UsernamePattern, "^") || !strings.HasSuffix(a.UsernamePattern, "$"):
		v.add("auth.username_pattern", "%q must start with ^ and end with $, so a name must match as a whole", a.UsernamePattern)
		pattern = nil
	}
	for _, k := range sortedKeys(a.UsernameMap) {
		if identity.Fold(k) == "" {
			v.add("auth.username_map", "has an empty login name; remove that entry")
		}
		if to := identity.Fold(a.UsernameMap[k]); pattern != nil && !pattern.MatchString(to) {
			v.add("auth.username_map", "%s maps to %q, which does not match auth.username_pattern %s", k, a.UsernameMap[k], a.UsernamePattern)
		}
	}
	if pattern != nil {
		// Check the lists with the Namer login uses; a username_map that
		// identity refuses is left out here (the entries above say why, and
		// start-up refuses it), so the lists are still checked.
		namer, err := identity.New(identity.Options{Pattern: a.UsernamePattern, UsernameMap: a.UsernameMap})
		if err != nil {
			namer, err = identity.New(identity.Options{Pattern: a.UsernamePattern})
		}
		lists := []struct {
			key   string
			names []string
		}{{"auth.admin_users", a.AdminUsers}, {"auth.allowed_users", a.AllowedUsers}, {"auth.blocked_users", a.BlockedUsers}, {"notebook.instructor_users", instructors}}
		for _, l := range lists {
			for _, name := range l.names {
				if err != nil || !validUsername(namer, name) {
					v.add(l.key, "%q is not a valid username: after trimming and lower-casing it must match auth.username_pattern %s", name, a.UsernamePattern)
				}
			}
		}
	}

	if a.Authenticator == "dummy" && a.Dummy.Password == "" && a.Dummy.PasswordFile == "" {
		v.add("auth.dummy.password", "required when auth.authenticator is dummy; set auth.dummy.password_file (e.g. /run/secrets/dummy-password) or SWARMHUB_AUTH_DUMMY_PASSWORD")
	}

	r := a.Regulation
	if r.MaxFailures < 1 {
		v.add("auth.regulation.max_failures", "%d must be at least 1 (failed logins before a ban)", r.MaxFailures)
	}
	if r.AccountMaxFailures < 1 {
		v.add("auth.regulation.account_max_failures", "%d must be at least 1 (failed logins of one user from all addresses before a ban)", r.AccountMaxFailures)
	}
	v.positive("auth.regulation.window", r.Window)
	v.positive("auth.regulation.ban", r.Ban)

	v.ldap(&a.LDAP, a.Authenticator == "ldap")
}

// validUsername checks a configured name the way login will see it.
func validUsername(n *identity.Namer, name string) bool {
	_, err := n.Canonical(name)
	return err == nil
}

func (v *checker) ldap(l *LDAP, required bool) {
	v.oneOf("auth.ldap.tls", l.TLS, "ldaps", "starttls", "none")
	if l.ServerPort != 0 {
		v.port("auth.ldap.server_port", l.ServerPort)
	}
	for _, attr := range []struct{ key, val string }{
		{"auth.ldap.user_attribute", l.UserAttribute},
		{"auth.ldap.lookup_dn_user_dn_attribute", l.LookupDNUserDNAttribute},
	} {
		if attr.val != "" && !attrRE.MatchString(attr.val) {
			v.add(attr.key, "%q is not an LDAP attribute name, e.g. uid, cn or sAMAccountName", attr.val)
		}
	}
	for _, attr := range l.GroupMemberAttributes {
		if !attrRE.MatchString(attr) {
			v.add("auth.ldap.group_member_attributes", "%q is not an LDAP attribute name, e.g. member, uniqueMember or memberUid", attr)
		}
	}
	if f := strings.TrimSpace(l.SearchFilter); f != "" && !balancedFilter(f) {
		v.add("auth.ldap.search_filter", "%q is not an LDAP filter; write it in parentheses, e.g. (objectClass=person)", l.SearchFilter)
	}
	for _, t := range l.BindDNTemplates {
		switch {
		case !strings.Contains(t, "{username}"):
			v.add("auth.ldap.bind_dn_templates", "%q does not contain {username}; write e.g. uid={username},ou=people,dc=example,dc=edu", t)
		case !strings.Contains(t, "="):
			v.add("auth.ldap.bind_dn_templates", "%q is not a DN; write e.g. uid={username},ou=people,dc=example,dc=edu", t)
		}
		for _, p := range placeholder.FindAllString(t, -1) {
			if p != "{username}" {
				v.add("auth.ldap.bind_dn_templates", "%q uses %s; only {username} is replaced", t, p)
			}
		}
	}
	for _, g := range l.AllowedGroups {
		if !strings.Contains(g, "=") {
			v.add("auth.ldap.allowed_groups", "%q is not a group DN; write e.g. cn=course101,ou=groups,dc=example,dc=edu", g)
		}
	}
	v.positive("auth.ldap.dial_timeout", l.DialTimeout)
	v.positive("auth.ldap.operation_timeout", l.OperationTimeout)
	if !required {
		return
	}
	switch a := l.ServerAddress; {
	case a == "":
		v.add("auth.ldap.server_address", "required when auth.authenticator is ldap: the directory's host name, e.g. ldap.example.edu")
	case strings.Contains(a, "://"):
		v.add("auth.ldap.server_address", "%q: give the host name only; the scheme comes from auth.ldap.tls", a)
	case net.ParseIP(a) == nil && !hostnameRE.MatchString(a):
		v.add("auth.ldap.server_address", "%q is not a host name or IP address (put a port in auth.ldap.server_port)", a)
	}
	v.file("auth.ldap.ca_file", l.CAFile)
	if l.LookupDN {
		if l.UserSearchBase == "" {
			v.add("auth.ldap.user_search_base", "required when auth.ldap.lookup_dn is true: the base DN to search users under, e.g. ou=people,dc=example,dc=edu")
		}
		if l.UserAttribute == "" {
			v.add("auth.ldap.user_attribute", "required when auth.ldap.lookup_dn is true: the attribute holding the login name, e.g. uid")
		}
	} else if len(l.BindDNTemplates) == 0 {
		v.add("auth.ldap.bind_dn_templates", "required unless auth.ldap.lookup_dn is true: at least one DN with {username}, e.g. uid={username},ou=people,dc=example,dc=edu")
	}
	if l.BindDN != "" && l.BindPassword == "" && l.BindPasswordFile == "" {
		v.add("auth.ldap.bind_password", "required when auth.ldap.bind_dn is set (an empty password would be an unauthenticated bind); set bind_password_file or SWARMHUB_AUTH_LDAP_BIND_PASSWORD")
	}
	if l.BindDN == "" && (l.BindPassword != "" || l.BindPasswordFile != "") {
		v.add("auth.ldap.bind_dn", "required when a bind password is set: the service account's DN")
	}
	if len(l.AllowedGroups) > 0 && len(l.GroupMemberAttributes) == 0 {
		v.add("auth.ldap.group_member_attributes", "required when auth.ldap.allowed_groups is set, e.g. [member, uniqueMember, memberUid]")
	}
}

// balancedFilter is a cheap syntax check: parenthesised, balanced.
func balancedFilter(f string) bool {
	if !strings.HasPrefix(f, "(") || !strings.HasSuffix(f, ")") {
		return false
	}
	depth := 0
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

// secrets refuses a secret given both inline and as a file.
func (v *checker) secrets(c *Config) {
	root := reflect.ValueOf(c).Elem()
	for _, l := range leafFields() {
		if !l.secret {
			continue
		}
		file := leafByPath[l.file]
		if root.FieldByIndex(l.index).String() != "" && root.FieldByIndex(file.index).String() != "" {
			v.add(l.path, "set both as %s and as %s (check %s and %s too); keep one", l.path, file.path, l.env, file.env)
		}
	}
}

// services needs a unique name, a token file and known scopes per service.
func (v *checker) services(svcs []Service) {
	seen := map[string]bool{}
	for i, sv := range svcs {
		key := fmt.Sprintf("services[%d]", i)
		switch {
		case sv.Name == "":
			v.add(key+".name", "every service needs a name")
		case seen[sv.Name]:
			v.add(key+".name", "%q is used by two services; names must be unique", sv.Name)
		}
		seen[sv.Name] = true
		if sv.APITokenFile == "" && sv.APIToken == "" {
			v.add(key+".api_token_file", "every service needs a file holding its API token")
		}
		if len(sv.Scopes) == 0 {
			v.add(key+".scopes", "a service without scopes can do nothing; list what it needs, e.g. [list:users, read:servers]")
		}
		for _, sc := range sv.Scopes {
			if !scopes.Known(sc) {
				v.add(key+".scopes", "%q is not a JupyterHub scope", sc)
			}
		}
	}
}

func (v *checker) session(s *Session) {
	if !cookieRE.MatchString(s.CookieName) {
		v.add("session.cookie_name", "%q is not a valid cookie name; use letters, digits, '-' or '_', e.g. swarmhub-session", s.CookieName)
	}
	v.positive("session.idle_timeout", s.IdleTimeout)
	v.positive("session.max_lifetime", s.MaxLifetime)
	if s.IdleTimeout > s.MaxLifetime && s.MaxLifetime > 0 {
		v.add("session.idle_timeout", "%s is longer than session.max_lifetime %s, so it never applies; lower it or raise max_lifetime", fmtDuration(s.IdleTimeout), fmtDuration(s.MaxLifetime))
	}
}

func (v *checker) lifecycle(l *Lifecycle, mount string) {
	v.schedule("lifecycle.cull.schedule", l.Cull.Schedule)
	v.positive("lifecycle.cull.timeout", l.Cull.Timeout)
	if l.Cull.MaxAge < 0 {
		v.add("lifecycle.cull.max_age", "%s is negative; use 0s to turn it off, or a duration such as 8h", fmtDuration(l.Cull.MaxAge))
	}
	v.atLeastOne("lifecycle.cull.concurrency", l.Cull.Concurrency)
	v.schedule("lifecycle.archive.schedule", l.Archive.Schedule)
	v.prestarts(l.Prestart)
	v.atLeastOne("lifecycle.archive.concurrency", l.Archive.Concurrency)
	if l.DiskUsage.Interval < 0 || (l.DiskUsage.Interval > 0 && l.DiskUsage.Interval < time.Minute) {
		v.add("lifecycle.disk_usage.interval", "%s: measure at most once a minute (walking every workspace costs the storage), or 0s for never", fmtDuration(l.DiskUsage.Interval))
	}
	if l.DiskUsage.SoftLimit < 0 {
		v.add("lifecycle.disk_usage.soft_limit", "is negative; use 0 for no limit, or a size such as 2G")
	}
	v.atLeastOne("lifecycle.archive.keep", l.Archive.Keep)
	for _, p := range l.Archive.Exclude {
		if _, err := path.Match(p, ""); err != nil || strings.TrimSpace(p) == "" {
			v.add("lifecycle.archive.exclude", "%q is not a glob pattern; use e.g. .cache or *.tmp", p)
		}
	}
	if l.Archive.MaxFileSize < 0 {
		v.add("lifecycle.archive.max_file_size", "%d is negative; use a size like 64G, or 0 for no limit", l.Archive.MaxFileSize)
	}
	if l.Archive.MaxWorkspaceSize < 0 {
		v.add("lifecycle.archive.max_workspace_size", "%d is negative; use a size like 256G, or 0 for no limit", l.Archive.MaxWorkspaceSize)
	}
	if l.Archive.MaxDuration < 0 {
		v.add("lifecycle.archive.max_duration", "%s is negative; use 0s to turn it off, or a duration such as 2h", fmtDuration(l.Archive.MaxDuration))
	}
	if d := l.Archive.Dir; d != "" {
		if !path.IsAbs(d) {
			v.add("lifecycle.archive.dir", "%q is not an absolute path; use e.g. /srv/swarmhub-archives, or leave it empty for archives/ under storage.mount", d)
		}
		// Students write users/ and exchange/; archives there could be
		// read or replaced by them.
		for _, sub := range []string{"users", "exchange"} {
			if p := path.Join(mount, sub); path.Clean(d) == p || strings.HasPrefix(path.Clean(d), p+"/") {
				v.add("lifecycle.archive.dir", "%q lies in %s, which students can write; choose a directory outside it", d, p)
			}
		}
	}
	if _, err := l.Archive.Location(); err != nil {
		v.add("lifecycle.archive.timezone", "%q is not a time zone (%v); use an IANA name such as Europe/Berlin or UTC, or leave it empty for the machine's zone", l.Archive.Timezone, err)
	}
	v.schedule("lifecycle.redis_snapshot.schedule", l.Snapshot.Schedule)
	v.atLeastOne("lifecycle.redis_snapshot.keep", l.Snapshot.Keep)
	v.positive("lifecycle.reconcile.interval", l.Reconcile.Interval)
}

func (v *checker) courseData(c *Config) {
	d, n := c.Notebook.CourseData, c.Notebook
	if !d.Enabled {
		return
	}
	v.absPath("notebook.course_data.mount_path", d.MountPath, true)
	under := func(p, dir string) bool {
		p, dir = path.Clean(p), path.Clean(dir)
		return p == dir || strings.HasPrefix(p, dir+"/")
	}
	switch {
	case d.MountPath == "" || !path.IsAbs(d.MountPath):
	case under(n.NotebookDir, d.MountPath):
		v.add("notebook.course_data.mount_path", "%q is notebook.notebook_dir or holds it; mount the course data inside the workspace instead, e.g. /home/jovyan/course", d.MountPath)
	case n.CourseID != "" && under(d.MountPath, path.Join(n.NotebookDir, n.CourseID)):
		// The notebook images make an instructor's nbgrader course directory there.
		v.add("notebook.course_data.mount_path", "%q is in the nbgrader course directory %s (notebook.notebook_dir/notebook.course_id); use another path, e.g. /home/jovyan/course-data", d.MountPath, path.Join(n.NotebookDir, n.CourseID))
	case n.ExchangeDir != "" && (under(d.MountPath, n.ExchangeDir) || under(n.ExchangeDir, d.MountPath)):
		v.add("notebook.course_data.mount_path", "%q overlaps notebook.exchange_dir %q; use a path of its own, e.g. /home/jovyan/course", d.MountPath, n.ExchangeDir)
	}
	if !volumeNameRE.MatchString(d.Volume) {
		v.add("notebook.course_data.volume", "%q is not a Docker volume name; use at least two letters, digits, '_', '.' or '-', e.g. course", d.Volume)
	} else if n.ExchangeDir != "" && d.Volume == n.ExchangeVolume {
		v.add("notebook.course_data.volume", "%q is also notebook.exchange_volume; give the course data its own volume", d.Volume)
	}
	// Every server reads course/: archives of all workspaces there would be
	// every student's to read.
	if a := c.Lifecycle.Archive.Dir; a != "" && path.IsAbs(a) && under(a, path.Join(c.Storage.Mount, "course")) {
		v.add("lifecycle.archive.dir", "%q lies in the course data, which every server can read; choose a directory outside it", a)
	}
}

func (v *checker) schedule(key, spec string) {
	if strings.TrimSpace(spec) == "" {
		v.add(key, "required: a cron schedule such as \"0 3 * * *\" or \"@every 1m\"")
		return
	}
	if _, err := cron.ParseStandard(spec); err != nil {
		v.add(key, "%q is not a schedule (%v); use 5 cron fields (minute hour day month weekday, e.g. \"0 3 * * *\") or @every 1m, @hourly, @daily", spec, err)
	}
}

func (v *checker) port(key string, p int) {
	if p < 1 || p > 65535 {
		v.add(key, "%d is not a port; use 1-65535", p)
	}
}

func (v *checker) atLeastOne(key string, n int) {
	if n < 1 {
		v.add(key, "%d must be at least 1", n)
	}
}

func (v *checker) proxy(p *Proxy) {
	for i, o := range p.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			v.add(fmt.Sprintf("proxy.allowed_origins[%d]", i), "%q is not an origin; write scheme and host only, like https://lab.example.edu", o)
		}
	}
	for _, c := range []struct {
		key string
		n   int
	}{{"proxy.max_websockets_per_user", p.MaxWebsocketsPerUser}, {"proxy.max_requests_per_user", p.MaxRequestsPerUser}} {
		if c.n < 0 || c.n > 1<<20 {
			v.add(c.key, "%d is out of range; give 0 (no cap) up to 1048576", c.n)
		}
	}
}

func (v *checker) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "%s must be a positive duration, e.g. 30s, 15m or 8h", fmtDuration(d))
	}
}

func (v *checker) oneOf(key, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.add(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

func (v *checker) absPath(key, p string, required bool) {
	switch {
	case p == "" && required:
		v.add(key, "required: an absolute path")
	case p != "" && !path.IsAbs(p):
		v.add(key, "%q is not an absolute path; start it with /", p)
	}
}

func (v *checker) file(key, name string) {
	if name == "" {
		return
	}
	st, err := os.Stat(name)
	switch {
	case err != nil:
		v.add(key, "cannot use %s: %v; check the path (inside the container) and its permissions", name, err)
	case !st.Mode().IsRegular():
		v.add(key, "%s is not a regular file", name)
	}
}

func (v *checker) hostPort(key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		v.add(key, "%q is not host:port, e.g. redis:6379", addr)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		v.add(key, "%q has no valid port; use host:port with a port 1-65535, e.g. redis:6379", addr)
	}
}

// template checks a name template with {username}: the placeholder is
// present, nothing else is one, and a short name gives a valid result.
func (v *checker) template(key, tmpl string, valid func(string) bool, rule string) {
	if !strings.Contains(tmpl, "{username}") {
		v.add(key, "%q does not contain {username}; every user needs their own name, e.g. jupyter-{username}", tmpl)
		return
	}
	for _, p := range placeholder.FindAllString(tmpl, -1) {
		if p != "{username}" {
			v.add(key, "%q uses %s; only {username} is replaced", tmpl, p)
			return
		}
	}
	if example := strings.ReplaceAll(tmpl, "{username}", "ab"); !valid(example) {
		v.add(key, "%q gives invalid names such as %q; use %s", tmpl, example, rule)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// prestarts checks each pre-start schedule (prestart owns the rules, so
// the API and the file agree) and that names are unique.
func (v *checker) prestarts(ss []prestart.Schedule) {
	seen := map[string]bool{}
	for i, s := range ss {
		key := fmt.Sprintf("lifecycle.prestart[%d]", i)
		for _, p := range s.Validate() {
			v.add(key+"."+p.Field, "%s", p.Msg)
		}
		if seen[s.Name] {
			v.add(key+".name", "%q is used by two schedules; names must be unique", s.Name)
		}
		seen[s.Name] = true
	}
}
