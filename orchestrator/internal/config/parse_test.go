package config_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

const minimal = "auth: {authenticator: dummy, dummy: {password: pw}}\n"

// devEnv chooses the dummy authenticator through the environment, so test
// YAML can hold an auth section of its own.
func devEnv(name string) string {
	return map[string]string{"SWARMHUB_AUTH_AUTHENTICATOR": "dummy", "SWARMHUB_AUTH_DUMMY_PASSWORD": "pw"}[name]
}

func TestParseEmptyGivesDefaults(t *testing.T) {
	for name, data := range map[string]string{
		"only auth":      minimal,
		"comments":       "# nothing\n" + minimal,
		"null sections":  minimal + "notebook:\nlisten: ~\n",
		"empty sections": minimal + "notebook: {}\nlifecycle: {cull: {}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := config.Parse([]byte(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := valid(); !reflect.DeepEqual(got, withPassword(want, "pw")) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func withPassword(c config.Config, pw string) config.Config {
	c.Auth.Dummy.Password = pw
	return c
}

func TestParseEmptyFileNeedsAnAuthenticator(t *testing.T) {
	_, err := config.Parse(nil, nil)
	if got := fieldErrors(t, err).Keys(); !slices.Equal(got, []string{"auth.authenticator"}) {
		t.Fatalf("got errors for %v, want only auth.authenticator", got)
	}
}

func TestParseTypedValues(t *testing.T) {
	data := minimal + `
listen: {port: 0x1F90}
notebook:
  mem_limit: 1.5G
  mem_guarantee: 268435456
  cpu_limit: 2
  cpu_guarantee: .5
  start_timeout: 2m30s
  placement_constraints:
    - node.role==worker
    - node.labels.gpu!=true
  env: {TZ: Europe/Berlin, EMPTY: , NUMBER: 1}
  course_id: 2024
auth:
  authenticator: dummy
  dummy: {password: pw}
  allow_all: true
  username_map: {Boninho: data8}
lifecycle:
  cull: {max_age: 0, timeout: 20s}
`
	data = strings.Replace(data, minimal, "", 1) // one auth section only
	c, err := config.Parse([]byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := c.Notebook
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen.port", c.Listen.Port, 8080},
		{"mem_limit", n.MemLimit, config.ByteSize(1536 * 1024 * 1024)},
		{"mem_guarantee", n.MemGuarantee, 256 * config.MiB},
		{"cpu_limit", n.CPULimit, 2.0},
		{"cpu_guarantee", n.CPUGuarantee, 0.5},
		{"start_timeout", n.StartTimeout, 150 * time.Second},
		{"placement", n.PlacementConstraints, []string{"node.role==worker", "node.labels.gpu!=true"}},
		{"env", n.Env, map[string]string{"TZ": "Europe/Berlin", "EMPTY": "", "NUMBER": "1"}},
		{"course_id", n.CourseID, "2024"},
		{"allow_all", c.Auth.AllowAll, true},
		{"username_map", c.Auth.UsernameMap, map[string]string{"Boninho": "data8"}},
		{"max_age", c.Lifecycle.Cull.MaxAge, time.Duration(0)},
		{"cull timeout", c.Lifecycle.Cull.Timeout, 20 * time.Second},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestUnknownKeysAreAllListed(t *testing.T) {
	data := minimal + `
notebok: {image: x}
public_ur: https://x
listen: {adress: 1.2.3.4, port: 8000}
notebook:
  mem_limt: 2G
  image: swarmhub/notebook:latest
storage:
  nfs: {sever: nfs1}
lifecycle:
  cull: {timout: 15m, enabled: true}
auth:
  ldap:
    bind_dn_template: ["uid={username},dc=x"]
mem_limit: 2G
`
	data = strings.Replace(data, minimal, "", 1) + "auth_extra: 1\n"
	data = strings.Replace(data, "auth:\n", "auth:\n  authenticator: dummy\n  dummy: {password: pw}\n", 1)
	_, err := config.Parse([]byte(data), nil)
	errs := fieldErrors(t, err)
	want := map[string]string{
		"notebok":                    "did you mean notebook?",
		"public_ur":                  "did you mean public_url?",
		"listen.adress":              "did you mean listen.address?",
		"notebook.mem_limt":          "did you mean notebook.mem_limit?",
		"storage.nfs.sever":          "did you mean storage.nfs.server?",
		"lifecycle.cull.timout":      "did you mean lifecycle.cull.timeout?",
		"auth.ldap.bind_dn_template": "did you mean auth.ldap.bind_dn_templates?",
		"mem_limit":                  "did you mean notebook.mem_limit?",
		"auth_extra":                 "unknown key",
	}
	for key, fragment := range want {
		found := false
		for _, e := range errs {
			if e.Key == key {
				found = true
				if !strings.Contains(e.Msg, "unknown key") || !strings.Contains(e.Msg, fragment) || !strings.Contains(e.Msg, "(line ") {
					t.Errorf("%s: message %q lacks %q or its line", key, e.Msg, fragment)
				}
			}
		}
		if !found {
			t.Errorf("no error for unknown key %s", key)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("want %d errors, got %d:\n%v", len(want), len(errs), errs)
	}
}

func TestTypeErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml, key, msg string
	}{
		{"port not a number", "listen: {port: eighty}", "listen.port", `"eighty" is not a whole number`},
		{"port a float", "listen: {port: 80.5}", "listen.port", "whole number"},
		{"size", "notebook: {mem_limit: lots}", "notebook.mem_limit", "512M or 2G"},
		{"size with bad unit", "notebook: {mem_limit: 2X}", "notebook.mem_limit", "memory size"},
		{"duration without unit", "lifecycle: {cull: {timeout: 900}}", "lifecycle.cull.timeout", "with a unit"},
		{"duration in days", "session: {max_lifetime: 7d}", "session.max_lifetime", "168h"},
		{"bool", "auth: {allow_all: yes}", "auth.allow_all", "true or false"},
		{"float", "notebook: {cpu_limit: one}", "notebook.cpu_limit", "not a number"},
		{"float nan", "notebook: {cpu_limit: NaN}", "notebook.cpu_limit", "not a number"},
		{"list given a string", "notebook: {allowed_images: swarmhub/notebook:latest}", "notebook.allowed_images", "expected a list"},
		{"list of lists", "auth: {admin_users: [[a]]}", "auth.admin_users", "single non-empty value"},
		{"list with null", "auth: {admin_users: [a, ~]}", "auth.admin_users", "single non-empty value"},
		{"map given a list", "notebook: {env: [A=1]}", "notebook.env", "expected a mapping"},
		{"map value a list", "notebook: {env: {A: [1]}}", "notebook.env.A", "single value"},
		{"scalar given a map", "notebook: {image: {name: x}}", "notebook.image", "single value"},
		{"section given a scalar", "notebook: big", "notebook", "mapping of keys"},
		{"section given a list", "lifecycle: {cull: [1]}", "lifecycle.cull", "mapping of keys"},
		{"key set twice", "log: {level: info, level: debug}", "log.level", "twice"},
		{"merge key", "base: &b {port: 1}\nlisten: {<<: *b}", "listen.<<", "merge keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(tt.yaml+"\n"), devEnv)
			errs := fieldErrors(t, err)
			found := false
			for _, e := range errs {
				if e.Key == tt.key {
					found = true
					if !strings.Contains(e.Msg, tt.msg) {
						t.Errorf("message %q lacks %q", e.Msg, tt.msg)
					}
				}
			}
			if !found {
				t.Errorf("no error for %s:\n%v", tt.key, errs)
			}
		})
	}
}

func TestDecodeErrorHidesMisleadingValidation(t *testing.T) {
	// mem_limit fails to decode, so the default 2G stands in; a "guarantee
	// larger than limit" error would point at the wrong problem.
	_, err := config.Parse([]byte(minimal+"notebook: {mem_limit: 4 gigs, mem_guarantee: 3G}\n"), nil)
	errs := fieldErrors(t, err)
	if got := errs.Keys(); !slices.Equal(got, []string{"notebook.mem_limit"}) {
		t.Errorf("errors for %v, want only notebook.mem_limit:\n%v", got, errs)
	}
}

func TestUnknownKeyDoesNotHideValidation(t *testing.T) {
	// "mem_limit" at the top level is unknown; the real notebook.mem_limit
	// problem must still be reported.
	_, err := config.Parse([]byte(minimal+"mem_limit: 1G\nnotebook: {mem_guarantee: 3G}\n"), nil)
	errs := fieldErrors(t, err)
	if got := errs.Keys(); !slices.Equal(got, []string{"mem_limit", "notebook.mem_guarantee"}) {
		t.Errorf("errors for %v, want mem_limit and notebook.mem_guarantee:\n%v", got, errs)
	}
}

func TestParseRejectsWhatIsNotOneConfig(t *testing.T) {
	for name, data := range map[string]string{
		"syntax":        "listen: {port: 8000\n",
		"tabs":          "listen:\n\tport: 8000\n",
		"two documents": minimal + "---\n" + minimal,
		"a list":        "- a\n- b\n",
		"a scalar":      "hello\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(data), nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "YAML") && !strings.Contains(err.Error(), "mapping") {
				t.Errorf("error does not say what is wrong: %v", err)
			}
		})
	}
}

