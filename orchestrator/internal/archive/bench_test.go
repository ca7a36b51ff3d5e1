package archive_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkArchive compares StreamWorkspace with `tar czf` on the same tree:
// 25 MB of random bytes (data sets, images) and 25 MB of text (notebooks,
// CSV). b.SetBytes makes `go test -bench` report MB/s for each.
//
//	go test -run '^$' -bench Archive -benchtime 3x ./orchestrator/internal/archive/
func BenchmarkArchive(b *testing.B) {
	root := b.TempDir()
	ws := filepath.Join(root, "users", "alice")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		b.Fatal(err)
	}
	writeRandom(b, filepath.Join(ws, "random.bin"), 25<<20, 7)
	line := strings.Repeat(`{"cell_type": "code", "source": ["df = pd.read_csv('data.csv')\n"], "outputs": []},`, 4)
	var text strings.Builder
	for i := 0; text.Len() < 25<<20; i++ {
		text.WriteString(line)
		text.WriteString(strings.Repeat("x", i%97))
		text.WriteByte('\n')
	}
	mustWrite(b, filepath.Join(ws, "notebooks", "big.ipynb"), text.String(), 0o644)
	total := int64(25<<20 + text.Len())

	b.Run("swarmhub", func(b *testing.B) {
		a := newArchiver(b, root, newClock(), 0)
		b.SetBytes(total)
		for b.Loop() {
			cw := &counter{}
			if err := a.StreamWorkspace(b.Context(), cw, "alice"); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cw.n)/float64(total), "ratio")
		}
	})
	b.Run("tar-czf", func(b *testing.B) {
		tarPath, err := exec.LookPath("tar")
		if err != nil {
			b.Skip("tar not installed")
		}
		out := filepath.Join(b.TempDir(), "out.tar.gz")
		b.SetBytes(total)
		for b.Loop() {
			cmd := exec.Command(tarPath, "czf", out, "-C", ws, ".")
			if msg, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("tar czf: %v\n%s", err, msg)
			}
			fi, _ := os.Stat(out)
			b.ReportMetric(float64(fi.Size())/float64(total), "ratio")
		}
	})
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*counter)(nil)
