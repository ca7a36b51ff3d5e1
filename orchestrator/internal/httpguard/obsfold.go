package httpguard

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
)

// ErrObsFold is the read error of a connection whose request folded a header
// line. net/http answers it with 400 Bad Request and closes the connection.
var ErrObsFold = errors.New("httpguard: obsolete line folding in a request header")

// RefuseObsFold wraps ln so that a request whose header (or trailer) block
// continues a line with leading space or tab (RFC 9112's obs-fold) never
// reaches net/http, which would join the line to the previous value. A
// proxy in front may read the same bytes differently (a folded
// Transfer-Encoding is the classic request-smuggling desync), so such a
// request is refused, as RFC 9112 section 5.2 allows. The wrapper follows
// HTTP/1.1 framing (Content-Length, chunked) to find each request's header
// block and stops looking after a 101 Switching Protocols or an HTTP/2
// preface.
func RefuseObsFold(ln net.Listener) net.Listener { return foldListener{ln} }

type foldListener struct{ net.Listener }

func (l foldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &foldConn{Conn: c, st: stMessageStart}, nil
}

type scanState int

const (
	stMessageStart scanState = iota // before a request line (empty lines skipped)
	stRequestLine                   // inside the request line
	stLineStart                     // at the start of a header or trailer line
	stLine                          // inside a header or trailer line
	stBody                          // remain bytes of Content-Length body
	stChunkSize                     // inside a chunk-size line
	stChunkData                     // remain bytes of chunk data
	stChunkEnd                      // the CRLF after chunk data
	stUpgrade                       // an upgrade request was read; a 101 ends scanning
	stPass                          // not HTTP/1.1 requests any more: no scanning
)

// maxValue bounds how much of a framing header's value is kept; real
// Content-Length and Transfer-Encoding values are far shorter.
const maxValue = 256

// foldConn scans what the client sends. Reads come from one goroutine at a
// time (net/http's conn reader); writes may come from a handler that
// hijacked the connection, hence the mutex on what both touch.
type foldConn struct {
	net.Conn
	err error // sticky: once refused, every read fails

	st        scanState
	trailer   bool   // the lines being scanned are a chunked body's trailer
	line      []byte // the current line up to maxValue bytes
	lineLong  bool   // the current line was longer than kept
	firstLine []byte // the request line's first bytes (HTTP/2 preface)
	lineTail  []byte // the request line's last bytes (its version)
	remain    int64
	chunk     int64 // the chunk size read so far
	digits    int
	chunkExt  bool // past the size: an extension or line end
	chunkBad  bool

	// framing of the message whose headers are being read
	http10        bool // net/http ignores Transfer-Encoding on HTTP/1.0
	contentLength int64
	clSeen        bool
	clBad         bool
	teCount       int
	teChunked     bool
	upgrade       bool

	mu         sync.Mutex
	upgradeReq bool   // an upgrade request awaits its answer
	answer     []byte // the first bytes written after it
}

func (c *foldConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if cut, bad := c.scan(p[:n]); bad {
			c.err = ErrObsFold
			if cut == 0 {
				return 0, c.err
			}
			return cut, nil
		}
	}
	return n, err
}