func TestAliasesResolve(t *testing.T) {
	data := `
auth:
  authenticator: dummy
  dummy: {password: &pw secret}
  admin_users: &admins [data8]
  allowed_users: *admins
redis: {password: *pw}
`
	c, err := config.Parse([]byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.Password != "secret" || !slices.Equal(c.Auth.AllowedUsers, []string{"data8"}) {
		t.Errorf("aliases not followed: %q %v", c.Redis.Password, c.Auth.AllowedUsers)
	}
}

func TestSelfReferencingAnchorDoesNotLoop(t *testing.T) {
	for _, data := range []string{
		"auth: &a {ldap: *a, dummy: *a}\n",
		"lifecycle: &l {cull: *l, archive: *l}\n",
		"notebook: &n {env: *n}\n",
		"a: &a [*a]\nauth: {admin_users: *a}\n",
	} {
		if _, err := config.Parse([]byte(data), nil); err == nil {
			t.Errorf("%q: no error", data)
		}
	}
}

func TestDefaultsRoundTrip(t *testing.T) {
	tricky := valid()
	tricky.Instance = "0"
	tricky.PublicURL = "https://hub.example.edu:8443"
	tricky.Notebook.CourseID = "true"
	tricky.Notebook.Env = map[string]string{"A": "yes", "B": "", "C": "a: b", "D": "#x"}
	tricky.Notebook.MemLimit = 1536 * config.MiB
	tricky.Notebook.CPUGuarantee = 0.125
	tricky.Auth.AdminUsers = []string{"null", "123"}
	tricky.Auth.LDAP.SearchFilter = "(&(a=b)(c=*))"
	tricky.Auth.Dummy.Password = " leading space: and # hash"
	tricky.Lifecycle.Cull.MaxAge = 90*time.Minute + 5*time.Second
	for name, c := range map[string]config.Config{"defaults": valid(), "tricky values": tricky} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := yaml.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := config.Parse(data, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("round trip changed the config:\n got %+v\nwant %+v\n%s", got, c, data)
			}
		})
	}
}

func TestMarshalWritesReadableValues(t *testing.T) {
	data, err := yaml.Marshal(valid())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mem_limit: 2G", "mem_guarantee: 512M", "timeout: 15m\n", "max_lifetime: 168h", "max_age: 0s", "schedule: '@every 1m'"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("output lacks %q:\n%s", want, data)
		}
	}
}
