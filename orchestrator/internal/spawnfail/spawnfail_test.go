package spawnfail_test

import (
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawnfail"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, msg string
		want      spawnfail.Class
	}{
		{"missing image", "No such image: x:y", spawnfail.Image},
		{"unpullable image", "task rejected: pull access denied for x, repository does not exist", spawnfail.Image},
		{"nfs mount", "failed to mount local volume: mount :/export/users/a: no such device", spawnfail.Mount},
		{"workspace not writable", "create workspace /srv/users/a: permission denied", spawnfail.Mount},
		{"oom killed", "task: non-zero exit (137): OOMKilled", spawnfail.OOM},
		{"exit 137 without the word", "task failed: non-zero exit (137)", spawnfail.OOM},
		{"timeout", "the server did not become ready within 2m0s (task running)", spawnfail.Timeout},
		{"no node", "no suitable node (insufficient resources on 3 nodes)", spawnfail.Resources},
		{"timeout caused by a full cluster", "the server did not become ready within 2m0s (task pending: no suitable node (insufficient resources on 1 node))", spawnfail.Resources},
		{"removed while starting", "the service jupyter-a was removed while the server was starting", spawnfail.Stopped},
		{"docker api", "create service jupyter-a: Error response from daemon: rpc error", spawnfail.Docker},
		{"unknown", "something nobody foresaw", spawnfail.Other},
		{"empty", "", spawnfail.Other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := spawnfail.Classify(tc.msg); got != tc.want {
				t.Fatalf("Classify(%q) = %q, want %q", tc.msg, got, tc.want)
			}
		})
	}
}

// The spawner stores message+Hint(message); the metric and the home page
// classify that text, so the hint must not move it to another class.
func TestHintKeepsTheClass(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		"No such image: x:y",
		"failed to mount local volume: mount :/export/users/a: no such device",
		"invalid mount config: mount /srv/users/a: no such file or directory",
		"task failed: non-zero exit (137)",
		"no suitable node (insufficient resources on 3 nodes)",
		"the server did not become ready within 2m0s (task running)",
	} {
		class := spawnfail.Classify(msg)
		if got := spawnfail.Classify(msg + spawnfail.Hint(msg)); got != class {
			t.Errorf("Classify(%q + hint) = %q, want %q", msg, got, class)
		}
	}
}

func TestHint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"No such image: x:y", true},
		{"mount :/export/users/a: no such device", true},
		{"mount /srv/users/a: no such file or directory", true},
		{"OOMKilled", true},
		{"no suitable node", true},
		{"the server did not become ready within 2m0s", false},
		{"something nobody foresaw", false},
	} {
		if got := spawnfail.Hint(tc.msg); (got != "") != tc.want {
			t.Errorf("Hint(%q) = %q, want a hint: %v", tc.msg, got, tc.want)
		}
	}
}
