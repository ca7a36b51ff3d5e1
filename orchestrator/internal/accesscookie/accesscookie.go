// Package accesscookie mints and checks the cookies that open one user's
// server: an HMAC-SHA256 over who may pass, which server, which hub session
// vouches for it and until when. Checking one costs no Redis or Docker call;
// the caller still asks its session cache whether the session lives, so
// ending a session ends its cookies.
package accesscookie

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"sync"
	"sync/atomic"
	"time"
)

// Claims are what a cookie vouches for.
type Claims struct {
	User    string // who sends it
	Server  string // the one server it opens (canonical username)
	Session string // the hub session's hash (store.HashSessionID)
	Expires time.Time
}

var (
	// ErrNoKey: the signing key is not loaded yet (Redis unreachable at
	// start); nothing can be minted or accepted until it is.
	ErrNoKey = errors.New("access cookie key not loaded")
	// ErrInvalid: malformed, or not signed with the key.
	ErrInvalid = errors.New("invalid access cookie")
	// ErrExpired: genuine but past its expiry.
	ErrExpired = errors.New("expired access cookie")
)

const (
	version = 1
	macLen  = sha256.Size
	hashLen = sha256.Size
	// maxValue bounds what Verify decodes: two 255-byte names and the rest.
	maxValue = 1024
)

// Signer holds the key. The zero value has none; SetKey loads it.
type Signer struct {
	key  atomic.Pointer[signingKey]
	macs sync.Pool
}

type signingKey struct{ b []byte }

// SetKey installs the signing key (at least 32 bytes).
func (s *Signer) SetKey(key []byte) error {
	if len(key) < 32 {
		return errors.New("access cookie key: need at least 32 bytes")
	}
	k := &signingKey{b: append([]byte(nil), key...)}
	s.key.Store(k)
	return nil
}

// Ready reports whether a key is loaded.
func (s *Signer) Ready() bool { return s.key.Load() != nil }

// keyedMAC is an HMAC for one key with Verify's scratch space: pooled, so
// checking a cookie allocates little (HMAC set-up is most of a short
// message's cost, and buffers handed to a hash.Hash escape).
type keyedMAC struct {
	key *signingKey
	h   hash.Hash
	buf [maxValue]byte
	sum [macLen]byte
}

// mac returns an HMAC for key k from the pool.
func (s *Signer) mac(k *signingKey) *keyedMAC {
	if m, ok := s.macs.Get().(*keyedMAC); ok && m.key == k {
		m.h.Reset()
		return m
	}
	return &keyedMAC{key: k, h: hmac.New(sha256.New, k.b)}
}

// Sign mints the cookie value for c.
func (s *Signer) Sign(c Claims) (string, error) {
	k := s.key.Load()
	if k == nil {
		return "", ErrNoKey
	}
	sess, err := hex.DecodeString(c.Session)
	if err != nil || len(sess) != hashLen {
		return "", errors.New("access cookie: session must be a hex SHA-256")
	}
	if c.User == "" || c.Server == "" || len(c.User) > 255 || len(c.Server) > 255 {
		return "", errors.New("access cookie: user and server must be 1 to 255 bytes")
	}
	b := make([]byte, 0, 1+8+hashLen+2+len(c.User)+len(c.Server)+macLen)
	b = append(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Expires.Unix()))
	b = append(b, sess...)
	b = append(b, byte(len(c.User)))
	b = append(b, c.User...)
	b = append(b, byte(len(c.Server)))
	b = append(b, c.Server...)
	m := s.mac(k)
	m.h.Write(b)
	b = m.h.Sum(b)
	s.macs.Put(m)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Verify checks value's signature and expiry and returns its claims.
func (s *Signer) Verify(value string, now time.Time) (Claims, error) {
	k := s.key.Load()
	if k == nil {
		return Claims{}, ErrNoKey
	}
	if base64.RawURLEncoding.DecodedLen(len(value)) > maxValue {
		return Claims{}, ErrInvalid
	}
	m := s.mac(k)
	defer s.macs.Put(m)
	n, err := base64.RawURLEncoding.Decode(m.buf[:], []byte(value))
	if err != nil || n < 1+8+hashLen+2+macLen {
		return Claims{}, ErrInvalid
	}
	b, sig := m.buf[:n-macLen], m.buf[n-macLen:n]
	m.h.Write(b)
	if !hmac.Equal(m.h.Sum(m.sum[:0]), sig) || b[0] != version {
		return Claims{}, ErrInvalid
	}
	exp := int64(binary.BigEndian.Uint64(b[1:9]))
	sess := b[9 : 9+hashLen]
	rest := b[9+hashLen:]
	user, rest, ok := field(rest)
	if !ok {
		return Claims{}, ErrInvalid
	}
	server, rest, ok := field(rest)
	if !ok || len(rest) != 0 || user == "" || server == "" {
		return Claims{}, ErrInvalid
	}
	c := Claims{User: user, Server: server, Session: hex.EncodeToString(sess), Expires: time.Unix(exp, 0)}
	if !now.Before(c.Expires) {
		return c, ErrExpired
	}
	return c, nil
}

// field reads one length-prefixed string.
func field(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}
