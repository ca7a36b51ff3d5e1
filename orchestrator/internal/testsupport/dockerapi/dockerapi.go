// Package dockerapi is a fake Docker Engine API for tests that need a
// reachable daemon but no containers: it answers ping, version and info, and
// lists no services, tasks or networks.
package dockerapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// apiPath strips the optional /vX.Y prefix the client adds.
var apiPath = regexp.MustCompile(`^/v[0-9.]+`)

// Start serves the fake API until the test ends and returns its host for
// the Docker client (tcp://127.0.0.1:PORT).
func Start(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
}

// Handler answers the endpoints the orchestrator calls when it starts.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		var body any
		switch p := apiPath.ReplaceAllString(r.URL.Path, ""); p {
		case "/_ping":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("OK"))
			return
		case "/version":
			body = map[string]any{"Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12"}
		case "/info":
			body = map[string]any{"Swarm": map[string]any{"LocalNodeState": "active", "ControlAvailable": true}}
		case "/services", "/tasks", "/networks", "/nodes", "/containers/json":
			body = []any{}
		default:
			w.WriteHeader(http.StatusNotFound)
			body = map[string]string{"message": "fake docker: no such endpoint " + p}
		}
		_ = json.NewEncoder(w).Encode(body)
	})
}
