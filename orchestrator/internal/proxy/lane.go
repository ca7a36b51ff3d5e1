package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The lane forwards plain HTTP/1.1 requests to user servers on one
// goroutine per client connection, with one kept upstream connection, and
// leaves everything else to net/http. At one keep-alive connection
// net/http's server and transport cost more than the hop itself: each
// request passes through the server's background read, the transport's
// write and read goroutines and their wake-ups (26 system calls per
// request against 13 direct), and a connection got 0.6-0.75 of direct
// against Jupyter where a TCP relay got 0.98 and a forwarder on one
// goroutine 0.91 (README, "Proxy, HTTP at one connection").
//
// The lane takes a request only when nothing about it needs net/http's
// machinery: GET or HEAD without a body, HTTP/1.1, origin-form /user/
// path, one valid Host, no upgrade or Expect, and admitted by the same
// checks ServeHTTP runs (admit). Any other request, a refusal, or a
// failure before the first byte of the answer is written hands the
// connection to net/http for the rest of its life, with the bytes read so
// far replayed: net/http then answers that request exactly as it would
// have without the lane (its 400/431, the proxy's redirects and errors,
// its retry on a fresh address).

// LaneOptions are the listener's limits, as the http.Server behind the
// lane has them.
type LaneOptions struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int // 0: net/http's default, 1 MiB
	// Observe, when set, is told every answered request's status and
	// duration (what net/http's path reports through its metrics wrapper).
	Observe func(status int, d time.Duration)
}

// Lane returns a listener that yields the connections of ln that the lane
// hands to net/http; serve it with the hub's http.Server. Plain HTTP only:
// behind TLS, browsers speak HTTP/2 to net/http. With Options.Transport set
// (tests) there is no lane and ln is returned as it is.
func (p *Proxy) Lane(ln net.Listener, o LaneOptions) net.Listener {
	if p.up == nil {
		return ln
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &lane{p: p, o: o, ln: ln, ctx: ctx, cancel: cancel, dial: upstreamDialer(p.up),
		handoff: make(chan net.Conn), done: make(chan struct{}), idle: map[net.Conn]struct{}{}}
	go l.run()
	return l
}

type lane struct {
	p      *Proxy
	o      LaneOptions
	ln     net.Listener
	ctx    context.Context // ends when the listener is closed
	cancel context.CancelFunc
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)

	handoff chan net.Conn
	done    chan struct{}
	once    sync.Once
	err     error // why done was closed

	mu   sync.Mutex
	idle map[net.Conn]struct{} // connections waiting for their next request
}

// Accept returns the next connection the lane hands to net/http.
func (l *lane) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting and closes the connections that wait for a
// request; those in the middle of one close after its answer.
func (l *lane) Close() error {
	err := l.ln.Close()
	l.stop(net.ErrClosed)
	l.mu.Lock()
	for c := range l.idle {
		_ = c.SetReadDeadline(time.Now())
	}
	l.mu.Unlock()
	return err
}

func (l *lane) Addr() net.Addr { return l.ln.Addr() }

// closed reports whether Close was called.
func (l *lane) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *lane) stop(err error) {
	l.once.Do(func() {
		l.err = err
		l.cancel()
		close(l.done)
	})
}

// run accepts connections as net/http's Serve would: temporary errors
// (too many open files) are retried after a pause, others end the lane.
func (l *lane) run() {
	var pause time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				l.p.log.Warn("accept failed; retrying", "err", err, "pause", pause)
				time.Sleep(pause)
				continue
			}
			l.stop(err)
			return
		}
		pause = 0
		go l.serve(c)
	}
}

// laneConn is one client connection the lane serves.
type laneConn struct {
	l   *lane
	c   net.Conn
	rec recorder
	br  *bufio.Reader
	bw  *bufio.Writer
	up  *laneUpstream
}

