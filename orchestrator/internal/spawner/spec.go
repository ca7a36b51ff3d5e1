// Package spawner runs one Docker Swarm service per user: it builds the
// service spec, creates and removes services, follows a spawn until the
// server answers, and tells the proxy where a running server lives.
//
// It is the only package that talks to Docker about user servers.
package spawner

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/oauth"
)

// Labels on every user service, its container and its volumes.
const (
	LabelUser     = "swarmhub.user"
	LabelManaged  = "swarmhub.managed"
	LabelInstance = "swarmhub.instance"
	LabelVolume   = "swarmhub.volume"
)

// Environment of the server start contract (README.md, "Your own notebook image").
const (
	EnvUser       = "JUPYTERHUB_USER"
	EnvToken      = "JUPYTER_TOKEN"
	EnvBaseURL    = "SWARMHUB_BASE_URL"
	EnvNotebook   = "NOTEBOOK_DIR"
	EnvPort       = "SWARMHUB_PORT"
	EnvInstructor = "SWARMHUB_INSTRUCTOR"
	EnvCourseID   = "NBGRADER_COURSE_ID"
)

// Start contracts: how an image is started and how it authenticates
// (README.md, "Your own notebook image").
const (
	// ContractToken: swarmhub's own contract above; the proxy injects the
	// server token.
	ContractToken = "token"
	// ContractSingleUser: an image whose command is jupyterhub-singleuser,
	// given the environment JupyterHub's Spawner.get_env gives (SingleUserEnv).
	// It asks the hub who a visitor is (OAuth), so the proxy injects nothing.
	ContractSingleUser = "jupyterhub-singleuser"
)

// Environment of the jupyterhub-singleuser contract, as JupyterHub sets it.
const (
	EnvHubAPIToken = "JUPYTERHUB_API_TOKEN"
	EnvHubAPIURL   = "JUPYTERHUB_API_URL"
)

// Defaults applied by BuildSpec when an Options field is empty.
const (
	DefaultInstance    = "swarmhub"
	DefaultNotebookDir = "/home/jovyan"
	DefaultPort        = 8888
)

// Storage backends.
const (
	BackendHostPath = "hostpath"
	BackendNFS      = "nfs"
)

// courseDataDir holds the course data under the storage root.
const courseDataDir = "course"

// contractEnv are the variables the spawner owns; extra env may not set them.
var contractEnv = map[string]bool{
	EnvUser: true, EnvToken: true, EnvBaseURL: true, EnvNotebook: true,
	EnvPort: true, EnvInstructor: true, EnvCourseID: true,
}

// Request is what differs between two users' services.
type Request struct {
	User        string // canonical username
	ServiceName string
	VolumeName  string
	Token       string // fresh per start
	Image       string
	Instructor  bool
}

// Storage says where workspaces live and how a node mounts them.
type Storage struct {
	Backend    string // "hostpath" or "nfs"
	HostRoot   string // hostpath: the storage root as seen by every node
	NFSServer  string // nfs: server address
	NFSExport  string // nfs: exported storage root, e.g. /srv/swarmhub
	NFSOptions string // nfs: extra mount options after addr=, e.g. "rw,nfsvers=4"
}

