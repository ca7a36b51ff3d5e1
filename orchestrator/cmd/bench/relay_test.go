package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// The control port sets the target; the TCP relay and the lean forwarder
// then carry whole HTTP exchanges to it, keep-alive included.
func TestRelaysCarryRequestsToTheTarget(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.URL.Path)
	}))
	defer up.Close()

	var tgt relayTarget
	ctl := httptest.NewServer(&tgt)
	defer ctl.Close()
	for _, c := range []struct {
		body string
		want int
	}{{"no port", http.StatusBadRequest}, {up.Listener.Addr().String(), http.StatusNoContent}} {
		req, _ := http.NewRequest(http.MethodPut, ctl.URL+"/target", strings.NewReader(c.body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Fatalf("PUT /target %q: status %d, want %d", c.body, res.StatusCode, c.want)
		}
	}

	for name, relay := range map[string]func(context.Context, net.Listener, *relayTarget) error{"tcp": relayTCP, "lean": relayLean} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- relay(ctx, ln, &tgt) }()
		client := &http.Client{Transport: &http.Transport{}}
		for _, path := range []string{"/a", "/b"} {
			res, err := client.Get("http://" + ln.Addr().String() + path)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(b) != "hello "+path {
				t.Fatalf("%s: GET %s through the relay: %q", name, path, b)
			}
		}
		client.CloseIdleConnections()
		cancel()
		ln.Close()
		if err := <-done; err != nil {
			t.Fatalf("%s relay ended with %v after its listener closed", name, err)
		}
	}
}

// The synchronous transport carries a ReverseProxy's GETs over one kept
// connection.
func TestSyncTransportKeepsItsConnection(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.URL.Path)
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	target, _ := url.Parse(up.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &syncTransport{}
	front := httptest.NewServer(rp)
	defer front.Close()
	for _, path := range []string{"/a", "/b", "/c"} {
		res, err := front.Client().Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "hello "+path {
			t.Fatalf("GET %s: %q", path, b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("three requests opened %d upstream connections, want 1", n)
	}
}