func (l *lane) serve(c net.Conn) {
	lc := &laneConn{l: l, c: c}
	lc.rec.Conn = c
	lc.br = bufio.NewReader(&lc.rec)
	lc.bw = bufio.NewWriterSize(c, 16<<10)
	defer func() { lc.up.close() }()
	defer func() {
		// As net/http does for a handler: a panic ends this connection, not
		// the process.
		if v := recover(); v != nil {
			_ = c.Close()
			l.p.log.Error("panic serving a proxied request", "panic", v, "remote", c.RemoteAddr().String(),
				"stack", string(debug.Stack()))
		}
	}()
	for {
		lc.rec.start(lc.br.Buffered(), l.o.MaxHeaderBytes+4096)
		if !lc.waitRequest() {
			_ = c.Close()
			return
		}
		req, err := http.ReadRequest(lc.br)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) {
				_ = c.Close() // as net/http does: no answer to a header that never came
				return
			}
			lc.handOff() // net/http answers the malformed or oversized request
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		if !laneable(req) || hostLines(lc.rec.buf[:len(lc.rec.buf)-lc.br.Buffered()]) != 1 {
			lc.handOff()
			return
		}
		switch lc.forward(req) {
		case handedOver:
			lc.handOff()
			return
		case closeConn:
			_ = c.Close()
			return
		}
	}
}

// waitRequest waits for the first byte of the next request, IdleTimeout at
// most, then gives its header ReadHeaderTimeout.
func (lc *laneConn) waitRequest() bool {
	l := lc.l
	if lc.br.Buffered() == 0 {
		// Checked under mu: Close, which closes done first, then wakes
		// every connection it finds in idle.
		l.mu.Lock()
		if l.closed() {
			l.mu.Unlock()
			return false
		}
		l.idle[lc.c] = struct{}{}
		l.mu.Unlock()
		if l.o.IdleTimeout > 0 {
			_ = lc.c.SetReadDeadline(time.Now().Add(l.o.IdleTimeout))
		}
		_, err := lc.br.Peek(1)
		l.mu.Lock()
		delete(l.idle, lc.c)
		l.mu.Unlock()
		if err != nil || l.closed() {
			return false
		}
	}
	var d time.Time
	if l.o.ReadHeaderTimeout > 0 {
		d = time.Now().Add(l.o.ReadHeaderTimeout)
	}
	_ = lc.c.SetReadDeadline(d)
	return true
}

// handOff gives the connection to net/http, replaying what was read of
// the current request and after it.
func (lc *laneConn) handOff() {
	lc.dropUpstream()
	_ = lc.c.SetReadDeadline(time.Time{})
	rc := &replayConn{Conn: lc.c, buf: lc.rec.buf}
	select {
	case lc.l.handoff <- rc:
	case <-lc.l.done:
		_ = lc.c.Close()
	}
}

// laneable reports whether req can be forwarded without net/http's
// machinery, after net/http's own checks on a request's Host and header
// (a request failing them is handed over, and net/http refuses it).
func laneable(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead ||
		req.ProtoMajor != 1 || req.ProtoMinor != 1 ||
		req.Body != http.NoBody || req.ContentLength != 0 || len(req.TransferEncoding) > 0 ||
		!strings.HasPrefix(req.RequestURI, userPrefix) || !strings.HasPrefix(req.URL.Path, userPrefix) {
		return false
	}
	if !validHost(req.Host) {
		return false
	}
	for k, vs := range req.Header {
		if !validFieldName(k) {
			return false
		}
		for _, v := range vs {
			if !validFieldValue(v) {
				return false
			}
		}
	}
	for _, k := range []string{"Upgrade", "Expect", "Content-Length", "Transfer-Encoding", "Trailer"} {
		if _, ok := req.Header[k]; ok {
			return false
		}
	}
	return true
}

// hostLines counts the Host lines in a request's raw header: ReadRequest
// keeps the first and drops them all from the header, where net/http's
// server refuses a request with two.
func hostLines(raw []byte) int {
	n := 0
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			break
		}
		raw = raw[i+1:]
		if len(raw) >= 5 && raw[4] == ':' && strings.EqualFold(string(raw[:4]), "host") {
			n++
		}
	}
	return n
}

func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._:[]", c) >= 0) {
			return false
		}
	}
	return true
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

type outcome int

const (
	answered   outcome = iota // the answer was written; the connection goes on
	handedOver                // nothing was written: net/http takes the request
	closeConn                 // the connection ends (written, or broken mid-answer)
)

