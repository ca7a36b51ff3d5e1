package proxy

import (
	"context"
	"net"
	"net/http/httptrace"
	"sync/atomic"
)

// Jupyter's server (Tornado) writes the several small websocket frames of a
// kernel reply (busy, execute_input, execute_result, execute_reply, idle)
// without TCP_NODELAY, so Nagle holds each frame after the first until the
// previous one is acknowledged, and Linux delays that ACK by up to 40 ms.
// A client that acknowledges at once removes the stall: a `1+1` round trip
// falls from about 48 ms to about 6 ms. The proxy is that client for every
// browser, so it turns on TCP_QUICKACK after each read on the server side of
// a websocket. Plain HTTP answers come in one write and are left alone.

// quickAckConn is an upstream connection that can acknowledge every read at
// once once on is set.
type quickAckConn struct {
	net.Conn
	on atomic.Bool
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.on.Load() {
		quickAck(c.Conn)
	}
	return n, err
}

// quickAckDialer wraps dial so that every connection it makes can be
// switched to quick acknowledgements.
func quickAckDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &quickAckConn{Conn: c}, nil
	}
}

// withQuickAck makes the upstream connection the transport picks for this
// request's context acknowledge at once (a websocket upgrade: the connection
// is not reused for other requests afterwards).
func withQuickAck(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			if q, ok := i.Conn.(*quickAckConn); ok {
				q.on.Store(true)
				quickAck(q.Conn)
			}
		},
	})
}
