package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Websocket close codes sent to the browser when the hub ends a connection.
const (
	closeGoingAway       = 1001 // hub shutting down
	closePolicyViolation = 1008 // access revoked
)

// touchEvery bounds activity reports from one websocket: the culler works in
// minutes, so one report every few seconds per connection is plenty.
const touchEvery = 5 * time.Second

// closeWriteTimeout bounds the attempt to send a close frame to a client
// that has stopped reading.
const closeWriteTimeout = time.Second

// wsWriter wraps the ResponseWriter of an upgrade request so that the
// connection ReverseProxy hijacks is recorded in the registry. Once the
// connection is hijacked, the proxy's ErrorHandler must not write to it.
type wsWriter struct {
	http.ResponseWriter
	p        *Proxy
	who      string // identity holding the connection (revocation key)
	session  string // login session that opened it, if any (Identity.Session)
	server   string // owner of the server (activity key)
	hijacked bool
}

func (w *wsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *wsWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	tc := &trackedConn{Conn: conn, p: w.p, who: w.who, session: w.session, server: w.server}
	tc.last.Store(w.p.now().UnixNano())
	if !w.p.ws.add(tc) {
		conn.Close()
		return nil, nil, errors.New("proxy is shutting down")
	}
	return tc, brw, nil
}

// trackedConn is the browser side of a proxied websocket. It reports
// activity, and it follows the frames the server sends so that a close frame
// can be slipped in between two frames instead of into the middle of one.
type trackedConn struct {
	net.Conn
	p       *Proxy
	who     string
	session string
	server  string
	last    atomic.Int64 // unix nanos of the last activity report

	mu     sync.Mutex // serialises writes with CloseWith
	frames frameTracker
	closed bool

	closeOnce sync.Once
}

func (c *trackedConn) touch() {
	now := c.p.now().UnixNano()
	last := c.last.Load()
	if now-last < int64(touchEvery) {
		return
	}
	if c.last.CompareAndSwap(last, now) {
		c.p.act.Touch(c.server)
	}
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Write(b)
	c.frames.feed(b[:n])
	c.mu.Unlock()
	if n > 0 {
		c.touch()
	}
	return n, err
}

// CloseWrite keeps ReverseProxy's half-close on backend EOF working.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

func (c *trackedConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.p.ws.remove(c)
	})
	return err
}

// closeWith sends a websocket close frame with code when the server-to-client
// stream sits between frames, then closes the connection. The write deadline
// comes first so that a writer blocked on a client that stopped reading gives
// up the lock within closeWriteTimeout; its frame is then cut short and the
// connection is closed without a close frame.
func (c *trackedConn) closeWith(code uint16, reason string) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	c.mu.Lock()
	if !c.closed && c.frames.atBoundary() {
		_, _ = c.Conn.Write(closeFrame(code, reason))
	}
	c.closed = true
	c.mu.Unlock()
	_ = c.Close()
}

// closeAll closes conns in parallel: each may wait closeWriteTimeout for a
// stuck writer.
func closeAll(conns []*trackedConn, code uint16, reason string) {
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.closeWith(code, reason) })
	}
	wg.Wait()
}

// closeFrame builds an unmasked (server-to-client) close frame.
func closeFrame(code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := make([]byte, 4, 4+len(reason))
	b[0] = 0x88 // FIN + opcode close
	b[1] = byte(2 + len(reason))
	binary.BigEndian.PutUint16(b[2:], code)
	return append(b, reason...)
}

// frameTracker follows websocket frame boundaries in a byte stream (RFC 6455
// section 5.2) without buffering payloads.
type frameTracker struct {
	hdr       [14]byte
	hdrN      int    // header bytes collected so far
	hdrNeed   int    // full header length, known after two bytes
	remaining uint64 // payload bytes left in the current frame
}

func (f *frameTracker) atBoundary() bool { return f.hdrN == 0 && f.remaining == 0 }

