package config_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

var update = flag.Bool("update", false, "rewrite README-config.md from the struct tags")

const readmeHeader = `# Configuration keys

Generated from the struct tags in orchestrator/internal/config by
` + "`go test ./orchestrator/internal/config -run TestReadme -update`" + `; do not edit by hand.

Every key can be set in the YAML file (see stack/orchestrator.yaml) or by its
environment variable, which wins over the file. Lists in variables are
comma-separated (` + "`a,b`" + `), maps ` + "`k=v,k2=v2`" + `; a value starting with ` + "`[`" + ` or ` + "`{`" + ` is
read as YAML (for entries containing commas, such as LDAP DNs). Secrets can
also be read from a file: the ` + "`<key>_file`" + ` key or the ` + "`<VARIABLE>_FILE`" + `
variable (trailing newline trimmed); setting both forms is an error.
Durations are Go durations (` + "`90s`, `15m`, `168h`" + `); sizes are bytes or a number
with K, M, G or T (binary units, ` + "`1.5G`" + `).

`

func TestReadmeTableIsCurrent(t *testing.T) {
	want := readmeHeader + config.MarkdownTable()
	const name = "README-config.md"
	if *update {
		if err := os.WriteFile(name, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is out of date; run go test ./orchestrator/internal/config -run TestReadme -update", name)
	}
}

func TestEveryKeyIsDocumented(t *testing.T) {
	table := config.MarkdownTable()
	for _, k := range config.Keys() {
		if strings.TrimSpace(k.Help) == "" {
			t.Errorf("%s has no help text", k.Path)
		}
		if !strings.Contains(table, "| `"+k.Path+"` |") {
			t.Errorf("%s is missing from the table", k.Path)
		}
	}
	if n := strings.Count(table, "\n"); n != len(config.Keys())+2 {
		t.Errorf("table has %d lines for %d keys; a | in a cell is not escaped", n, len(config.Keys()))
	}
}
