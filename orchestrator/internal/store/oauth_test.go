package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestOAuthClientSecret(t *testing.T) {
	c := store.NewOAuthClient("jupyterhub-user-alice", "alice", "", "/user/alice/oauth_callback", nil, "s3cret")
	if !c.SecretMatches("s3cret") || c.SecretMatches("s3cre") || c.SecretMatches("") {
		t.Errorf("secret comparison wrong")
	}
}

func TestOAuthCodeOneTime(t *testing.T) {
	ctx := testContext(t)
	s, rdb := newStore(t)
	exp := time.Now().Add(5 * time.Minute).Truncate(time.Millisecond)
	code, err := s.CreateOAuthCode(ctx, store.OAuthCode{ClientID: "c", User: "alice", RedirectURI: "/r", Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.LookupOAuthCode(ctx, code)
	if err != nil || got.ClientID != "c" || got.User != "alice" || got.RedirectURI != "/r" || !got.Expires.Equal(exp) {
		t.Fatalf("code = %+v, %v", got, err)
	}
	if keys := rdb.Keys(ctx, prefix+"oauth-code:*").Val(); len(keys) != 1 || rdb.TTL(ctx, keys[0]).Val() <= 0 {
		t.Errorf("code keys %v: want one with a TTL", keys)
	} else if keys[0] == prefix+"oauth-code:"+code {
		t.Errorf("code stored in the clear")
	}
	if ok, err := s.DeleteOAuthCode(ctx, code); !ok || err != nil {
		t.Fatalf("first delete = %v, %v", ok, err)
	}
	if ok, err := s.DeleteOAuthCode(ctx, code); ok || err != nil {
		t.Errorf("second delete = %v, %v; want false", ok, err)
	}
	if _, err := s.LookupOAuthCode(ctx, code); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("used code: err = %v", err)
	}
}

func TestScopedToken(t *testing.T) {
	ctx := testContext(t)
	s, _ := newStore(t)
	want := []string{"access:servers!server=alice/", "access:servers!user=alice"}
	plain, tok, err := s.CreateScopedToken(ctx, "alice", "oauth", want, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.LookupToken(ctx, plain); err != nil || got.ID != tok.ID || got.User != "alice" || !slices.Equal(got.Scopes, want) {
		t.Fatalf("lookup = %+v, %v", got, err)
	}
	full, _, err := s.CreateToken(ctx, "alice", "all")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.LookupToken(ctx, full); err != nil || got.Scopes != nil {
		t.Errorf("unscoped token = %+v, %v; want nil scopes", got, err)
	}
}
