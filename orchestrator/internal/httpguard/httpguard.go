// Package httpguard puts the orchestrator's limits on its HTTP listeners:
// the http.Server's header timeout, header size and keep-alive time, a read
// deadline for request bodies, and the refusal of obsolete header line
// folding before net/http parses a request.
package httpguard

import (
	"context"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"time"
)

// Limits are the listener-wide bounds.
type Limits struct {
	// ReadHeaderTimeout bounds the time to read a request's headers
	// (slowloris).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; net/http allows
	// 4 KiB of slack above it.
	MaxHeaderBytes int
}

// NewServer is the http.Server every orchestrator listener uses; serve it
// with Serve. It has no ReadTimeout or WriteTimeout: progress streams,
// downloads and proxied websockets are long. Hub bodies get their deadline
// from BodyDeadline.
func NewServer(h http.Handler, l Limits, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           withTLSState(h),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          errorLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

// Serve serves hs on ln behind RefuseObsFold, terminating TLS first when tc
// is set. The guard must see plaintext, so net/http is handed the decrypted
// stream, not a *tls.Conn: hs then accepts HTTP/2 on it for clients that
// chose h2 in the handshake (plain HTTP stays HTTP/1.1), and the handler
// still finds the TLS state in Request.TLS. plain, when set, wraps the
// guarded listener of a plaintext server (the proxy's lane, which serves
// some connections itself and yields the others).
func Serve(hs *http.Server, ln net.Listener, tc *tls.Config, plain func(net.Listener) net.Listener) error {
	if tc != nil {
		tc = tc.Clone()
		tc.NextProtos = []string{"h2", "http/1.1"}
		hs.Protocols = new(http.Protocols)
		hs.Protocols.SetHTTP1(true)
		hs.Protocols.SetUnencryptedHTTP2(true)
		ln = tls.NewListener(ln, tc)
	}
	ln = RefuseObsFold(ln)
	if tc == nil && plain != nil {
		ln = plain(ln)
	}
	return hs.Serve(ln)
}

type connKey struct{}

// withTLSState fills Request.TLS from the guarded connection, which net/http
// cannot see through (ReverseProxy's X-Forwarded-Proto reads it).
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if c, ok := r.Context().Value(connKey{}).(*foldConn); ok {
				if tc, ok := c.Conn.(*tls.Conn); ok {
					st := tc.ConnectionState()
					r2 := *r
					r2.TLS = &st
					r = &r2
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// BodyDeadline gives each request that has a body d to send it, by setting
// the connection's read deadline when the handler starts; a slow sender's
// read then fails. net/http clears the deadline itself once the body has
// been read through (before its background read that watches for the
// client going away), so a response that streams afterwards is not cut.
// d <= 0 turns it off.
func BodyDeadline(next http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			// A writer that cannot set deadlines (a test recorder) serves
			// without one rather than failing the request.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		next.ServeHTTP(w, r)
	})
}
