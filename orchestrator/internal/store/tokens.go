package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// Token is an API token's metadata. The plain token is shown once, at
// creation; Redis holds only its SHA-256.
type Token struct {
	ID, User, Note    string
	Kind              string // "" for tokens users and admins create; TokenKindServer
	Created, LastUsed time.Time
	Expires           time.Time // zero: never
	// Scopes the token is limited to; nil: all of its owner's.
	Scopes []string
}

// expired says whether the token may no longer be used at now.
func (t Token) expired(now time.Time) bool { return !t.Expires.IsZero() && !now.Before(t.Expires) }

const tokenBytes = 32

func hashToken(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

func tokenFrom(m map[string]string) Token {
	return Token{
		ID:       m["id"],
		User:     m["user"],
		Note:     m["note"],
		Kind:     m["kind"],
		Created:  parseTime(m["created"]),
		LastUsed: parseTime(m["last_used"]),
		Expires:  parseTime(m["expires"]),
		Scopes:   splitScopes(m["scopes"]),
	}
}

// CreateToken makes a token for user that does not expire. plain (64 hex
// digits) is returned only here; use it as "Authorization: token PLAIN".
func (s *Store) CreateToken(ctx context.Context, user, note string) (string, Token, error) {
	return s.CreateTokenExpiring(ctx, user, note, time.Time{})
}

// CreateTokenExpiring is CreateToken for a token that stops working at
// expires (zero: never). Redis drops the expired token's record a minute
// later; its id lingers in the user's index until the next delete.
func (s *Store) CreateTokenExpiring(ctx context.Context, user, note string, expires time.Time) (string, Token, error) {
	if user == "" {
		return "", Token{}, errors.New("create token: empty user")
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	plain := hex.EncodeToString(raw)
	idRaw := make([]byte, 6)
	if _, err := rand.Read(idRaw); err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	tok := Token{ID: hex.EncodeToString(idRaw), User: user, Note: note, Created: s.now(), Expires: expires}
	h := hashToken(plain)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key("token:", h),
			"id", tok.ID, "user", user, "note", note,
			"created", fmtTime(tok.Created), "last_used", "0", "expires", fmtTime(expires))
		if !expires.IsZero() {
			// Relative, so that the store's clock (not Redis') decides.
			p.PExpire(ctx, s.key("token:", h), max(expires.Sub(tok.Created), 0)+time.Minute)
		}
		p.HSet(ctx, s.key("user-tokens:", user), tok.ID, h)
		return nil
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("create token for %q: %w", user, err)
	}
	return plain, tok, nil
}

// TokenKindServer marks the token of a user's running jupyterhub-singleuser
// server (see Server.HubToken); its ID is always ServerTokenID, so a user
// has at most one.
const (
	TokenKindServer = "server"
	ServerTokenID   = "server"
)

// setServerToken makes the user's server token the one hashed ARGV[2], or
// removes it when ARGV[2] is empty. An unchanged token keeps its record
// (created, last_used).
// KEYS: user index. ARGV: token key prefix, hash, user, created.
var setServerToken = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], 'server')
if old == ARGV[2] then return 0 end
if old then
  redis.call('DEL', ARGV[1] .. old)
  redis.call('HDEL', KEYS[1], 'server')
end
if ARGV[2] == '' then return 1 end
redis.call('HSET', ARGV[1] .. ARGV[2], 'id', 'server', 'user', ARGV[3], 'note', 'server', 'kind', 'server',
  'created', ARGV[4], 'last_used', '0', 'expires', '0')
redis.call('HSET', KEYS[1], 'server', ARGV[2])
return 1
`)

// syncServerToken queues, in p, the change that makes v's server token
// exist exactly when v is an active server with a hub token.
func (s *Store) syncServerToken(ctx context.Context, p redis.Pipeliner, v Server) {
	h := ""
	if v.HubToken && v.Token != "" && (v.State == StateStarting || v.State == StateRunning) {
		h = hashToken(v.Token)
	}
	// Eval, not EvalSha: inside MULTI a missing script cannot be retried.
	setServerToken.Eval(ctx, p, []string{s.key("user-tokens:", v.User)}, s.key("token:"), h, v.User, fmtTime(s.now()))
}

// touchToken never recreates a token deleted since it was read.
var touchToken = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_used', ARGV[1])
return 1
`)

// LookupToken finds the token by its hash; ErrNotFound for an unknown or
// malformed token. It writes last_used at most once a minute per token.
func (s *Store) LookupToken(ctx context.Context, plain string) (Token, error) {
	if len(plain) != 2*tokenBytes {
		return Token{}, ErrNotFound
	}
	if _, err := hex.DecodeString(plain); err != nil {
		return Token{}, ErrNotFound
	}
	key := s.key("token:", hashToken(plain))
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return Token{}, fmt.Errorf("look up token: %w", err)
	}
	if m["user"] == "" {
		return Token{}, ErrNotFound
	}
	tok := tokenFrom(m)
	now := s.now()
	if tok.expired(now) {
		return Token{}, ErrNotFound
	}
	if now.Sub(tok.LastUsed) >= touchInterval {
		if err := touchToken.Run(ctx, s.rdb, []string{key}, fmtTime(now)).Err(); err != nil {
			return Token{}, fmt.Errorf("update token use: %w", err)
		}
		tok.LastUsed = now
	}
	return tok, nil
}

// ListTokens returns user's tokens, oldest first.
func (s *Store) ListTokens(ctx context.Context, user string) ([]Token, error) {
	idx, err := s.rdb.HGetAll(ctx, s.key("user-tokens:", user)).Result()
	if err != nil {
		return nil, fmt.Errorf("list tokens of %q: %w", user, err)
	}
	ids := make([]string, 0, len(idx))
	cmds := make([]*redis.MapStringStringCmd, 0, len(idx))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id, h := range idx {
			ids = append(ids, id)
			cmds = append(cmds, p.HGetAll(ctx, s.key("token:", h)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens of %q: %w", user, err)
	}
	out := make([]Token, 0, len(cmds))
	now := s.now()
	for _, c := range cmds {
		if m := c.Val(); m["user"] != "" {
			if t := tokenFrom(m); !t.expired(now) {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// deleteToken removes one token of a user by id.
// KEYS: user index. ARGV: id, token key prefix.
var deleteToken = redis.NewScript(`
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then return 0 end
redis.call('DEL', ARGV[2] .. h)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`)

// deleteUserTokens removes all of a user's tokens.
// KEYS: user index. ARGV: token key prefix.
var deleteUserTokens = redis.NewScript(`
local hs = redis.call('HVALS', KEYS[1])
local n = 0
for _, h in ipairs(hs) do n = n + redis.call('DEL', ARGV[1] .. h) end
redis.call('DEL', KEYS[1])
return n
`)

// DeleteToken revokes user's token id; ErrNotFound when user has no such token.
func (s *Store) DeleteToken(ctx context.Context, user, id string) error {
	n, err := deleteToken.Run(ctx, s.rdb, []string{s.key("user-tokens:", user)}, id, s.key("token:")).Int()
	if err != nil {
		return fmt.Errorf("delete token %s of %q: %w", id, user, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteUserTokens revokes every token of user and returns how many there were.
func (s *Store) DeleteUserTokens(ctx context.Context, user string) (int, error) {
	n, err := deleteUserTokens.Run(ctx, s.rdb, []string{s.key("user-tokens:", user)}, s.key("token:")).Int()
	if err != nil {
		return 0, fmt.Errorf("delete tokens of %q: %w", user, err)
	}
	return n, nil
}
