package web_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// Issue 12: /hub/api answers as JupyterHub 5 does, so its clients work.

func TestAPIVersionIsJupyterHubsAndBuildIsSeparate(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/hub/api", "/hub/api/", "/hub/api/info"} {
		resp, body := e.client(t).do("GET", p, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
		var got struct {
			Version  string `json:"version"`
			Swarmhub struct {
				Version string `json:"version"`
			} `json:"swarmhub"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s: %v: %s", p, err, body)
		}
		if got.Version != web.JupyterHubAPIVersion || got.Swarmhub.Version != "test" {
			t.Fatalf("%s: want version %q and swarmhub.version %q: %s", p, web.JupyterHubAPIVersion, "test", body)
		}
	}
}