// Options is the part of the spec that comes from configuration.
type Options struct {
	Network        string // attachable overlay network shared with the orchestrator
	NotebookDir    string // default /home/jovyan
	ExchangeDir    string // empty: no exchange mount
	ExchangeVolume string // volume name of the shared nbgrader exchange
	CPULimit       float64
	CPUGuarantee   float64
	MemLimit       int64 // bytes
	MemGuarantee   int64 // bytes
	Storage        Storage
	Constraints    []string
	Preferences    []string // "spread=node.labels.x"
	Env            map[string]string
	Port           int    // default 8888
	CourseID       string // NBGRADER_COURSE_ID
	Instance       string // swarmhub.instance label; default "swarmhub"
	// Contracts maps an image to its start contract; unlisted images use
	// ContractToken.
	Contracts map[string]string
	// HubURL is where servers reach the hub on the overlay network, e.g.
	// http://tasks.orchestrator:8000 (ContractSingleUser only).
	HubURL string
	// AdminAccess: admins may open other users' servers (JupyterHub's
	// JUPYTERHUB_ADMIN_ACCESS).
	AdminAccess bool
	// PidsLimit bounds the processes and threads of a server (fork bombs);
	// 0: no limit.
	PidsLimit int64
	// NoNewPrivileges keeps setuid binaries from raising privileges. Docker
	// applies it to services from Engine 25 (API 1.44) on; older engines ignore it (the
	// repository's images set it themselves, README.md "Container hardening").
	NoNewPrivileges bool
	// CapDrop are capabilities removed from the container's bounding set,
	// e.g. NET_RAW or CAP_NET_RAW, or ALL.
	CapDrop []string
	// CourseDataPath is where the shared course data (course/ under the
	// storage root) appears in every server: read-only for students,
	// writable for instructors. Empty: no course data mount.
	CourseDataPath string
	// CourseDataVolume is the volume name of the course data.
	CourseDataVolume string
}

// Contract is the start contract of image.
func (o Options) Contract(image string) string {
	if c := o.Contracts[image]; c != "" {
		return c
	}
	return ContractToken
}

// SingleUserParams is what SingleUserEnv needs.
type SingleUserParams struct {
	User        string
	Token       string // the server token, also a hub API token of User
	HubURL      string // the hub as servers reach it, without /hub/
	Port        int
	NotebookDir string
	AdminAccess bool
}

// SingleUserEnv is the environment JupyterHub's Spawner.get_env gives a
// jupyterhub-singleuser server (JupyterHub 3 to 5) for the default server
// of p.User: its hub API token, OAuth client and scopes, API and activity
// URLs, and its URL prefix. The hub's host is empty, so OAuth redirects
// stay on the host the student uses.
func SingleUserEnv(p SingleUserParams) map[string]string {
	api := strings.TrimSuffix(p.HubURL, "/") + "/hub/api"
	prefix := BaseURL(p.User)
	scopes := pyJSONList(oauth.AccessScopes(p.User, ""))
	env := map[string]string{
		EnvHubAPIToken:                           p.Token,
		"JPY_API_TOKEN":                          p.Token,
		"JUPYTERHUB_CLIENT_ID":                   oauth.ClientID(p.User, ""),
		"JUPYTERHUB_HOST":                        "",
		"JUPYTERHUB_OAUTH_CALLBACK_URL":          oauth.RedirectURI("/", p.User, ""),
		"JUPYTERHUB_OAUTH_SCOPES":                scopes,
		"JUPYTERHUB_OAUTH_ACCESS_SCOPES":         scopes,
		"JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
		EnvUser:                                  p.User,
		"JUPYTERHUB_SERVER_NAME":                 "",
		EnvHubAPIURL:                             api,
		"JUPYTERHUB_ACTIVITY_URL":                api + "/users/" + p.User + "/activity",
		"JUPYTERHUB_BASE_URL":                    "/",
		"JUPYTERHUB_SERVICE_PREFIX":              prefix,
		"JUPYTERHUB_SERVICE_URL":                 "http://0.0.0.0:" + strconv.Itoa(p.Port) + prefix,
		"JUPYTERHUB_ROOT_DIR":                    p.NotebookDir,
	}
	if p.AdminAccess {
		env["JUPYTERHUB_ADMIN_ACCESS"] = "1"
	}
	return env
}

// pyJSONList writes l as Python's json.dumps does (", " between items), as
// JupyterHub sets its scope variables.
func pyJSONList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		b, _ := json.Marshal(s)
		q[i] = string(b)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// BaseURL is the path prefix a user's server is served under.
func BaseURL(user string) string { return identity.UserPath(user) }

