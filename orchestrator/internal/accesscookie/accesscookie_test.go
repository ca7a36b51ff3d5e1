package accesscookie_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/accesscookie"
)

func signer(t *testing.T, key string) *accesscookie.Signer {
	t.Helper()
	s := &accesscookie.Signer{}
	if err := s.SetKey([]byte(key)); err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	now    = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	claims = accesscookie.Claims{User: "prof", Server: "a.b-c", Session: strings.Repeat("ab", 32), Expires: now.Add(time.Hour)}
)

func TestRoundTrip(t *testing.T) {
	s := signer(t, strings.Repeat("k", 32))
	v, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(v, now)
	if err != nil || got.User != claims.User || got.Server != claims.Server || got.Session != claims.Session || !got.Expires.Equal(claims.Expires) {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, claims)
	}
	if _, err := s.Verify(v, claims.Expires); !errors.Is(err, accesscookie.ErrExpired) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
	if _, err := signer(t, strings.Repeat("j", 32)).Verify(v, now); !errors.Is(err, accesscookie.ErrInvalid) {
		t.Errorf("another key: %v, want ErrInvalid", err)
	}
}

// TestEveryBitIsCovered: flipping any bit of the decoded value (claims or
// MAC) makes it invalid.
func TestEveryBitIsCovered(t *testing.T) {
	s := signer(t, strings.Repeat("k", 32))
	v, _ := s.Sign(claims)
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			if _, err := s.Verify(base64.RawURLEncoding.EncodeToString(b), now); !errors.Is(err, accesscookie.ErrInvalid) {
				t.Fatalf("byte %d bit %d flipped: %v, want ErrInvalid", i, bit, err)
			}
		}
	}
	for _, bad := range []string{"", "x", v[:len(v)-1], v + "A", strings.Repeat("A", 2000), "!" + v[1:]} {
		if _, err := s.Verify(bad, now); !errors.Is(err, accesscookie.ErrInvalid) {
			t.Errorf("Verify(%.20q...) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestNoKeyNoCookie(t *testing.T) {
	s := &accesscookie.Signer{}
	if _, err := s.Sign(claims); !errors.Is(err, accesscookie.ErrNoKey) {
		t.Errorf("Sign without a key: %v", err)
	}
	if _, err := s.Verify("x", now); !errors.Is(err, accesscookie.ErrNoKey) {
		t.Errorf("Verify without a key: %v", err)
	}
	if err := s.SetKey([]byte("short")); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestSignRefusesBadClaims(t *testing.T) {
	s := signer(t, strings.Repeat("k", 32))
	for name, c := range map[string]accesscookie.Claims{
		"no user":        {Server: "a", Session: claims.Session},
		"no server":      {User: "a", Session: claims.Session},
		"long user":      {User: strings.Repeat("u", 256), Server: "a", Session: claims.Session},
		"raw session id": {User: "a", Server: "a", Session: "not-a-hash"},
	} {
		if _, err := s.Sign(c); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}
