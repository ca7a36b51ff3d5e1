package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestDropUpstreamEndsRequestsToALostServer: a request waiting on a server
// whose node was declared down ends when the spawner reports the address
// gone, instead of waiting for an answer that never comes.
func TestDropUpstreamEndsRequestsToALostServer(t *testing.T) {
	e := newEnv(t, false)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	lost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release // a dead node never answers
	}))
	t.Cleanup(lost.Close)
	t.Cleanup(func() { close(release) })
	addr := lost.Listener.Addr().String()
	e.res.mu.Lock()
	e.res.addr["alice"] = addr
	e.res.mu.Unlock()

	got := make(chan int, 1)
	go func() {
		r, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/user/alice/api/contents", nil)
		r.AddCookie(&http.Cookie{Name: accessCookie, Value: "s-alice"})
		res, err := e.client.Do(r)
		if err != nil {
			got <- 0
			return
		}
		res.Body.Close()
		got <- res.StatusCode
	}()
	<-arrived
	e.p.DropUpstream("10.9.9.9:8888") // another address: nothing happens
	e.p.DropUpstream(addr)
	select {
	case code := <-got:
		if code != http.StatusBadGateway {
			t.Errorf("status %d, want 502", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the request to the lost server still waits after DropUpstream")
	}
}