// BuildSpec returns the service spec for one user's server. It is pure:
// the same input always gives the same spec, with env, mounts and
// constraints in a stable order.
func BuildSpec(r Request, o Options) (swarm.ServiceSpec, error) {
	if err := checkRequest(r); err != nil {
		return swarm.ServiceSpec{}, err
	}
	if o.Network == "" {
		return swarm.ServiceSpec{}, errors.New("spawner: network is required: user servers must share an overlay network with the orchestrator")
	}
	instance := or(o.Instance, DefaultInstance)
	notebookDir := or(o.NotebookDir, DefaultNotebookDir)
	port := o.Port
	if port == 0 {
		port = DefaultPort
	}
	if port < 1 || port > 65535 {
		return swarm.ServiceSpec{}, fmt.Errorf("spawner: port %d is out of range 1-65535", port)
	}

	env, err := buildEnv(r, o, notebookDir, port)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	resources, err := buildResources(o)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	capDrop, err := capabilities(o.CapDrop)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	var privileges *swarm.Privileges
	if o.NoNewPrivileges {
		privileges = &swarm.Privileges{NoNewPrivileges: true}
	}
	mounts, err := buildMounts(r, o, notebookDir, instance)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	prefs, err := buildPreferences(o.Preferences)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}

	labels := map[string]string{
		LabelUser:     r.User,
		LabelManaged:  "true",
		LabelInstance: instance,
	}
	var placement *swarm.Placement
	if len(o.Constraints) > 0 || len(prefs) > 0 {
		placement = &swarm.Placement{Preferences: prefs}
		if len(o.Constraints) > 0 {
			placement.Constraints = append([]string(nil), o.Constraints...)
			sort.Strings(placement.Constraints)
		}
	}
	replicas := uint64(1)
	// No restart delay: swarm applies it also when it replaces the tasks of
	// a node it declared down, which kept every student of a lost node
	// waiting 5 s more. A failing spawn ends at its first failed task
	// (follow), and MaxAttempts bounds a server that keeps crashing. Those
	// attempts count within a window: swarm counts a lost node's
	// replacement as an attempt too, and without a window a server that had
	// moved off three lost nodes was not started again after a fourth.
	maxAttempts := uint64(3)
	restartDelay := time.Duration(0)
	restartWindow := time.Minute
	grace := 10 * time.Second

	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: r.ServiceName, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:           r.Image,
				Labels:          copyMap(labels),
				Env:             env,
				Mounts:          mounts,
				StopGracePeriod: &grace,
				Privileges:      privileges,
				CapabilityDrop:  capDrop,
			},
			Resources: resources,
			RestartPolicy: &swarm.RestartPolicy{
				Condition:   swarm.RestartPolicyConditionOnFailure,
				Delay:       &restartDelay,
				MaxAttempts: &maxAttempts,
				Window:      &restartWindow,
			},
			Placement: placement,
			Networks:  []swarm.NetworkAttachmentConfig{{Target: o.Network}},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}, nil
}

func checkRequest(r Request) error {
	for _, f := range []struct{ name, v string }{
		{"user", r.User}, {"service name", r.ServiceName}, {"volume name", r.VolumeName},
		{"token", r.Token}, {"image", r.Image},
	} {
		if f.v == "" {
			return fmt.Errorf("spawner: %s is required", f.name)
		}
	}
	if r.User == "." || r.User == ".." || strings.ContainsAny(r.User, "/\x00 ") {
		return fmt.Errorf("spawner: username %q cannot be used as a directory name", r.User)
	}
	return nil
}

