package spawner_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

func baseRequest() spawner.Request {
	return spawner.Request{
		User:        "alice",
		ServiceName: "jupyter-alice",
		VolumeName:  "jupyterhub-user-alice",
		Token:       "0123456789abcdef",
		Image:       "swarmhub/notebook:dev",
	}
}

func baseOptions() spawner.Options {
	return spawner.Options{
		Network:        "swarmhub-users",
		NotebookDir:    "/home/jovyan",
		ExchangeDir:    "/home/jovyan/.exchange",
		ExchangeVolume: "exchange",
		Storage:        spawner.Storage{Backend: "hostpath", HostRoot: "/srv/swarmhub"},
		CourseID:       "course101",
	}
}

func TestBuildSpecGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  func(*spawner.Request)
		opt  func(*spawner.Options)
	}{
		{name: "defaults_hostpath"},
		{name: "nfs", opt: func(o *spawner.Options) {
			o.Storage = spawner.Storage{Backend: "nfs", NFSServer: "10.0.0.2", NFSExport: "/export/swarmhub", NFSOptions: "rw,nfsvers=4.1,soft"}
		}},
		{name: "instructor", req: func(r *spawner.Request) { r.Instructor = true; r.User = "prof.x"; r.ServiceName = "jupyter-prof-2ex" }},
		{name: "resources", opt: func(o *spawner.Options) {
			o.CPULimit, o.CPUGuarantee = 2, 0.25
			o.MemLimit, o.MemGuarantee = 2<<30, 512<<20
		}},
		{name: "constraints", opt: func(o *spawner.Options) {
			o.Constraints = []string{"node.role==worker", "node.labels.jupyter==true"}
			o.Preferences = []string{"spread=node.labels.rack"}
			o.Instance = "course-a"
		}},
		{name: "sorted_env", opt: func(o *spawner.Options) {
			o.Env = map[string]string{"ZED": "last", "AAA": "first", "TZ": "Europe/Berlin", "EMPTY": ""}
			o.Port = 9999
			o.ExchangeDir = "" // no exchange mount
		}},
		{name: "hardening", opt: func(o *spawner.Options) {
			o.PidsLimit = 2048
			o.NoNewPrivileges = true
			o.CapDrop = []string{"net_raw", "CAP_MKNOD", "NET_RAW", "audit_write"}
		}},
		{name: "course_data_student", opt: withCourseData},
		{name: "course_data_instructor_nfs", req: func(r *spawner.Request) { r.Instructor = true }, opt: func(o *spawner.Options) {
			withCourseData(o)
			o.Storage = spawner.Storage{Backend: "nfs", NFSServer: "10.0.0.2", NFSExport: "/export/swarmhub", NFSOptions: "rw,nfsvers=4.1,soft"}
		}},
		{name: "singleuser", req: func(r *spawner.Request) { r.Image = "swarmhub/notebook-singleuser:dev" }, opt: func(o *spawner.Options) {
			o.Contracts = map[string]string{"swarmhub/notebook-singleuser:dev": spawner.ContractSingleUser}
			o.HubURL = "http://orchestrator:8000"
			o.Env = map[string]string{"TZ": "Europe/Berlin"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, o := baseRequest(), baseOptions()
			if tt.req != nil {
				tt.req(&r)
			}
			if tt.opt != nil {
				tt.opt(&o)
			}
			spec, err := spawner.BuildSpec(r, o)
			if err != nil {
				t.Fatalf("BuildSpec: %v", err)
			}
			got, err := json.MarshalIndent(spec, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("spec differs from %s (run with -update if the change is intended):\n%s", golden, got)
			}
			// Pure: a second build gives the same bytes.
			again, _ := spawner.BuildSpec(r, o)
			if b, _ := json.MarshalIndent(again, "", "  "); !bytes.Equal(append(b, '\n'), got) {
				t.Error("BuildSpec is not deterministic")
			}
		})
	}
}

func TestBuildSpecErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		req     func(*spawner.Request)
		opt     func(*spawner.Options)
		wantErr string
	}{
		{name: "extra env overrides the token", opt: func(o *spawner.Options) { o.Env = map[string]string{"JUPYTER_TOKEN": "x"} }, wantErr: "JUPYTER_TOKEN"},
		{name: "extra env overrides the user", opt: func(o *spawner.Options) { o.Env = map[string]string{"JUPYTERHUB_USER": "bob"} }, wantErr: "JUPYTERHUB_USER"},
		{name: "env name with equals sign", opt: func(o *spawner.Options) { o.Env = map[string]string{"A=B": "x"} }, wantErr: "invalid"},
		{name: "missing network", opt: func(o *spawner.Options) { o.Network = "" }, wantErr: "network"},
		{name: "missing token", req: func(r *spawner.Request) { r.Token = "" }, wantErr: "token"},
		{name: "missing image", req: func(r *spawner.Request) { r.Image = "" }, wantErr: "image"},
		{name: "username with slash", req: func(r *spawner.Request) { r.User = "../etc" }, wantErr: "directory"},
		{name: "unknown backend", opt: func(o *spawner.Options) { o.Storage.Backend = "s3" }, wantErr: "s3"},
		{name: "relative host root", opt: func(o *spawner.Options) { o.Storage.HostRoot = "srv" }, wantErr: "absolute"},
		{name: "nfs without export", opt: func(o *spawner.Options) { o.Storage = spawner.Storage{Backend: "nfs", NFSServer: "nfs"} }, wantErr: "export"},
		{name: "guarantee above limit", opt: func(o *spawner.Options) { o.MemLimit, o.MemGuarantee = 1<<30, 2<<30 }, wantErr: "mem_guarantee"},
		{name: "negative cpu", opt: func(o *spawner.Options) { o.CPULimit = -1 }, wantErr: "negative"},
		{name: "bad preference", opt: func(o *spawner.Options) { o.Preferences = []string{"pack=node.labels.x"} }, wantErr: "spread="},
		{name: "relative notebook dir", opt: func(o *spawner.Options) { o.NotebookDir = "home" }, wantErr: "notebook_dir"},
		{name: "singleuser env overrides the hub URL", opt: func(o *spawner.Options) {
			o.Contracts = map[string]string{"swarmhub/notebook:dev": spawner.ContractSingleUser}
			o.HubURL = "http://orchestrator:8000"
			o.Env = map[string]string{"JUPYTERHUB_API_URL": "http://evil"}
		}, wantErr: "JUPYTERHUB_API_URL"},
		{name: "singleuser without hub URL", opt: func(o *spawner.Options) {
			o.Contracts = map[string]string{"swarmhub/notebook:dev": spawner.ContractSingleUser}
		}, wantErr: "internal URL"},
		{name: "unknown contract", opt: func(o *spawner.Options) {
			o.Contracts = map[string]string{"swarmhub/notebook:dev": "kubespawner"}
		}, wantErr: "kubespawner"},
		{name: "exchange without volume", opt: func(o *spawner.Options) { o.ExchangeVolume = "" }, wantErr: "exchange"},
		{name: "relative course data path", opt: func(o *spawner.Options) { withCourseData(o); o.CourseDataPath = "course" }, wantErr: "course data path"},
		{name: "course data without volume", opt: func(o *spawner.Options) { withCourseData(o); o.CourseDataVolume = "" }, wantErr: "course data volume"},
		{name: "negative pids limit", opt: func(o *spawner.Options) { o.PidsLimit = -1 }, wantErr: "pids"},
		{name: "capability with a space", opt: func(o *spawner.Options) { o.CapDrop = []string{"NET RAW"} }, wantErr: "capability"},
		{name: "empty capability", opt: func(o *spawner.Options) { o.CapDrop = []string{""} }, wantErr: "capability"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, o := baseRequest(), baseOptions()
			if tt.req != nil {
				tt.req(&r)
			}
			if tt.opt != nil {
				tt.opt(&o)
			}
			_, err := spawner.BuildSpec(r, o)
			if err == nil {
				t.Fatalf("BuildSpec succeeded, want an error mentioning %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestSingleUserEnv(t *testing.T) {
	t.Parallel()
	base := spawner.SingleUserParams{User: "alice", Token: "tok", HubURL: "http://orchestrator:8000", Port: 8888, NotebookDir: "/home/jovyan"}
	common := map[string]string{
		"JUPYTERHUB_API_TOKEN":                   "tok",
		"JPY_API_TOKEN":                          "tok",
		"JUPYTERHUB_CLIENT_ID":                   "jupyterhub-user-alice",
		"JUPYTERHUB_HOST":                        "",
		"JUPYTERHUB_OAUTH_CALLBACK_URL":          "/user/alice/oauth_callback",
		"JUPYTERHUB_OAUTH_SCOPES":                `["access:servers!server=alice/", "access:servers!user=alice"]`,
		"JUPYTERHUB_OAUTH_ACCESS_SCOPES":         `["access:servers!server=alice/", "access:servers!user=alice"]`,
		"JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
		"JUPYTERHUB_USER":                        "alice",
		"JUPYTERHUB_SERVER_NAME":                 "",
		"JUPYTERHUB_API_URL":                     "http://orchestrator:8000/hub/api",
		"JUPYTERHUB_ACTIVITY_URL":                "http://orchestrator:8000/hub/api/users/alice/activity",
		"JUPYTERHUB_BASE_URL":                    "/",
		"JUPYTERHUB_SERVICE_PREFIX":              "/user/alice/",
		"JUPYTERHUB_SERVICE_URL":                 "http://0.0.0.0:8888/user/alice/",
		"JUPYTERHUB_ROOT_DIR":                    "/home/jovyan",
	}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(common)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		p    func(*spawner.SingleUserParams)
		want map[string]string
	}{
		{name: "defaults", want: common},
		{name: "hub URL with a trailing slash", p: func(p *spawner.SingleUserParams) { p.HubURL += "/" }, want: common},
		{name: "admin access", p: func(p *spawner.SingleUserParams) { p.AdminAccess = true }, want: with("JUPYTERHUB_ADMIN_ACCESS", "1")},
		{name: "other port", p: func(p *spawner.SingleUserParams) { p.Port = 9000 }, want: with("JUPYTERHUB_SERVICE_URL", "http://0.0.0.0:9000/user/alice/")},
		{name: "other user", p: func(p *spawner.SingleUserParams) { p.User = "bob.x" }, want: map[string]string{
			"JUPYTERHUB_API_TOKEN":                   "tok",
			"JPY_API_TOKEN":                          "tok",
			"JUPYTERHUB_CLIENT_ID":                   "jupyterhub-user-bob.x",
			"JUPYTERHUB_HOST":                        "",
			"JUPYTERHUB_OAUTH_CALLBACK_URL":          "/user/bob.x/oauth_callback",
			"JUPYTERHUB_OAUTH_SCOPES":                `["access:servers!server=bob.x/", "access:servers!user=bob.x"]`,
			"JUPYTERHUB_OAUTH_ACCESS_SCOPES":         `["access:servers!server=bob.x/", "access:servers!user=bob.x"]`,
			"JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
			"JUPYTERHUB_USER":                        "bob.x",
			"JUPYTERHUB_SERVER_NAME":                 "",
			"JUPYTERHUB_API_URL":                     "http://orchestrator:8000/hub/api",
			"JUPYTERHUB_ACTIVITY_URL":                "http://orchestrator:8000/hub/api/users/bob.x/activity",
			"JUPYTERHUB_BASE_URL":                    "/",
			"JUPYTERHUB_SERVICE_PREFIX":              "/user/bob.x/",
			"JUPYTERHUB_SERVICE_URL":                 "http://0.0.0.0:8888/user/bob.x/",
			"JUPYTERHUB_ROOT_DIR":                    "/home/jovyan",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := base
			if tt.p != nil {
				tt.p(&p)
			}
			got := spawner.SingleUserEnv(p)
			for k, v := range tt.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s = %q (set: %v), want %q", k, g, ok, v)
				}
			}
			for k := range got {
				if _, ok := tt.want[k]; !ok {
					t.Errorf("unexpected %s=%q", k, got[k])
				}
			}
		})
	}
}

// TestContractNamesMatchConfig: configuration validates the names the
// spawner acts on.
func TestContractNamesMatchConfig(t *testing.T) {
	t.Parallel()
	if config.ContractToken != spawner.ContractToken || config.ContractSingleUser != spawner.ContractSingleUser {
		t.Errorf("config's contracts %q, %q differ from the spawner's %q, %q",
			config.ContractToken, config.ContractSingleUser, spawner.ContractToken, spawner.ContractSingleUser)
	}
}

// TestContractOfImage checks that only listed images change contract, so
// every existing image keeps today's environment.
func TestContractOfImage(t *testing.T) {
	t.Parallel()
	o := spawner.Options{Contracts: map[string]string{"img/singleuser:1": spawner.ContractSingleUser}}
	if c := o.Contract("img/singleuser:1"); c != spawner.ContractSingleUser {
		t.Errorf("listed image: contract %q", c)
	}
	if c := o.Contract("img/singleuser:2"); c != spawner.ContractToken {
		t.Errorf("unlisted image: contract %q, want %q", c, spawner.ContractToken)
	}
}
