package config_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

var update = flag.Bool("update", false, "rewrite the configuration table in the repository's README.md")

const (
	readmePath  = "../../../README.md"
	tableStart  = "<!-- config-table:start -->\n"
	tableEnd    = "<!-- config-table:end -->"
	readmeIntro = `Durations are Go durations (` + "`90s`, `15m`, `168h`" + `); sizes are bytes or a number
with K, M, G or T (binary units, ` + "`1.5G`" + `). Lists in variables are comma-separated
(` + "`a,b`" + `), maps ` + "`k=v,k2=v2`" + `; a value starting with ` + "`[`" + ` or ` + "`{`" + ` is read as YAML.
Generated from the struct tags by ` + "`go test ./orchestrator/internal/config -run TestReadme -update`" + `.

`
)

// TestReadmeTableIsCurrent keeps the README's table of every key in step
// with the struct tags.
func TestReadmeTableIsCurrent(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, tableStart), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", tableStart, tableEnd)
	}
	want := readmeIntro + config.MarkdownTable()
	got := doc[i+len(tableStart) : j]
	if *update {
		doc = doc[:i+len(tableStart)] + want + doc[j:]
		if err := os.WriteFile(readmePath, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("README.md's configuration table is out of date; run go test ./orchestrator/internal/config -run TestReadme -update")
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