func buildEnv(r Request, o Options, notebookDir string, port int) ([]string, error) {
	instructor := "0"
	if r.Instructor {
		instructor = "1"
	}
	var vars map[string]string
	switch c := o.Contract(r.Image); c {
	case ContractToken:
		vars = map[string]string{
			EnvUser:    r.User,
			EnvToken:   r.Token,
			EnvBaseURL: BaseURL(r.User),
			EnvPort:    strconv.Itoa(port),
		}
	case ContractSingleUser:
		if o.HubURL == "" {
			return nil, fmt.Errorf("spawner: image %s uses the %s contract, which needs the hub's internal URL", r.Image, c)
		}
		vars = SingleUserEnv(SingleUserParams{
			User: r.User, Token: r.Token, HubURL: o.HubURL, Port: port,
			NotebookDir: notebookDir, AdminAccess: o.AdminAccess,
		})
	default:
		return nil, fmt.Errorf("spawner: image %s has an unknown start contract %q (want %q or %q)", r.Image, c, ContractToken, ContractSingleUser)
	}
	vars[EnvNotebook] = notebookDir
	vars[EnvInstructor] = instructor
	contract := maps.Clone(vars)
	if o.CourseID != "" {
		vars[EnvCourseID] = o.CourseID
	}
	for k, v := range o.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("spawner: env name %q is invalid", k)
		}
		if _, set := contract[k]; set || contractEnv[k] {
			return nil, fmt.Errorf("spawner: env %s is set by swarmhub and cannot be overridden in the extra environment", k)
		}
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, nil
}

func buildResources(o Options) (*swarm.ResourceRequirements, error) {
	if o.CPULimit < 0 || o.CPUGuarantee < 0 || o.MemLimit < 0 || o.MemGuarantee < 0 || o.PidsLimit < 0 {
		return nil, errors.New("spawner: cpu, memory and pids limits and guarantees must not be negative")
	}
	if o.CPULimit > 0 && o.CPUGuarantee > o.CPULimit {
		return nil, fmt.Errorf("spawner: cpu_guarantee %g exceeds cpu_limit %g", o.CPUGuarantee, o.CPULimit)
	}
	if o.MemLimit > 0 && o.MemGuarantee > o.MemLimit {
		return nil, fmt.Errorf("spawner: mem_guarantee %d exceeds mem_limit %d", o.MemGuarantee, o.MemLimit)
	}
	var res swarm.ResourceRequirements
	if o.CPULimit > 0 || o.MemLimit > 0 || o.PidsLimit > 0 {
		res.Limits = &swarm.Limit{NanoCPUs: nanoCPUs(o.CPULimit), MemoryBytes: o.MemLimit, Pids: o.PidsLimit}
	}
	if o.CPUGuarantee > 0 || o.MemGuarantee > 0 {
		res.Reservations = &swarm.Resources{NanoCPUs: nanoCPUs(o.CPUGuarantee), MemoryBytes: o.MemGuarantee}
	}
	if res.Limits == nil && res.Reservations == nil {
		return nil, nil
	}
	return &res, nil
}

