package e2e_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestRedisSnapshotRestore is the operator's path of README's "Backups":
// a snapshot written inside the running stack, Redis wiped, restored with
// scripts/restore-redis, and a user created through the API and a token
// made before the snapshot work again.
func TestRedisSnapshotRestore(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	h := deployTiny(t, "redisbackup", "")
	admin := h.admin(t)
	if code, body := admin.api(http.MethodPost, "/hub/api/users", map[string]any{"usernames": []string{"frank"}}); code != http.StatusCreated {
		t.Fatalf("add frank: %d %s", code, body)
	}
	alice := h.student(t, "alice")
	code, body := alice.api(http.MethodPost, "/hub/api/users/alice/tokens", map[string]string{"note": "before the backup"})
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, body)
	}
	var tok struct{ Token string }
	_ = json.Unmarshal(body, &tok)

	env := []string{"SWARMHUB_STACK=" + h.name}
	out := sh(t, env, "scripts/restore-redis", "--snapshot")
	if !strings.Contains(out, "wrote snapshot") || !strings.Contains(out, "user ") {
		t.Fatalf("restore-redis --snapshot:\n%s", out)
	}

	redis := strings.Fields(sh(t, nil, "docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+h.name+"_redis"))
	if len(redis) == 0 {
		t.Fatal("no Redis container of the stack on this node")
	}
	sh(t, nil, "docker", "exec", redis[0], "redis-cli", "FLUSHALL")
	if n := strings.TrimSpace(sh(t, nil, "docker", "exec", redis[0], "redis-cli", "EXISTS", "swarmhub:user:frank")); n != "0" {
		t.Fatalf("frank's record after FLUSHALL: EXISTS says %s", n)
	}

	// The running hub may write keys again meanwhile (activity, events), so
	// the restore is confirmed; it saves them first when there are any.
	out = sh(t, env, "scripts/restore-redis", "--yes", "latest")
	want := 1
	if strings.Contains(out, "saved the keys Redis held") {
		want = 2
	}
	if !strings.Contains(out, "restored snapshot") || !strings.Contains(out, "token ") {
		t.Fatalf("restore-redis latest:\n%s", out)
	}
	// A fresh login reads everything from the restored Redis.
	admin = h.admin(t)
	if code, body := admin.api(http.MethodGet, "/hub/api/users/frank", nil); code != http.StatusOK {
		t.Errorf("frank after the restore: %d %s", code, body)
	}
	if code, body := tokenCall(t, h, http.MethodGet, "/hub/api/user", tok.Token); code != http.StatusOK || !strings.Contains(string(body), `"name":"alice"`) {
		t.Errorf("alice's token after the restore: %d %s", code, body)
	}
	if out := sh(t, env, "scripts/restore-redis", "--list"); strings.Count(out, " keys ") != want {
		t.Errorf("--list shows %d snapshots, want the snapshot and any saved before the restore (%d):\n%s", strings.Count(out, " keys "), want, out)
	}
}
