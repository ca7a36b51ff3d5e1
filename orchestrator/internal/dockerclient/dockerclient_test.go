package dockerclient_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/dockerclient"
)

// A fake engine (pure logic: the client's requests are what is counted).
func TestNewCountsEveryRequest(t *testing.T) {
	var seen atomic.Uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ID":"x"}`))
	}))
	t.Cleanup(srv.Close)
	c, cnt, err := dockerclient.New("tcp://" + strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if _, err := c.Info(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// Version negotiation (a ping) comes first.
	if got := cnt.Requests(); got != seen.Load() || got != 4 {
		t.Errorf("counted %d requests, the engine saw %d, want 4", got, seen.Load())
	}
}