func (c *foldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.upgradeReq && len(c.answer) < len("HTTP/1.1 101") {
		k := min(len(p), len("HTTP/1.1 101")-len(c.answer))
		c.answer = append(c.answer, p[:k]...)
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// CloseWrite keeps half-closes of a hijacked connection working.
func (c *foldConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// scan advances the state over b. When a folded line starts at b[i] it
// returns (i, true): the bytes before it belong to earlier lines.
func (c *foldConn) scan(b []byte) (int, bool) {
	for i := 0; i < len(b); i++ {
		switch c.st {
		case stPass:
			return len(b), false
		case stUpgrade:
			c.mu.Lock()
			switched := bytes.HasPrefix(c.answer, []byte("HTTP/1.1 101")) || bytes.HasPrefix(c.answer, []byte("HTTP/1.0 101"))
			c.upgradeReq = false
			c.answer = nil
			c.mu.Unlock()
			if switched {
				c.st = stPass
				return len(b), false
			}
			// Refused (or not answered yet): the bytes are a new request.
			c.startMessage()
			i--
		case stMessageStart:
			if b[i] == '\r' || b[i] == '\n' {
				continue
			}
			c.st = stRequestLine
			c.firstLine = append(c.firstLine[:0], b[i])
			c.lineTail = append(c.lineTail[:0], b[i])
		case stRequestLine:
			if b[i] == '\n' {
				if bytes.HasPrefix(c.firstLine, []byte("PRI * HTTP/2")) {
					c.st = stPass
					return len(b), false
				}
				c.http10 = bytes.HasSuffix(bytes.TrimSuffix(c.lineTail, []byte("\r")), []byte("HTTP/1.0"))
				c.st = stLineStart
				continue
			}
			if len(c.firstLine) < 16 {
				c.firstLine = append(c.firstLine, b[i])
			}
			if len(c.lineTail) == 9 {
				c.lineTail = append(c.lineTail[:0], c.lineTail[1:]...)
			}
			c.lineTail = append(c.lineTail, b[i])
		case stLineStart:
			switch b[i] {
			case ' ', '\t':
				return i, true
			case '\r':
				continue // of an empty line, or of a line's own end
			case '\n':
				c.endOfHeaders()
				continue
			}
			c.st = stLine
			c.line = append(c.line[:0], b[i])
			c.lineLong = false
		case stLine:
			if b[i] == '\n' {
				c.headerLine()
				c.st = stLineStart
				continue
			}
			if len(c.line) < maxValue {
				c.line = append(c.line, b[i])
			} else {
				c.lineLong = true
			}
		case stBody:
			k := int64(len(b) - i)
			if k > c.remain {
				k = c.remain
			}
			c.remain -= k
			i += int(k) - 1
			if c.remain == 0 {
				c.startMessage()
			}
		case stChunkSize:
			switch d := b[i]; {
			case d == '\n':
				if c.chunkBad || c.digits == 0 {
					c.st = stPass // net/http refuses this body and closes
					return len(b), false
				}
				if c.chunk == 0 {
					c.trailer = true
					c.st = stLineStart
				} else {
					c.remain = c.chunk
					c.st = stChunkData
				}
			case c.chunkBad:
			case d == ';' || d == ' ' || d == '\t' || d == '\r':
				c.chunkExt = true
			case c.chunkExt:
			default:
				v, ok := hexDigit(d)
				if !ok || c.digits == 15 {
					c.chunkBad = true
					continue
				}
				c.chunk = c.chunk<<4 | v
				c.digits++
			}
		case stChunkData:
			k := int64(len(b) - i)
			if k > c.remain {
				k = c.remain
			}
			c.remain -= k
			i += int(k) - 1
			if c.remain == 0 {
				c.st = stChunkEnd
			}
		case stChunkEnd:
			if b[i] == '\n' {
				c.startChunk()
			}
		}
	}
	return len(b), false
}

func hexDigit(d byte) (int64, bool) {
	switch {
	case d >= '0' && d <= '9':
		return int64(d - '0'), true
	case d >= 'a' && d <= 'f':
		return int64(d-'a') + 10, true
	case d >= 'A' && d <= 'F':
		return int64(d-'A') + 10, true
	}
	return 0, false
}

func (c *foldConn) startMessage() {
	c.st = stMessageStart
	c.trailer = false
	c.http10, c.contentLength, c.clSeen, c.clBad = false, 0, false, false
	c.teCount, c.teChunked, c.upgrade = 0, false, false
}

func (c *foldConn) startChunk() {
	c.st = stChunkSize
	c.chunk, c.digits = 0, 0
	c.chunkExt, c.chunkBad = false, false
}

// headerLine notes the framing headers of the line just ended.
func (c *foldConn) headerLine() {
	if c.trailer {
		return
	}
	name, value, ok := bytes.Cut(c.line, []byte(":"))
	if !ok {
		return // net/http refuses the request
	}
	value = bytes.TrimSpace(value)
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		n, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil || c.lineLong || n < 0 || c.clSeen && n != c.contentLength {
			c.clBad = true
			return
		}
		c.contentLength, c.clSeen = n, true
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		c.teCount++
		c.teChunked = !c.lineLong && bytes.EqualFold(value, []byte("chunked"))
	case bytes.EqualFold(name, []byte("Upgrade")):
		c.upgrade = true
	}
}

// endOfHeaders moves to the body of the request whose headers just ended.
func (c *foldConn) endOfHeaders() {
	te := c.teCount > 0 && !c.http10
	switch {
	case c.trailer:
		c.startMessage()
	case c.clBad || te && (c.teCount > 1 || !c.teChunked):
		// Conflicting lengths or a transfer coding net/http does not
		// accept: it answers with an error and closes the connection.
		c.st = stPass
	case te:
		c.startChunk()
	case c.upgrade && c.contentLength == 0:
		c.mu.Lock()
		c.upgradeReq, c.answer = true, nil
		c.mu.Unlock()
		c.st = stUpgrade
	case c.contentLength > 0:
		c.remain = c.contentLength
		c.st = stBody
	default:
		c.startMessage()
	}
}
