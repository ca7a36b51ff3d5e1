package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Session is a logged-in browser. The ID is the cookie value, known only to
// the browser: Redis keys and indexes hold its Hash, so reading Redis (or a
// backup of it) yields no cookie. ID is empty on a session read by Hash.
// XSRF is the token every state-changing cookie-authenticated request must
// carry.
type Session struct {
	ID, Hash, User, XSRF string
	Created, LastSeen    time.Time
}

const sessionIDLen = 43 // 32 bytes, base64url without padding

// HashSessionID is what Redis stores in place of a session id: the hex
// SHA-256 of it. The id is 32 random bytes, so no salt or slow hash is needed.
func HashSessionID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// createSession stores the session, indexes its hash under the user and
// makes sure the index lives at least as long as the new session.
// KEYS: session, index. ARGV: id hash, ttl ms, index ttl ms, field, value, ...
var createSession = redis.NewScript(`
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
`)

// touchSession never recreates a session deleted since it was read.
// KEYS: session. ARGV: last_seen, ttl ms.
var touchSession = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// deleteSession removes the session and its index entry.
// KEYS: session. ARGV: id hash, index key prefix.
var deleteSession = redis.NewScript(`
local user = redis.call('HGET', KEYS[1], 'user')
redis.call('DEL', KEYS[1])
if user then redis.call('SREM', ARGV[2] .. user, ARGV[1]) end
return 1
`)

// deleteUserSessions ends every session in the user's index.
// KEYS: index. ARGV: session key prefix.
var deleteUserSessions = redis.NewScript(`
local ids = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, id in ipairs(ids) do n = n + redis.call('DEL', ARGV[1] .. id) end
redis.call('DEL', KEYS[1])
return n
`)

// touchAfter is how old last_seen must be before a read writes it back:
// at most a minute, and well inside the idle timeout so sliding still works
// with short timeouts.
func touchAfter(idle time.Duration) time.Duration {
	return min(touchInterval, idle/4)
}

// CreateSession starts a session with a fresh random id and XSRF token. It
// expires after idle without use, and after absolute in any case.
func (s *Store) CreateSession(ctx context.Context, user string, idle, absolute time.Duration) (Session, error) {
	if user == "" {
		return Session{}, errors.New("create session: empty user")
	}
	if idle <= 0 || absolute <= 0 {
		return Session{}, fmt.Errorf("create session: idle (%s) and absolute (%s) lifetimes must be positive", idle, absolute)
	}
	id, err := randomString(32)
	if err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	xsrf, err := randomString(32)
	if err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	now := s.now()
	sess := Session{ID: id, Hash: HashSessionID(id), User: user, XSRF: xsrf, Created: now, LastSeen: now}
	if err := s.pruneUserSessions(ctx, user); err != nil {
		return Session{}, err
	}
	err = createSession.Run(ctx, s.rdb,
		[]string{s.key("session:", sess.Hash), s.key("user-sessions:", user)},
		sess.Hash, ms(min(idle, absolute)), ms(absolute),
		"user", user, "xsrf", xsrf, "created", fmtTime(now), "last_seen", fmtTime(now),
	).Err()
	if err != nil {
		return Session{}, fmt.Errorf("create session for %q: %w", user, err)
	}
	return sess, nil
}

// pruneUserSessions drops index entries whose session expired, so the index
// stays as small as the set of live sessions.
func (s *Store) pruneUserSessions(ctx context.Context, user string) error {
	idx := s.key("user-sessions:", user)
	ids, err := s.rdb.SMembers(ctx, idx).Result()
	if err != nil {
		return fmt.Errorf("list sessions of %q: %w", user, err)
	}
	if len(ids) == 0 {
		return nil
	}
	cmds := make([]*redis.IntCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Exists(ctx, s.key("session:", id))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check sessions of %q: %w", user, err)
	}
	var stale []any
	for i, c := range cmds {
		if c.Val() == 0 {
			stale = append(stale, ids[i])
		}
	}
	if len(stale) > 0 {
		err := pruneIndex.Run(ctx, s.rdb, []string{idx}, append([]any{s.key("session:")}, stale...)...).Err()
		if err != nil {
			return fmt.Errorf("prune sessions of %q: %w", user, err)
		}
	}
	return nil
}

// GetSession returns a live session, or ErrNotFound when it is missing or
// expired. It slides the idle expiry, writing to Redis only when last_seen
// is older than min(1 minute, idle/4), so the effective idle timeout lies
// between idle minus that interval and idle.
func (s *Store) GetSession(ctx context.Context, id string, idle, absolute time.Duration) (Session, error) {
	if !validSessionID(id) {
		return Session{}, ErrNotFound
	}
	sess, err := s.GetSessionByHash(ctx, HashSessionID(id), idle, absolute)
	sess.ID = id
	return sess, err
}

// GetSessionByHash is GetSession for a caller that holds only the hash (a
// server's access cookie binds the session by its hash).
func (s *Store) GetSessionByHash(ctx context.Context, hash string, idle, absolute time.Duration) (Session, error) {
	if !validSessionHash(hash) {
		return Session{}, ErrNotFound
	}
	key := s.key("session:", hash)
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	if m["user"] == "" {
		return Session{}, ErrNotFound
	}
	sess := Session{Hash: hash, User: m["user"], XSRF: m["xsrf"], Created: parseTime(m["created"]), LastSeen: parseTime(m["last_seen"])}
	now := s.now()
	remaining := sess.Created.Add(absolute).Sub(now)
	if remaining <= 0 || now.Sub(sess.LastSeen) >= idle {
		// Expired by our clock or by a shortened configuration.
		if err := s.deleteSession(ctx, hash); err != nil {
			return Session{}, err
		}
		return Session{}, ErrNotFound
	}
	if now.Sub(sess.LastSeen) >= touchAfter(idle) {
		ok, err := touchSession.Run(ctx, s.rdb, []string{key}, fmtTime(now), ms(min(idle, remaining))).Int()
		if err != nil {
			return Session{}, fmt.Errorf("refresh session: %w", err)
		}
		if ok == 0 {
			return Session{}, ErrNotFound
		}
		sess.LastSeen = now
	}
	return sess, nil
}

func validSessionID(id string) bool {
	if len(id) != sessionIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validSessionHash(h string) bool {
	if len(h) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// DeleteSession ends one session (logout). Deleting a missing session is
// not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if !validSessionID(id) {
		return nil
	}
	return s.deleteSession(ctx, HashSessionID(id))
}

func (s *Store) deleteSession(ctx context.Context, hash string) error {
	err := deleteSession.Run(ctx, s.rdb, []string{s.key("session:", hash)}, hash, s.key("user-sessions:")).Err()
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of user and returns how many were
// live. Replicas that cache sessions learn of it only through PublishRevoke,
// which the caller sends after this.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) (int, error) {
	n, err := deleteUserSessions.Run(ctx, s.rdb, []string{s.key("user-sessions:", user)}, s.key("session:")).Int()
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %q: %w", user, err)
	}
	return n, nil
}