// capabilities spells capability names as Docker does (CAP_NET_RAW, ALL),
// sorted and without duplicates.
func capabilities(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(names))
	for _, n := range names {
		c := strings.ToUpper(strings.TrimSpace(n))
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !capabilityRE.MatchString(c) {
			return nil, fmt.Errorf("spawner: %q is not a capability name (e.g. NET_RAW, CAP_MKNOD or ALL)", n)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out, nil
}

var capabilityRE = regexp.MustCompile(`^(ALL|CAP_[A-Z][A-Z0-9_]*)$`)

func nanoCPUs(cpus float64) int64 { return int64(math.Round(cpus * 1e9)) }

func buildMounts(r Request, o Options, notebookDir, instance string) ([]mount.Mount, error) {
	if !path.IsAbs(notebookDir) {
		return nil, fmt.Errorf("spawner: notebook_dir %q must be an absolute path", notebookDir)
	}
	userDrv, err := driverConfig(o.Storage, identity.WorkspaceDir(r.User))
	if err != nil {
		return nil, err
	}
	mounts := []mount.Mount{{
		Type:   mount.TypeVolume,
		Source: r.VolumeName,
		Target: notebookDir,
		VolumeOptions: &mount.VolumeOptions{
			Labels:       map[string]string{LabelManaged: "true", LabelInstance: instance, LabelUser: r.User, LabelVolume: "user"},
			DriverConfig: userDrv,
		},
	}}
	if o.ExchangeDir != "" {
		if !path.IsAbs(o.ExchangeDir) {
			return nil, fmt.Errorf("spawner: exchange_dir %q must be an absolute path", o.ExchangeDir)
		}
		if o.ExchangeVolume == "" {
			return nil, errors.New("spawner: exchange volume name is required when exchange_dir is set")
		}
		exDrv, err := driverConfig(o.Storage, "exchange")
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, mount.Mount{
			Type:   mount.TypeVolume,
			Source: o.ExchangeVolume,
			Target: o.ExchangeDir,
			VolumeOptions: &mount.VolumeOptions{
				Labels:       map[string]string{LabelManaged: "true", LabelInstance: instance, LabelVolume: "exchange"},
				DriverConfig: exDrv,
			},
		})
	}
	if o.CourseDataPath != "" {
		m, err := courseDataMount(r, o, instance)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	sort.Slice(mounts, func(i, j int) bool { return mounts[i].Target < mounts[j].Target })
	return mounts, nil
}

// courseDataMount shares course/ under the storage root with every server.
// All servers run as the same uid, so only the mount itself keeps students
// from writing: read-only for them (EROFS), read-write for instructors. It
// is one volume for both, so what an instructor writes is what every
// running server sees at once (a bind or NFS mount is live).
func courseDataMount(r Request, o Options, instance string) (mount.Mount, error) {
	if !path.IsAbs(o.CourseDataPath) {
		return mount.Mount{}, fmt.Errorf("spawner: course data path %q must be an absolute path", o.CourseDataPath)
	}
	if o.CourseDataVolume == "" {
		return mount.Mount{}, errors.New("spawner: course data volume name is required when the course data path is set")
	}
	drv, err := driverConfig(o.Storage, courseDataDir)
	if err != nil {
		return mount.Mount{}, err
	}
	return mount.Mount{
		Type:     mount.TypeVolume,
		Source:   o.CourseDataVolume,
		Target:   o.CourseDataPath,
		ReadOnly: !r.Instructor,
		VolumeOptions: &mount.VolumeOptions{
			// Docker would copy what an image has at the path into the
			// volume while it is empty: course data comes from instructors only.
			NoCopy:       true,
			Labels:       map[string]string{LabelManaged: "true", LabelInstance: instance, LabelVolume: "course"},
			DriverConfig: drv,
		},
	}, nil
}

// driverConfig points a local-driver volume at rel (relative to the storage root).
func driverConfig(s Storage, rel string) (*mount.Driver, error) {
	switch s.Backend {
	case BackendHostPath, "":
		if s.HostRoot == "" || !path.IsAbs(s.HostRoot) {
			return nil, fmt.Errorf("spawner: storage.hostpath root %q must be an absolute path", s.HostRoot)
		}
		return &mount.Driver{Name: "local", Options: map[string]string{
			"type": "none", "o": "bind", "device": path.Join(s.HostRoot, rel),
		}}, nil
	case BackendNFS:
		if s.NFSServer == "" || s.NFSExport == "" {
			return nil, errors.New("spawner: storage.nfs needs both server and export")
		}
		if !path.IsAbs(s.NFSExport) {
			return nil, fmt.Errorf("spawner: storage.nfs export %q must be an absolute path", s.NFSExport)
		}
		o := "addr=" + s.NFSServer
		if s.NFSOptions != "" {
			o += "," + s.NFSOptions
		}
		return &mount.Driver{Name: "local", Options: map[string]string{
			"type": "nfs", "o": o, "device": ":" + path.Join(s.NFSExport, rel),
		}}, nil
	default:
		return nil, fmt.Errorf("spawner: storage backend %q is unknown (want %q or %q)", s.Backend, BackendHostPath, BackendNFS)
	}
}

func buildPreferences(prefs []string) ([]swarm.PlacementPreference, error) {
	var out []swarm.PlacementPreference
	for _, p := range prefs {
		kind, desc, ok := strings.Cut(p, "=")
		if !ok || kind != "spread" || desc == "" {
			return nil, fmt.Errorf("spawner: placement preference %q is invalid (want spread=node.labels.NAME)", p)
		}
		out = append(out, swarm.PlacementPreference{Spread: &swarm.SpreadOver{SpreadDescriptor: desc}})
	}
	return out, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
