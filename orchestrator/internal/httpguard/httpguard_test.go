package httpguard_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/httpguard"
)

// serve runs h behind a real listener wrapped as the orchestrator wraps it.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httpguard.NewServer(h, httpguard.Limits{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 32 << 10}, nil)
	go func() { _ = httpguard.Serve(hs, ln, nil, nil) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

// echo answers each request with its method, path and body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b)+" X-Note="+r.Header.Get("X-Note"))
})

// exchange writes raw on one connection and reads n responses.
func exchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // hang guard
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []*http.Response
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d of %d: %v", len(out)+1, n, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
	}
	return out
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestObsFoldRefused(t *testing.T) {
	addr := serve(t, echo)
	cases := map[string]string{
		"folded Transfer-Encoding": "POST /hub/login HTTP/1.1\r\nHost: h\r\nX-Note: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
		"tab fold":                 "GET /hub/login HTTP/1.1\r\nHost: h\r\nX-Note: a\r\n\tb\r\n\r\n",
		"fold after a pipelined request with a body": "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nx\r\n y" +
			"GET /b HTTP/1.1\r\nHost: h\r\nX-Note: a\r\n b\r\n\r\n",
		"fold after a chunked request": "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nx\r\n \r\n0\r\nTrailer-A: 1\r\n\r\n" +
			"GET /b HTTP/1.1\r\nHost: h\r\nX-Note: a\r\n b\r\n\r\n",
		"fold in a trailer": "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nTrailer-A: 1\r\n 2\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(conn, raw); err != nil {
				t.Fatal(err)
			}
			// Requests before the folded one are answered; the folded one
			// gets 400 and the connection ends.
			br := bufio.NewReader(conn)
			var last *http.Response
			for {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				last = resp
			}
			if last == nil || last.StatusCode != http.StatusBadRequest {
				t.Fatalf("last answer %v, want 400", last)
			}
		})
	}
}

func TestFramingFollowedWithoutFalseRefusals(t *testing.T) {
	addr := serve(t, echo)
	// Bodies full of CRLF-space, pipelined behind each other: every request
	// is answered and the bodies arrive intact.
	raw := "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n\r\n a\r\n\t" +
		"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n\r\n \r\n2;x=\" y\"\r\n\n\t\r\n0\r\nT: 1\r\n\r\n" +
		"POST /c HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\n\n \n " +
		"GET /d HTTP/1.1\r\nHost: h\r\nX-Note: fine\r\n\r\n"
	resps := exchange(t, addr, raw, 4)
	want := []string{"POST /a \r\n a\r\n\t X-Note=", "POST /b \r\n \n\t X-Note=", "POST /c \n \n  X-Note=", "GET /d  X-Note=fine"}
	for i, r := range resps {
		if r.StatusCode != http.StatusOK || body(t, r) != want[i] {
			t.Errorf("request %d: %d %q, want 200 %q", i+1, r.StatusCode, body(t, r), want[i])
		}
	}
}

// TestUpgradedConnectionsAreNotScanned: after a 101 the bytes are another
// protocol's, and a refused upgrade is followed by a scanned request.
func TestUpgradedConnectionsAreNotScanned(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			echo(w, r)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw) // echo
	}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	frame := "\r\n folded? no, a frame\r\n"
	_, _ = io.WriteString(conn, frame)
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != frame {
		t.Fatalf("echo after 101: %q %v", got, err)
	}

	refused := "GET /plain HTTP/1.1\r\nHost: h\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n" +
		"GET /b HTTP/1.1\r\nHost: h\r\nX-Note: a\r\n b\r\n\r\n"
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(30 * time.Second))
	br2 := bufio.NewReader(c2)
	_, _ = io.WriteString(c2, refused[:strings.Index(refused, "GET /b")])
	if r, err := http.ReadResponse(br2, nil); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("upgrade request the handler did not upgrade: %v %v", r, err)
	} else {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	_, _ = io.WriteString(c2, refused[strings.Index(refused, "GET /b"):])
	if r, err := http.ReadResponse(br2, nil); err != nil || r.StatusCode != http.StatusBadRequest {
		t.Fatalf("folded request after a refused upgrade: %v %v, want 400", r, err)
	}
}

func TestBodyDeadline(t *testing.T) {
	const d = 300 * time.Millisecond
	readErr := make(chan error, 1)
	release := make(chan struct{})
	h := httpguard.BodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		if r.URL.Path == "/slow" {
			readErr <- err
			return
		}
		// /stream: the body is in; the response streams past the deadline.
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	}), d)
	addr := serve(t, h)

	// A body that never finishes is cut: the handler's read fails.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nx")
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("a body that never arrived was read without an error")
		}
	case <-time.After(time.Minute): // hang guard
		t.Fatal("the slow body was never cut")
	}

	// A complete body, then a long response: not cut.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(time.Minute))
	_, _ = io.WriteString(c2, "POST /stream HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok")
	br := bufio.NewReader(c2)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(resp.Body)
	if l, _ := lines.ReadString('\n'); l != "first\n" {
		t.Fatalf("first line %q", l)
	}
	time.Sleep(4 * d) // past the body deadline; not a measurement
	close(release)
	if l, err := lines.ReadString('\n'); l != "second\n" {
		t.Fatalf("the response was cut after the body deadline: %q %v", l, err)
	}
}

// BenchmarkGuardedRequests is keep-alive GETs with browser-sized headers
// through the guarded listener, for comparison with BenchmarkPlainRequests.
func BenchmarkGuardedRequests(b *testing.B) { benchRequests(b, true) }

// BenchmarkPlainRequests is the same without the guard.
func BenchmarkPlainRequests(b *testing.B) { benchRequests(b, false) }

func benchRequests(b *testing.B, guarded bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := httpguard.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), httpguard.Limits{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 32 << 10}, nil)
	if guarded {
		go func() { _ = httpguard.Serve(hs, ln, nil, nil) }()
	} else {
		go func() { _ = hs.Serve(ln) }()
	}
	b.Cleanup(func() { _ = hs.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := "GET /user/alice/api/kernels HTTP/1.1\r\nHost: hub.example\r\nUser-Agent: " + strings.Repeat("m", 120) +
		"\r\nAccept: */*\r\nCookie: swarmhub-session=" + strings.Repeat("c", 43) + "; _xsrf=" + strings.Repeat("x", 60) + "\r\n\r\n"
	br := bufio.NewReader(conn)
	b.SetBytes(int64(len(req)))
	b.ResetTimer()
	for range b.N {
		if _, err := io.WriteString(conn, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
