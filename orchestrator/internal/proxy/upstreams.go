package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
)

// upstreams tracks the open connections to user servers by address, so
// that those to a server known to be gone (its node was declared down) can
// be closed at once: a request already sent on one would otherwise wait
// for the kernel to give up on the dead peer (upstreamUserTimeout), and the
// proxy's retry would reach the replacement server only then.
type upstreams struct {
	mu    sync.Mutex
	conns map[string]map[*upstreamConn]struct{}
}

type upstreamConn struct {
	net.Conn
	addr string
	set  *upstreams
	once sync.Once
}

// SyscallConn lets quickAck and the tests reach the socket.
func (c *upstreamConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a socket")
	}
	return sc.SyscallConn()
}

func (c *upstreamConn) Close() error {
	c.once.Do(func() { c.set.remove(c) })
	return c.Conn.Close()
}

func (u *upstreams) add(c *upstreamConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conns == nil {
		u.conns = map[string]map[*upstreamConn]struct{}{}
	}
	if u.conns[c.addr] == nil {
		u.conns[c.addr] = map[*upstreamConn]struct{}{}
	}
	u.conns[c.addr][c] = struct{}{}
}

func (u *upstreams) remove(c *upstreamConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.conns[c.addr], c)
	if len(u.conns[c.addr]) == 0 {
		delete(u.conns, c.addr)
	}
}

// closeAll closes every tracked connection to addr and says how many.
func (u *upstreams) closeAll(addr string) int {
	u.mu.Lock()
	var cs []*upstreamConn
	for c := range u.conns[addr] {
		cs = append(cs, c)
	}
	u.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
	return len(cs)
}

// dialer wraps dial so that its connections are tracked.
func (u *upstreams) dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &upstreamConn{Conn: c, addr: addr, set: u}
		u.add(tc)
		return tc, nil
	}
}
