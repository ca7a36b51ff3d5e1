// Package testenv starts the real components tests run against (Redis here;
// other files add more). Tests that need a component call a helper, which
// starts a private instance and stops it in t.Cleanup. When the component's
// binary is missing the test is skipped, unless CI is set, where a skipped
// test would hide a broken build machine, so it fails instead.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireBinary returns the path of the named program, looking in PATH and in
// the sbin directories Debian installs daemons into (often not on PATH).
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI is set, so this test may not be skipped (on Debian: apt-get install the package that provides %s)", name, name)
	}
	t.Skipf("skipping: %s is not installed (on Debian: apt-get install the package that provides %s)", name, name)
	return ""
}
