package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/atomicfile"
)

func TestWriteFileReplacesWholeAndLeavesNoPartial(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "m.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := atomicfile.WriteFile(name, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(name); err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
	}
	if _, err := os.Stat(name + atomicfile.PartialSuffix); !os.IsNotExist(err) {
		t.Errorf("partial file left: %v", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o640); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
