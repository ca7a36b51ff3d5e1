package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// OAuthClient is a single-user server registered as an OAuth client of the
// hub (JupyterHub's oauth_clients row). Its secret, the server's API token,
// is kept only as a SHA-256, like API tokens.
type OAuthClient struct {
	ID, User, Server, RedirectURI string
	// Scopes the client's access tokens get (its allowed scopes).
	Scopes     []string
	secretHash string
}

// SecretMatches compares secret with the registered one in constant time.
func (c OAuthClient) SecretMatches(secret string) bool {
	return c.secretHash != "" && subtle.ConstantTimeCompare([]byte(hashToken(secret)), []byte(c.secretHash)) == 1
}

// NewOAuthClient is a client that is not registered but derived, e.g. from
// a running server's record, with the secret it must present.
func NewOAuthClient(id, user, server, redirectURI string, scopes []string, secret string) OAuthClient {
	return OAuthClient{ID: id, User: user, Server: server, RedirectURI: redirectURI, Scopes: scopes, secretHash: hashToken(secret)}
}

// OAuthCode is an issued authorization code's grant.
type OAuthCode struct {
	ClientID, User, RedirectURI string
	Expires                     time.Time
}

const scopeSep = " "

// CreateOAuthCode stores c under a new random code and returns the code;
// Redis keeps only its hash and drops it a minute after c.Expires.
func (s *Store) CreateOAuthCode(ctx context.Context, c OAuthCode) (string, error) {
	plain, err := randomString(tokenBytes)
	if err != nil {
		return "", fmt.Errorf("create oauth code: %w", err)
	}
	key := s.key("oauth-code:", hashToken(plain))
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "client_id", c.ClientID, "user", c.User,
			"redirect_uri", c.RedirectURI, "expires", fmtTime(c.Expires))
		p.PExpire(ctx, key, max(c.Expires.Sub(s.now()), 0)+time.Minute)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("create oauth code for %q: %w", c.User, err)
	}
	return plain, nil
}

// LookupOAuthCode returns the code's grant; ErrNotFound if unknown or
// already used. Expiry is the caller's to check.
func (s *Store) LookupOAuthCode(ctx context.Context, plain string) (OAuthCode, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("oauth-code:", hashToken(plain))).Result()
	if err != nil {
		return OAuthCode{}, fmt.Errorf("look up oauth code: %w", err)
	}
	if m["client_id"] == "" {
		return OAuthCode{}, ErrNotFound
	}
	return OAuthCode{ClientID: m["client_id"], User: m["user"], RedirectURI: m["redirect_uri"],
		Expires: parseTime(m["expires"])}, nil
}

// DeleteOAuthCode consumes the code; false if it was already gone, so that
// of two concurrent redemptions only one wins.
func (s *Store) DeleteOAuthCode(ctx context.Context, plain string) (bool, error) {
	n, err := s.rdb.Del(ctx, s.key("oauth-code:", hashToken(plain))).Result()
	if err != nil {
		return false, fmt.Errorf("delete oauth code: %w", err)
	}
	return n == 1, nil
}

// CreateScopedToken is CreateTokenExpiring for a token limited to scopes
// (an OAuth access token, or an API token made with fewer scopes than its
// owner). A token without recorded scopes has all of its owner's;
// LookupToken returns them in Token.Scopes.
func (s *Store) CreateScopedToken(ctx context.Context, user, note string, scopes []string, expires time.Time) (string, Token, error) {
	plain, tok, err := s.CreateTokenExpiring(ctx, user, note, expires)
	if err != nil {
		return "", Token{}, err
	}
	// Nobody holds the token yet; without its scopes it would grant all of
	// its owner's, so it is deleted if they cannot be recorded.
	if err := s.rdb.HSet(ctx, s.key("token:", hashToken(plain)), "scopes", strings.Join(scopes, scopeSep)).Err(); err != nil {
		if derr := s.DeleteToken(context.WithoutCancel(ctx), user, tok.ID); derr != nil {
			err = errors.Join(err, derr)
		}
		return "", Token{}, fmt.Errorf("record scopes of token for %q: %w", user, err)
	}
	return plain, tok, nil
}

func splitScopes(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, scopeSep)
}