func (f *frameTracker) feed(b []byte) {
	for len(b) > 0 {
		if f.remaining > 0 {
			n := uint64(len(b))
			if n > f.remaining {
				n = f.remaining
			}
			f.remaining -= n
			b = b[n:]
			continue
		}
		f.hdr[f.hdrN] = b[0]
		f.hdrN++
		b = b[1:]
		if f.hdrN == 2 {
			f.hdrNeed = 2
			switch f.hdr[1] & 0x7f {
			case 126:
				f.hdrNeed += 2
			case 127:
				f.hdrNeed += 8
			}
			if f.hdr[1]&0x80 != 0 {
				f.hdrNeed += 4 // masking key
			}
		}
		if f.hdrN < 2 || f.hdrN < f.hdrNeed {
			continue
		}
		switch l := f.hdr[1] & 0x7f; l {
		case 126:
			f.remaining = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
		case 127:
			f.remaining = binary.BigEndian.Uint64(f.hdr[2:10])
		default:
			f.remaining = uint64(l)
		}
		f.hdrN, f.hdrNeed = 0, 0
	}
}

// registry holds the hijacked websocket connections by identity and by
// login session, so that a revoked user's or a logged-out session's
// connections can be cut and shutdown can say goodbye;
// http.Server.Shutdown does not track hijacked connections.
type registry struct {
	mu        sync.Mutex
	byUser    map[string]map[*trackedConn]struct{}
	bySession map[string]map[*trackedConn]struct{}
	n         atomic.Int64
	shutdown  bool
	empty     chan struct{} // closed and replaced when n drops to zero during shutdown
}

func (r *registry) add(c *trackedConn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutdown {
		return false
	}
	if r.byUser == nil {
		r.byUser = make(map[string]map[*trackedConn]struct{})
		r.bySession = make(map[string]map[*trackedConn]struct{})
	}
	addTo(r.byUser, c.who, c)
	if c.session != "" {
		addTo(r.bySession, c.session, c)
	}
	r.n.Add(1)
	return true
}

func addTo(m map[string]map[*trackedConn]struct{}, k string, c *trackedConn) {
	set := m[k]
	if set == nil {
		set = make(map[*trackedConn]struct{})
		m[k] = set
	}
	set[c] = struct{}{}
}

func (r *registry) remove(c *trackedConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.byUser[c.who]
	if _, ok := set[c]; !ok {
		return
	}
	delete(set, c)
	if len(set) == 0 {
		delete(r.byUser, c.who)
	}
	if ss := r.bySession[c.session]; ss != nil {
		delete(ss, c)
		if len(ss) == 0 {
			delete(r.bySession, c.session)
		}
	}
	if r.n.Add(-1) == 0 && r.empty != nil {
		close(r.empty)
		r.empty = nil
	}
}

// take lists the connections of user (bySession false) or of a session.
func (r *registry) take(key string, bySession bool) []*trackedConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.byUser[key]
	if bySession {
		set = r.bySession[key]
	}
	out := make([]*trackedConn, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	return out
}

// CloseUser closes every open websocket held by user (as identified when it
// was opened) with close code 1008, and returns how many it closed. Use it
// when a user is blocked or deleted: their plain HTTP requests are refused by
// the Identifier, but an open websocket would otherwise live on.
func (p *Proxy) CloseUser(user string) int {
	conns := p.ws.take(user, false)
	closeAll(conns, closePolicyViolation, "access revoked")
	if len(conns) > 0 {
		p.log.Info("closed websockets of revoked user", "user", user, "count", len(conns))
	}
	return len(conns)
}

// CloseSession closes, with close code 1008, every open websocket opened
// with the login session named session (Identity.Session), and returns how
// many it closed: logging out ends the session's connections too.
func (p *Proxy) CloseSession(session string) int {
	if session == "" {
		return 0
	}
	conns := p.ws.take(session, true)
	closeAll(conns, closePolicyViolation, "logged out")
	if len(conns) > 0 {
		p.log.Info("closed websockets of a logged-out session", "count", len(conns))
	}
	return len(conns)
}

// Shutdown refuses new websockets, closes every open one with close code
// 1001 and waits until their handlers have let go of them or ctx ends.
func (p *Proxy) Shutdown(ctx context.Context) error {
	r := &p.ws
	r.mu.Lock()
	r.shutdown = true
	var conns []*trackedConn
	for _, set := range r.byUser {
		for c := range set {
			conns = append(conns, c)
		}
	}
	var empty chan struct{}
	if r.n.Load() > 0 {
		empty = make(chan struct{})
		r.empty = empty
	}
	r.mu.Unlock()

	closeAll(conns, closeGoingAway, "hub shutting down")
	if empty == nil {
		return nil
	}
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// OpenWebsockets reports how many proxied websockets are open.
func (p *Proxy) OpenWebsockets() int { return int(p.ws.n.Load()) }
