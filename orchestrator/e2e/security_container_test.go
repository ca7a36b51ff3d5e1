package e2e_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// e2ePidsLimit is small so that the fork bomb is quick; the default is 2048.
const e2ePidsLimit = 256

// droppedCaps are the bits of the default notebook.cap_drop (NET_RAW,
// MKNOD, AUDIT_WRITE, SETFCAP, SYS_CHROOT) in /proc's CapBnd mask.
var droppedCaps = map[string]uint{"NET_RAW": 13, "SYS_CHROOT": 18, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}

var (
	noNewPrivsRE = regexp.MustCompile(`NoNewPrivs:\s*(\d)`)
	capBndRE     = regexp.MustCompile(`CapBnd:\s*([0-9a-f]+)`)
	bombRE       = regexp.MustCompile(`forks (\d+) errno (\d+)`)
)

// forkBomb forks sleeping children until fork fails, reports the count in
// bomb-held, holds them until bomb-release appears, then reaps them.
const forkBomb = `import os, time, signal
kids, err = [], 0
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        kids.append(pid)
except OSError as e:
    err = e.errno
with open(os.path.expanduser('~/bomb-held'), 'w') as f:
    f.write(str(len(kids)))
deadline = time.time() + 300
while not os.path.exists(os.path.expanduser('~/bomb-release')) and time.time() < deadline:
    time.sleep(0.5)
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
print("forks", len(kids), "errno", err)
`

// TestContainerHardening starts a student's server from each Jupyter image
// the suite uses (tinynotebook runs no code) with the default hardening and
// a small pids limit: a cell sees no_new_privs and the reduced capability
// bounding set, and a fork bomb stops at the pids limit while another
// student's server keeps running cells.
func TestContainerHardening(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	for _, image := range []string{"notebook-debian", "notebook-server", "notebook-singleuser"} {
		t.Run(image, func(t *testing.T) {
			t.Parallel()
			h := deployWith(t, "harden-"+strings.TrimPrefix(image, "notebook-"), func(h *hub) string {
				return strings.Replace(testConfig(h, defaultLifecycle), "  concurrent_spawn_limit: 10\n",
					"  concurrent_spawn_limit: 10\n  pids_limit: "+strconv.Itoa(e2ePidsLimit)+"\n", 1)
			}, "SWARMHUB_NOTEBOOK_IMAGE=swarmhub/"+image+":"+imageTag())
			alice, bob := h.student(t, "alice"), h.student(t, "bob")
			var wg sync.WaitGroup
			for _, b := range []*browser{alice, bob} {
				wg.Go(func() { b.startServer(b.user) })
			}
			wg.Wait()
			if image == "notebook-singleuser" {
				// jupyterhub-singleuser logs its student in by OAuth first.
				alice.serverLogin(t, "alice")
				bob.serverLogin(t, "bob")
			}

			status, err := alice.runCode("alice", "print(open('/proc/self/status').read())")
			if err != nil {
				t.Fatal(err)
			}
			if m := noNewPrivsRE.FindStringSubmatch(status); m == nil || m[1] != "1" {
				t.Errorf("the kernel runs without no_new_privs:\n%s", status)
			}
			m := capBndRE.FindStringSubmatch(status)
			if m == nil {
				t.Fatalf("no CapBnd in:\n%s", status)
			}
			bnd, err := strconv.ParseUint(m[1], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			for name, bit := range droppedCaps {
				if bnd&(1<<bit) != 0 {
					t.Errorf("CAP_%s is still in the bounding set %s", name, m[1])
				}
			}

			ws := filepath.Join(h.root, "users", "alice")
			bomb := make(chan struct {
				out string
				err error
			}, 1)
			go func() {
				out, err := alice.runCodeFor("alice", forkBomb, 6*time.Minute)
				bomb <- struct {
					out string
					err error
				}{out, err}
			}()
			// Wait until the bomb holds every process it could get.
			deadline := time.Now().Add(5 * time.Minute) // hang guard
			for {
				if b, err := os.ReadFile(filepath.Join(ws, "bomb-held")); err == nil && len(b) > 0 {
					t.Logf("fork bomb holds %s processes", b)
					break
				}
				select {
				case r := <-bomb:
					t.Fatalf("the fork bomb cell ended before holding its processes: %q %v", r.out, r.err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the fork bomb never reported")
				}
				time.Sleep(time.Second)
			}
			// bob's server is untouched while alice's is full.
			runOnePlusOne(t, bob)

			if err := os.WriteFile(filepath.Join(ws, "bomb-release"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			r := <-bomb
			if r.err != nil {
				t.Fatalf("fork bomb cell: %v", r.err)
			}
			bm := bombRE.FindStringSubmatch(r.out)
			if bm == nil {
				t.Fatalf("fork bomb output %q", r.out)
			}
			forks, _ := strconv.Atoi(bm[1])
			if forks >= e2ePidsLimit || bm[2] != "11" { // EAGAIN
				t.Fatalf("fork bomb made %d forks and stopped with errno %s; want fewer than %d and EAGAIN (11)", forks, bm[2], e2ePidsLimit)
			}
			// alice's server recovers once the processes are gone.
			runOnePlusOne(t, alice)
		})
	}
}