// forward admits req, sends it upstream and writes the answer.
func (lc *laneConn) forward(req *http.Request) outcome {
	l, p := lc.l, lc.l.p
	start := time.Now()
	req.RemoteAddr = lc.c.RemoteAddr().String()
	req = req.WithContext(l.ctx)
	adm, refuse := p.admit(req)
	if refuse != nil {
		return handedOver
	}
	defer release(adm.slot)
	st := adm.st
	in := req.WithContext(context.WithValue(l.ctx, ctxKey{}, st))
	st.in = in

	res, err := lc.exchange(st.addr, p.outbound(in))
	if isDialError(err) {
		// As errorHandler does: the server moved or restarted; resolve it
		// afresh and try once more, then answer the failure here (handing
		// over would dial the dead address twice more).
		p.res.Forget(st.server)
		if p.retarget(l.ctx, st) != nil {
			return handedOver // net/http's path answers what Target says
		}
		if res, err = lc.exchange(st.addr, p.outbound(in)); isDialError(err) {
			res, err = p.bufferedError(in, err), nil
		}
	}
	if err != nil {
		return handedOver
	}
	if res.StatusCode < 200 || len(res.Trailer) > 0 {
		// Interim answers and trailers are net/http's to handle; nothing
		// was written, and a GET may be sent again.
		res.Body.Close()
		lc.dropUpstream()
		return handedOver
	}
	p.modifyResponse(res)
	if adm.who.Renew != nil {
		if v := adm.who.Renew.String(); v != "" {
			res.Header.Add("Set-Cookie", v)
		}
	}
	closeAfter := req.Close || l.closed()
	complete, werr := lc.writeAnswer(req, res, closeAfter)
	res.Body.Close()
	if lc.up != nil && (!complete || res.Close || lc.up.br.Buffered() > 0) {
		lc.dropUpstream()
	}
	if l.o.Observe != nil {
		l.o.Observe(res.StatusCode, time.Since(start))
	}
	if werr != nil || !complete || closeAfter {
		return closeConn
	}
	return answered
}

// bufferedError is errorHandler's answer to a failed exchange, as a
// response the lane writes (a short JSON error, or 499 with no body).
func (p *Proxy) bufferedError(r *http.Request, err error) *http.Response {
	a := &bufferedAnswer{h: http.Header{}}
	p.errorHandler(a, r, err)
	if a.code == 0 {
		a.code = http.StatusOK
	}
	return &http.Response{StatusCode: a.code, Header: a.h, ContentLength: int64(a.body.Len()),
		Body: io.NopCloser(&a.body), Request: r}
}

// bufferedAnswer is an http.ResponseWriter kept in memory.
type bufferedAnswer struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (a *bufferedAnswer) Header() http.Header { return a.h }

func (a *bufferedAnswer) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
	}
}

func (a *bufferedAnswer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(b)
}

// outbound is the request sent upstream, shaped as ReverseProxy shapes it
// (hop-by-hop and forwarding headers removed, no default User-Agent added)
// and then by the proxy's own rewrite.
func (p *Proxy) outbound(in *http.Request) *http.Request {
	out := new(http.Request)
	*out = *in
	u := *in.URL
	out.URL = &u
	out.Header = in.Header.Clone()
	out.Close = false
	out.RequestURI = ""
	removeHopHeaders(out.Header)
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(out.Header, k)
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""}
	}
	p.rewrite(&httputil.ProxyRequest{In: in, Out: out})
	return out
}

