package config_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

func TestServicesLoadTheirTokens(t *testing.T) {
	tokenFile := writeFile(t, "culler-token", "s3cret-culler-token\n")
	yml := `auth: {authenticator: dummy, dummy: {password: pw}}
services:
  - name: idle-culler
    api_token_file: ` + tokenFile + `
    scopes: [list:users, read:users:activity, read:servers, delete:servers, admin:users]
`
	c, err := config.Load(writeFile(t, "c.yaml", yml), env())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 1 || c.Services[0].Name != "idle-culler" || c.Services[0].APIToken != "s3cret-culler-token" ||
		!slices.Contains(c.Services[0].Scopes, "delete:servers") {
		t.Fatalf("services = %+v", c.Services)
	}
	out, err := yaml.Marshal(c.Redacted())
	if err != nil || strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "idle-culler") {
		t.Errorf("redacted config: %v\n%s", err, out)
	}
	// The environment variable takes the list as YAML.
	c, err = config.Load("", env("SWARMHUB_AUTH_AUTHENTICATOR", "dummy", "SWARMHUB_AUTH_DUMMY_PASSWORD", "pw",
		"SWARMHUB_SERVICES", "[{name: a, api_token_file: "+tokenFile+", scopes: [read:servers]}]"))
	if err != nil || len(c.Services) != 1 || c.Services[0].APIToken != "s3cret-culler-token" {
		t.Errorf("services from the environment = %+v, %v", c.Services, err)
	}
}

func TestServiceProblemsNameTheKey(t *testing.T) {
	tokenFile := writeFile(t, "token", "t\n")
	for _, tt := range []struct{ name, services, key, msg string }{
		{"unknown scope", `[{name: a, api_token_file: ` + tokenFile + `, scopes: [read:servers, reed:users]}]`, "services[0].scopes", `"reed:users" is not a JupyterHub scope`},
		{"no name", `[{api_token_file: ` + tokenFile + `, scopes: [read:servers]}]`, "services[0].name", "needs a name"},
		{"same name", `[{name: a, api_token_file: ` + tokenFile + `, scopes: [read:servers]}, {name: a, api_token_file: ` + tokenFile + `, scopes: [read:servers]}]`, "services[1].name", "unique"},
		{"no token file", `[{name: a, scopes: [read:servers]}]`, "services[0].api_token_file", "needs a file"},
		{"unreadable token file", `[{name: a, api_token_file: ` + filepath.Join(t.TempDir(), "none") + `, scopes: [read:servers]}]`, "services[0].api_token_file", "cannot read"},
		{"no scopes", `[{name: a, api_token_file: ` + tokenFile + `}]`, "services[0].scopes", "can do nothing"},
		{"unknown key", `[{name: a, api_token: x, api_token_file: ` + tokenFile + `, scopes: [read:servers]}]`, "services[0].api_token", "unknown key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeFile(t, "c.yaml", "auth: {authenticator: dummy, dummy: {password: pw}}\nservices: "+tt.services+"\n"), env())
			var errs *config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want *config.Errors", err)
			}
			for _, e := range *errs {
				if e.Key == tt.key && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("err = %v, want %s: %s", err, tt.key, tt.msg)
		})
	}
}
