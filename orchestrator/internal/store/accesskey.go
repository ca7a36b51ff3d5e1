package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// AccessCookieKey returns the key that signs servers' access cookies,
// creating it on first use. Every replica reads the same key, so a cookie
// minted by one is accepted by all; whoever can read Redis can mint one,
// but could create a session just as well.
func (s *Store) AccessCookieKey(ctx context.Context) ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("access cookie key: %w", err)
	}
	k := s.key("access-cookie-key")
	if err := s.rdb.SetNX(ctx, k, base64.RawStdEncoding.EncodeToString(b), 0).Err(); err != nil {
		return nil, fmt.Errorf("create the access cookie key: %w", err)
	}
	v, err := s.rdb.Get(ctx, k).Result()
	if err != nil {
		return nil, fmt.Errorf("read the access cookie key: %w", err)
	}
	key, err := base64.RawStdEncoding.DecodeString(v)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("the access cookie key in Redis (%s) is not 32 base64 bytes", k)
	}
	return key, nil
}