// hopHeaders are the hop-by-hop headers RFC 9110 section 7.6.1 names (and
// ReverseProxy removes).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// writeAnswer writes res to the client: its header, then its body with
// the length it has, or chunked when it has none (a stream, flushed as it
// comes). complete says whether the whole body was passed on.
func (lc *laneConn) writeAnswer(req *http.Request, res *http.Response, closeAfter bool) (complete bool, err error) {
	bw := lc.bw
	code := res.StatusCode
	h := res.Header
	removeHopHeaders(h)
	bodyless := req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	chunked := false
	switch {
	case bodyless:
		if req.Method != http.MethodHead || res.ContentLength < 0 {
			delete(h, "Content-Length")
		}
	case res.ContentLength >= 0:
		h["Content-Length"] = []string{strconv.FormatInt(res.ContentLength, 10)}
	default:
		delete(h, "Content-Length")
		h["Transfer-Encoding"] = []string{"chunked"}
		chunked = true
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
	}
	if closeAfter {
		h["Connection"] = []string{"close"}
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	bw.WriteString(text)
	bw.WriteString("\r\n")
	if err := h.Write(bw); err != nil {
		return false, err
	}
	bw.WriteString("\r\n")
	switch {
	case bodyless:
		return true, bw.Flush()
	case !chunked:
		n, err := io.CopyN(bw, res.Body, res.ContentLength)
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		return n == res.ContentLength && err == nil, err
	}
	cw := httputil.NewChunkedWriter(bw)
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	for {
		n, rerr := res.Body.Read(*buf)
		if n > 0 {
			if _, err := cw.Write((*buf)[:n]); err != nil {
				return false, err
			}
			if err := bw.Flush(); err != nil {
				return false, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			bw.Flush()
			return false, rerr // the client sees a truncated stream, as with net/http
		}
	}
	if err := cw.Close(); err != nil {
		return false, err
	}
	bw.WriteString("\r\n") // no trailers
	return true, bw.Flush()
}

// maxResponseHeader bounds what the lane reads of a server's answer before
// its header ends; a larger header fails the exchange, and net/http's path
// (which allows 10 MiB) takes the request.
const maxResponseHeader = 1 << 20

// capReader fails reads once n bytes were read; n < 0: no bound.
type capReader struct {
	r io.Reader
	n int
}

func (c *capReader) Read(b []byte) (int, error) {
	if c.n == 0 {
		return 0, errors.New("user server's answer header too large for the lane")
	}
	if c.n > 0 && len(b) > c.n {
		b = b[:c.n]
	}
	n, err := c.r.Read(b)
	if c.n > 0 {
		c.n -= n
	}
	return n, err
}

// laneUpstream is a client connection's kept connection to a user server.
type laneUpstream struct {
	addr string
	c    net.Conn
	cr   capReader
	br   *bufio.Reader
	bw   *bufio.Writer
	used bool // an exchange completed on it: it may have been closed since
}

// dropUpstream closes the kept server connection, if any.
func (lc *laneConn) dropUpstream() {
	lc.up.close()
	lc.up = nil
}

func (u *laneUpstream) close() {
	if u != nil {
		_ = u.c.Close()
	}
}

// exchange sends out to addr on the kept connection (dialling one when
// there is none, or it goes elsewhere) and reads the answer's header. A
// kept connection the server closed while idle is replaced once, as
// http.Transport does for requests that may be sent again.
func (lc *laneConn) exchange(addr string, out *http.Request) (*http.Response, error) {
	for {
		if lc.up != nil && lc.up.addr != addr {
			lc.dropUpstream()
		}
		if lc.up == nil {
			c, err := lc.l.dial(lc.l.ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			u := &laneUpstream{addr: addr, c: c, cr: capReader{r: c, n: -1}, bw: bufio.NewWriter(c)}
			u.br = bufio.NewReader(&u.cr)
			lc.up = u
		}
		u := lc.up
		err := out.Write(u.bw)
		if err == nil {
			err = u.bw.Flush()
		}
		var res *http.Response
		if err == nil {
			// A server's header is bounded, as http.Transport bounds it
			// (a user server is not trusted with the replica's memory).
			u.cr.n = maxResponseHeader
			res, err = http.ReadResponse(u.br, out)
			u.cr.n = -1
		}
		if err == nil {
			u.used = true
			return res, nil
		}
		lc.dropUpstream()
		if !u.used || !staleConn(err) {
			return nil, err
		}
	}
}

// staleConn reports whether err is how a kept connection the server had
// closed fails.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// recorder keeps the bytes read from the client since the start of the
// current request, so that a handed-over connection replays them, and
// bounds them while a header is read.
type recorder struct {
	net.Conn
	buf   []byte
	limit int
}

var errHeaderTooLarge = errors.New("request header too large for the lane")

// start begins a request: of what was read, only the keep bytes not yet
// parsed (a pipelined request's) stay.
func (r *recorder) start(keep, limit int) {
	tail := r.buf[len(r.buf)-keep:]
	if cap(r.buf) > 64<<10 && keep < 4<<10 {
		// One large header does not keep its buffer for the connection's life.
		r.buf = append(make([]byte, 0, 4<<10), tail...)
	} else {
		r.buf = r.buf[:copy(r.buf, tail)]
	}
	r.limit = limit
}

func (r *recorder) Read(b []byte) (int, error) {
	if len(r.buf) >= r.limit {
		return 0, errHeaderTooLarge
	}
	n, err := r.Conn.Read(b)
	r.buf = append(r.buf, b[:n]...)
	return n, err
}

// replayConn is a handed-over connection: what the lane read comes first.
type replayConn struct {
	net.Conn
	buf []byte
}

// CloseWrite lets net/http half-close before closing after an error
// answer, so that the client reads the answer instead of a reset.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(b, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
