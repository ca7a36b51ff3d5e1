package config_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

const (
	exampleFile     = "../../../stack/orchestrator.yaml"
	ldapExampleFile = "../../../stack/orchestrator.ldap-example.yaml"
)

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestExampleParsesAndShowsTheDefaults(t *testing.T) {
	data := readExample(t, exampleFile)
	got, err := config.Parse(data, nil)
	if err != nil {
		t.Fatalf("%s does not parse:\n%v", exampleFile, err)
	}
	// The example documents the defaults; only these differ, for the dev stack.
	want := config.Default()
	want.Auth.Authenticator = "dummy"
	want.Auth.Dummy.PasswordFile = "/run/secrets/dummy-password"
	if !reflect.DeepEqual(got, want) {
		gotY, _ := yaml.Marshal(got)
		wantY, _ := yaml.Marshal(want)
		t.Errorf("%s differs from the defaults:\n%s", exampleFile, lineDiff(string(wantY), string(gotY)))
	}
}

func TestExampleListsEveryKey(t *testing.T) {
	data := readExample(t, exampleFile)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	collectLeaves(doc.Content[0], "", present)
	for _, k := range config.Keys() {
		if present[k.Path] {
			continue
		}
		// A secret's _file sibling may be shown as a comment instead.
		name := k.Path[strings.LastIndex(k.Path, ".")+1:]
		if strings.HasSuffix(name, "_file") && strings.Contains(string(data), "# "+name+":") {
			continue
		}
		t.Errorf("%s does not show %s", exampleFile, k.Path)
	}
}

func collectLeaves(n *yaml.Node, prefix string, out map[string]bool) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		path := n.Content[i].Value
		if prefix != "" {
			path = prefix + "." + path
		}
		if v := n.Content[i+1]; v.Kind == yaml.MappingNode && !isMapKey(path) {
			collectLeaves(v, path, out)
		} else {
			out[path] = true
		}
	}
}

// isMapKey reports whether path is a map-valued key (its children are data).
func isMapKey(path string) bool {
	for _, k := range config.Keys() {
		if k.Path == path {
			return k.Type == "map"
		}
	}
	return false
}

func TestExampleLoadsWithTheDevSecret(t *testing.T) {
	secret := writeFile(t, "dummy-password", "generated\n")
	c, err := config.Load(exampleFile, env("SWARMHUB_AUTH_DUMMY_PASSWORD_FILE", secret))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Dummy.Password != "generated" {
		t.Errorf("password = %q", c.Auth.Dummy.Password)
	}
}

func TestLDAPExampleValidates(t *testing.T) {
	c, err := config.Parse(readExample(t, ldapExampleFile), nil)
	if err != nil {
		t.Fatalf("%s:\n%v", ldapExampleFile, err)
	}
	l := c.Auth.LDAP
	if c.Auth.Authenticator != "ldap" || l.TLS != "ldaps" || l.Port() != 636 ||
		!slices.Equal(l.BindDNTemplates, []string{"uid={username},ou=user,dc=example,dc=edu"}) ||
		c.Auth.UsernameMap["boninho"] != "data8" || c.Storage.Backend != "nfs" {
		t.Errorf("the LDAP example no longer shows the current setup: %+v", c.Auth)
	}
	// Loading needs no secret files either.
	if _, err := config.Load(ldapExampleFile, nil); err != nil {
		t.Fatal(err)
	}
}

func TestExampleFilesHaveNoTabs(t *testing.T) {
	for _, name := range []string{exampleFile, ldapExampleFile} {
		if strings.Contains(string(readExample(t, name)), "\t") {
			t.Errorf("%s contains tabs", name)
		}
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("- " + wl + "\n+ " + gl + "\n")
		}
	}
	return b.String()
}
