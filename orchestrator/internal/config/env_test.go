package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

// env builds a getenv from pairs; unset names give "".
func env(pairs ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestEnvOverrides(t *testing.T) {
	file := `
notebook:
  image: from/file:1
  placement_constraints: [node.role==manager]
  env: {FROM_FILE: "1"}
auth:
  authenticator: dummy
  dummy: {password: pw}
`
	tests := []struct {
		name  string
		env   []string
		check func(c config.Config) (got, want any)
	}{
		{"string", []string{"SWARMHUB_NOTEBOOK_IMAGE", "from/env:2"},
			func(c config.Config) (any, any) { return c.Notebook.Image, "from/env:2" }},
		{"int", []string{"SWARMHUB_LISTEN_PORT", "9000"},
			func(c config.Config) (any, any) { return c.Listen.Port, 9000 }},
		{"bool", []string{"SWARMHUB_AUTH_ADMIN_ACCESS", "true"},
			func(c config.Config) (any, any) { return c.Auth.AdminAccess, true }},
		{"float", []string{"SWARMHUB_NOTEBOOK_CPU_LIMIT", "2.5"},
			func(c config.Config) (any, any) { return c.Notebook.CPULimit, 2.5 }},
		{"duration", []string{"SWARMHUB_LIFECYCLE_CULL_TIMEOUT", "20s"},
			func(c config.Config) (any, any) { return c.Lifecycle.Cull.Timeout, 20 * time.Second }},
		{"size", []string{"SWARMHUB_NOTEBOOK_MEM_LIMIT", "4G"},
			func(c config.Config) (any, any) { return c.Notebook.MemLimit, 4 * config.GiB }},
		{"nested in section", []string{"SWARMHUB_REDIS_ADDRESS", "127.0.0.1:6380"},
			func(c config.Config) (any, any) { return c.Redis.Address, "127.0.0.1:6380" }},
		{"list replaces the file's list", []string{"SWARMHUB_NOTEBOOK_PLACEMENT_CONSTRAINTS", " node.role==worker, node.labels.gpu!=true ,"},
			func(c config.Config) (any, any) {
				return c.Notebook.PlacementConstraints, []string{"node.role==worker", "node.labels.gpu!=true"}
			}},
		{"list as YAML for entries with commas", []string{"SWARMHUB_AUTH_ADMIN_USERS", `["data8"]`,
			"SWARMHUB_AUTH_AUTHENTICATOR", "ldap", "SWARMHUB_AUTH_LDAP_SERVER_ADDRESS", "ldap.example.edu",
			"SWARMHUB_AUTH_DUMMY_PASSWORD", "", // keep the file's
			"SWARMHUB_AUTH_LDAP_BIND_DN_TEMPLATES", `["uid={username},ou=user,dc=example,dc=edu", "cn={username},ou=staff,dc=example,dc=edu"]`},
			func(c config.Config) (any, any) {
				return c.Auth.LDAP.BindDNTemplates, []string{"uid={username},ou=user,dc=example,dc=edu", "cn={username},ou=staff,dc=example,dc=edu"}
			}},
		{"map replaces the file's map", []string{"SWARMHUB_AUTH_USERNAME_MAP", "boninho=data8, abedjan = data8"},
			func(c config.Config) (any, any) {
				return c.Auth.UsernameMap, map[string]string{"boninho": "data8", "abedjan": "data8"}
			}},
		{"map as YAML", []string{"SWARMHUB_NOTEBOOK_ENV", `{GREETING: "a=b, c"}`},
			func(c config.Config) (any, any) { return c.Notebook.Env, map[string]string{"GREETING": "a=b, c"} }},
		{"map value with equals", []string{"SWARMHUB_NOTEBOOK_ENV", "OPTS=a=b"},
			func(c config.Config) (any, any) { return c.Notebook.Env, map[string]string{"OPTS": "a=b"} }},
		{"image contracts with a tag", []string{"SWARMHUB_NOTEBOOK_IMAGE_CONTRACTS", "from/file:1=jupyterhub-singleuser"},
			func(c config.Config) (any, any) {
				return c.Notebook.ImageContracts, map[string]string{"from/file:1": "jupyterhub-singleuser"}
			}},
		{"empty value leaves the file's", []string{"SWARMHUB_NOTEBOOK_IMAGE", ""},
			func(c config.Config) (any, any) { return c.Notebook.Image, "from/file:1" }},
		{"unrelated SWARMHUB_ variables are ignored", []string{"SWARMHUB_TEST_REDIS", "127.0.0.1:1", "SWARMHUB_NOTEBOOK", "x"},
			func(c config.Config) (any, any) { return c.Notebook.Image, "from/file:1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse([]byte(file), env(tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tt.check(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestEnvErrorsNameKeyAndVariable(t *testing.T) {
	tests := []struct {
		name, variable, value, key string
	}{
		{"int", "SWARMHUB_LISTEN_PORT", "http", "listen.port"},
		{"duration", "SWARMHUB_SESSION_IDLE_TIMEOUT", "8", "session.idle_timeout"},
		{"bool", "SWARMHUB_AUTH_ALLOW_ALL", "sure", "auth.allow_all"},
		{"map without equals", "SWARMHUB_NOTEBOOK_ENV", "A=1,B", "notebook.env"},
		{"bad YAML list", "SWARMHUB_AUTH_ADMIN_USERS", "[a, ", "auth.admin_users"},
		{"validation of an env value", "SWARMHUB_LOG_LEVEL", "chatty", "log.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(minimal), env(tt.variable, tt.value))
			errs := fieldErrors(t, err)
			if got := errs.Keys(); !slices.Equal(got, []string{tt.key}) {
				t.Fatalf("errors for %v, want %s:\n%v", got, tt.key, errs)
			}
			if tt.name != "validation of an env value" && !strings.Contains(errs[0].Msg, tt.variable) {
				t.Errorf("message %q does not name %s", errs[0].Msg, tt.variable)
			}
		})
	}
}

func TestEveryKeyHasItsOwnVariable(t *testing.T) {
	seen := map[string]string{}
	for _, k := range config.Keys() {
		if want := "SWARMHUB_" + strings.ToUpper(strings.ReplaceAll(k.Path, ".", "_")); k.Env != want {
			t.Errorf("%s: env %s, want %s", k.Path, k.Env, want)
		}
		if other, dup := seen[k.Env]; dup {
			t.Errorf("%s and %s share %s", k.Path, other, k.Env)
		}
		seen[k.Env] = k.Path
	}
	for _, want := range []string{"SWARMHUB_NOTEBOOK_IMAGE", "SWARMHUB_REDIS_ADDRESS", "SWARMHUB_LISTEN_PORT", "SWARMHUB_AUTH_LDAP_BIND_PASSWORD_FILE"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("no key for %s", want)
		}
	}
}

func TestEveryKeyCanBeSetByEnvironment(t *testing.T) {
	// A value of the right type for each key; setting it must change the
	// config, which proves the variable reaches its field.
	sample := map[string]string{
		"string": "x1", "bool": "true", "int": "7", "number": "0.5", "duration": "7s",
		"size": "7M", "list": "a1,b1", "map": "k=v",
	}
	base, err := config.Parse(nil, devEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range config.Keys() {
		val := sample[k.Type]
		if val == k.Default {
			val = map[string]string{"true": "false", "7": "9"}[val]
		}
		if k.Path == "auth.authenticator" || k.Path == "auth.dummy.password" {
			continue // devEnv sets them
		}
		getenv := func(name string) string {
			if name == k.Env {
				return val
			}
			return devEnv(name)
		}
		// Validation may reject the sample value; decoding must still apply it.
		got, _ := config.Parse(nil, getenv)
		if reflect.DeepEqual(got, base) {
			t.Errorf("%s=%s did not change %s", k.Env, val, k.Path)
		}
	}
}

func TestSecretFromFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "dummy-password")
	if err := os.WriteFile(secret, []byte("s3cret\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		yaml string
		env  []string
	}{
		{"YAML _file key", "auth: {authenticator: dummy, dummy: {password_file: " + secret + "}}", nil},
		{"_FILE variable", "auth: {authenticator: dummy}", []string{"SWARMHUB_AUTH_DUMMY_PASSWORD_FILE", secret}},
		{"_FILE variable replaces inline YAML", "auth: {authenticator: dummy, dummy: {password: old}}", []string{"SWARMHUB_AUTH_DUMMY_PASSWORD_FILE", secret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(writeFile(t, "c.yaml", tt.yaml), env(tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if c.Auth.Dummy.Password != "s3cret" {
				t.Errorf("password = %q, want s3cret (trailing newlines trimmed)", c.Auth.Dummy.Password)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("a loaded config must stay valid: %v", err)
			}
		})
	}
}

func TestInlineVariableReplacesFileFromYAML(t *testing.T) {
	c, err := config.Load(writeFile(t, "c.yaml", "auth: {authenticator: dummy, dummy: {password_file: /nonexistent}}"),
		env("SWARMHUB_AUTH_DUMMY_PASSWORD", "from-env"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Dummy.Password != "from-env" {
		t.Errorf("password = %q", c.Auth.Dummy.Password)
	}
}

func TestSecretBothInlineAndFile(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		key        string
		mentions   []string
	}{
		{"in YAML", "redis: {password: a, password_file: /run/secrets/r}", nil,
			"redis.password", []string{"redis.password_file"}},
		{"in environment", "", []string{"SWARMHUB_AUTH_LDAP_BIND_PASSWORD", "a", "SWARMHUB_AUTH_LDAP_BIND_PASSWORD_FILE", "/f"},
			"auth.ldap.bind_password", []string{"auth.ldap.bind_password_file", "SWARMHUB_AUTH_LDAP_BIND_PASSWORD_FILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string {
				return env(append(tt.env, "SWARMHUB_AUTH_AUTHENTICATOR", "dummy", "SWARMHUB_AUTH_DUMMY_PASSWORD", "pw")...)(k)
			}
			for fn, load := range map[string]func() error{
				"Parse": func() error { _, err := config.Parse([]byte(tt.yaml), getenv); return err },
				"Load":  func() error { _, err := config.Load(writeFile(t, "c.yaml", tt.yaml), getenv); return err },
			} {
				errs := fieldErrors(t, load())
				if got := errs.Keys(); !slices.Equal(got, []string{tt.key}) {
					t.Fatalf("%s: errors for %v, want %s:\n%v", fn, got, tt.key, errs)
				}
				for _, m := range tt.mentions {
					if !strings.Contains(errs[0].Msg, m) {
						t.Errorf("%s: %q does not mention %s", fn, errs[0].Msg, m)
					}
				}
			}
		})
	}
}

func TestSecretFileProblems(t *testing.T) {
	empty := writeFile(t, "empty", "\n")
	tests := []struct {
		name, file, msg string
	}{
		{"missing", filepath.Join(t.TempDir(), "nope"), "cannot read"},
		{"empty", empty, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load("", env("SWARMHUB_AUTH_AUTHENTICATOR", "dummy", "SWARMHUB_AUTH_DUMMY_PASSWORD_FILE", tt.file))
			errs := fieldErrors(t, err)
			// Only the file's key: "password required" would repeat the problem.
			if got := errs.Keys(); !slices.Equal(got, []string{"auth.dummy.password_file"}) || !strings.Contains(errs[0].Msg, tt.msg) {
				t.Errorf("got:\n%v\nwant one auth.dummy.password_file error mentioning %q", errs, tt.msg)
			}
		})
	}
}

func TestParseKeepsSecretFileNames(t *testing.T) {
	c, err := config.Parse([]byte("auth: {authenticator: dummy, dummy: {password_file: /run/secrets/dummy-password}}"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Dummy.PasswordFile != "/run/secrets/dummy-password" || c.Auth.Dummy.Password != "" {
		t.Errorf("Parse must not read secret files: %+v", c.Auth.Dummy)
	}
}

func TestLoad(t *testing.T) {
	t.Run("no file is defaults plus environment", func(t *testing.T) {
		c, err := config.Load("", devEnv)
		if err != nil {
			t.Fatal(err)
		}
		if want := withPassword(valid(), "pw"); !reflect.DeepEqual(c, want) {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := config.Load(filepath.Join(t.TempDir(), "none.yaml"), devEnv)
		if err == nil || !strings.Contains(err.Error(), "none.yaml") {
			t.Errorf("error %v does not name the file", err)
		}
	})
	t.Run("nil getenv", func(t *testing.T) {
		if _, err := config.Load(writeFile(t, "c.yaml", minimal), nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUnknownEnv(t *testing.T) {
	got := config.UnknownEnv([]string{"PATH=/bin", "SWARMHUB_NOTEBOOK_IMAGE=x", "SWARMHUB_NOTEBOK_IMAGE=x", "SWARMHUB_TEST_REDIS=1", "SWARMHUB_REDIS_PASSWORD_FILE=/f"})
	if want := []string{"SWARMHUB_NOTEBOK_IMAGE", "SWARMHUB_TEST_REDIS"}; !slices.Equal(got, want) {
		t.Errorf("UnknownEnv = %v, want %v", got, want)
	}
}
