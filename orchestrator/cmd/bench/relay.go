package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The relay runs in its own container on the bench network (scripts/bench
// starts it) and gives the proxy suite two reference hops to a user server
// beside the orchestrator: a byte-copying TCP relay (the cost of an extra
// hop alone) and a plain httputil.ReverseProxy (that plus HTTP parsing and
// forwarding in Go), the latter also with FlushInterval -1 (which flushes
// every answer's header on its own, as the orchestrator's proxy did before
// issue 15) and with a transport that runs each exchange on the handler's
// goroutine, and a lean HTTP/1.1 forwarder that parses each request and
// answer on the connection's own goroutine (net/http's parsing without its
// server's and transport's goroutines). The suite names the server to
// relay to through the control port.
const (
	relayControlPort   = 8100
	relayTCPPort       = 8101
	relayHTTPPort      = 8102
	relayHTTPFlushPort = 8103
	relayLeanPort      = 8104
	relayHTTPSyncPort  = 8105
)

// relayTarget is the server both relays forward to, set by PUT /target.
type relayTarget struct{ addr atomic.Pointer[string] }

func (t *relayTarget) get() string {
	if p := t.addr.Load(); p != nil {
		return *p
	}
	return ""
}

func (t *relayTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut || r.URL.Path != "/target" {
		http.Error(w, "PUT /target with host:port", http.StatusNotFound)
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 256))
	addr := strings.TrimSpace(string(b))
	if _, _, serr := net.SplitHostPort(addr); err != nil || serr != nil {
		http.Error(w, "want host:port", http.StatusBadRequest)
		return
	}
	t.addr.Store(&addr)
	slog.Info("relay target", "addr", addr)
	w.WriteHeader(http.StatusNoContent)
}

// serveRelay runs the control port and both relays until ctx ends.
func serveRelay(ctx context.Context) error {
	var tgt relayTarget
	tcpLn, err := net.Listen("tcp", fmt.Sprintf(":%d", relayTCPPort))
	if err != nil {
		return err
	}
	leanLn, err := net.Listen("tcp", fmt.Sprintf(":%d", relayLeanPort))
	if err != nil {
		return err
	}
	newRP := func(flush time.Duration, tr http.RoundTripper) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme = "http"
				pr.Out.URL.Host = tgt.get()
				pr.Out.Host = pr.In.Host
				pr.SetXForwarded()
			},
			Transport:     tr,
			FlushInterval: flush,
		}
	}
	servers := []*http.Server{
		{Addr: fmt.Sprintf(":%d", relayControlPort), Handler: &tgt, ReadHeaderTimeout: 5 * time.Second},
		{Addr: fmt.Sprintf(":%d", relayHTTPPort), Handler: newRP(0, goTransport()), ReadHeaderTimeout: 5 * time.Second},
		{Addr: fmt.Sprintf(":%d", relayHTTPFlushPort), Handler: newRP(-1, goTransport()), ReadHeaderTimeout: 5 * time.Second},
		{Addr: fmt.Sprintf(":%d", relayHTTPSyncPort), Handler: newRP(0, &syncTransport{}), ReadHeaderTimeout: 5 * time.Second},
	}
	errc := make(chan error, len(servers)+1)
	for _, s := range servers {
		go func() { errc <- s.ListenAndServe() }()
	}
	go func() { errc <- relayTCP(ctx, tcpLn, &tgt) }()
	go func() { errc <- relayLean(ctx, leanLn, &tgt) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	tcpLn.Close()
	leanLn.Close()
	for _, s := range servers {
		s.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// goTransport is Go's default transport with room for the suite's 64
// connections.
func goTransport() *http.Transport {
	return &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
}

// syncTransport writes each request and reads its answer on the caller's
// goroutine, over kept connections, where http.Transport hands both to
// per-connection goroutines. A measuring instrument for bodiless requests
// (the suite's GETs): no upgrades, no retries, no proxy settings.
type syncTransport struct {
	mu   sync.Mutex
	idle map[string][]*syncConn // by host:port
	d    net.Dialer
}

type syncConn struct {
	net.Conn
	addr string
	br   *bufio.Reader
	bw   *bufio.Writer
}

func (t *syncTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	t.mu.Lock()
	var c *syncConn
	if idle := t.idle[addr]; len(idle) > 0 {
		c, t.idle[addr] = idle[len(idle)-1], idle[:len(idle)-1]
	}
	t.mu.Unlock()
	if c == nil {
		nc, err := t.d.DialContext(req.Context(), "tcp", addr)
		if err != nil {
			return nil, err
		}
		c = &syncConn{Conn: nc, addr: addr, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}
	}
	if err := req.Write(c.bw); err != nil || c.bw.Flush() != nil {
		c.Close()
		return nil, fmt.Errorf("sync transport: write: %w", err)
	}
	res, err := http.ReadResponse(c.br, req)
	if err != nil {
		c.Close()
		return nil, err
	}
	res.Body = &syncBody{ReadCloser: res.Body, c: c, t: t, keep: !res.Close}
	return res, nil
}

// syncBody gives its connection back once the answer is read to the end.
type syncBody struct {
	io.ReadCloser
	c    *syncConn
	t    *syncTransport
	keep bool
	done bool
}

func (b *syncBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		if b.keep {
			b.t.mu.Lock()
			if b.t.idle == nil {
				b.t.idle = map[string][]*syncConn{}
			}
			b.t.idle[b.c.addr] = append(b.t.idle[b.c.addr], b.c)
			b.t.mu.Unlock()
		} else {
			b.c.Close()
		}
	}
	return n, err
}

func (b *syncBody) Close() error {
	if !b.done {
		b.done = true
		b.c.Close()
	}
	return nil
}

// relayTCP copies bytes between each accepted connection and a new
// connection to the target, in both directions.
func relayTCP(ctx context.Context, ln net.Listener, tgt *relayTarget) error {
	return relayEach(ctx, ln, tgt, func(c, up net.Conn) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(up, c)
			_ = up.(*net.TCPConn).CloseWrite()
		}()
		_, _ = io.Copy(c, up)
		_ = c.(*net.TCPConn).CloseWrite()
		wg.Wait()
	})
}

// relayLean forwards HTTP/1.1 exchanges one at a time: each request is
// read, written to a connection to the target kept for this client, and
// its answer read and written back, all on the client connection's
// goroutine. A measuring instrument, not a proxy: no hop-by-hop header
// handling, no upgrades, no request bodies streamed beside the answer.
func relayLean(ctx context.Context, ln net.Listener, tgt *relayTarget) error {
	return relayEach(ctx, ln, tgt, func(c, up net.Conn) {
		cr, cw := bufio.NewReader(c), bufio.NewWriter(c)
		ur, uw := bufio.NewReader(up), bufio.NewWriter(up)
		for {
			req, err := http.ReadRequest(cr)
			if err != nil {
				return
			}
			if err := req.Write(uw); err != nil || uw.Flush() != nil {
				return
			}
			res, err := http.ReadResponse(ur, req)
			if err != nil {
				return
			}
			err = res.Write(cw)
			res.Body.Close()
			if err != nil || cw.Flush() != nil {
				return
			}
		}
	})
}

// relayEach accepts connections until ctx ends and runs serve for each
// with a new connection to the target; both are closed after it.
func relayEach(ctx context.Context, ln net.Listener, tgt *relayTarget, serve func(c, up net.Conn)) error {
	var d net.Dialer
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			up, err := d.DialContext(ctx, "tcp", tgt.get())
			if err != nil {
				slog.Warn("relay dial", "err", err)
				return
			}
			defer up.Close()
			serve(c, up)
		}()
	}
}

// setRelayTarget points the relay at a user server.
func setRelayTarget(ctx context.Context, relayHost, addr string) error {
	url := fmt.Sprintf("http://%s/target", net.JoinHostPort(relayHost, fmt.Sprint(relayControlPort)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(addr))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("relay control: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("relay control: %s", resp.Status)
	}
	return nil
}
