package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// TestServerTokenFollowsTheRecord checks that a jupyterhub-singleuser
// server's token is a hub API token of its user exactly while the server is
// starting or running, whichever way the record changes.
func TestServerTokenFollowsTheRecord(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	tokA, tokB := strings.Repeat("a1", 32), strings.Repeat("b2", 32)

	valid := func(plain string) bool {
		t.Helper()
		tok, err := s.LookupToken(ctx, plain)
		if errors.Is(err, store.ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		if tok.User != "alice" || tok.Kind != store.TokenKindServer || tok.ID != store.ServerTokenID || !tok.Expires.IsZero() {
			t.Errorf("server token metadata %+v", tok)
		}
		return true
	}

	// The token contract: the server token is no hub token.
	if err := s.PutServer(ctx, store.Server{User: "alice", State: store.StateRunning, Token: tokA}); err != nil {
		t.Fatal(err)
	}
	if valid(tokA) {
		t.Fatal("a token-contract server's token works as a hub token")
	}

	rec := store.Server{User: "alice", State: store.StateStarting, Token: tokA, HubToken: true}
	if err := s.PutServer(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if !valid(tokA) {
		t.Fatal("starting server's token is no hub token")
	}
	got, err := s.GetServer(ctx, "alice")
	if err != nil || !got.HubToken {
		t.Fatalf("record %+v, %v: HubToken not kept", got, err)
	}
	toks, err := s.ListTokens(ctx, "alice")
	if err != nil || len(toks) != 1 || toks[0].Note != "server" {
		t.Fatalf("tokens %+v, %v; want the one server token", toks, err)
	}

	// Running with the same token: still valid. A restart with a new token
	// replaces the old one.
	if _, err := s.UpdateServer(ctx, "alice", func(v *store.Server, _ bool) error { v.State = store.StateRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	if !valid(tokA) {
		t.Fatal("running server's token is no hub token")
	}
	rec.Token = tokB
	if err := s.PutServer(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if valid(tokA) || !valid(tokB) {
		t.Fatal("a new start did not replace the server token")
	}

	// Stopped (Stop keeps the token on the record), failed, token cleared
	// by reconcile, record deleted: each revokes it.
	for _, change := range []struct {
		name string
		fn   func(v *store.Server)
	}{
		{"stopped", func(v *store.Server) { v.State = store.StateStopped }},
		{"failed", func(v *store.Server) { v.State = store.StateFailed }},
		{"token cleared", func(v *store.Server) { v.Token = "" }},
	} {
		if err := s.PutServer(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if !valid(tokB) {
			t.Fatalf("%s: setup: server token missing", change.name)
		}
		if _, err := s.UpdateServer(ctx, "alice", func(v *store.Server, _ bool) error { change.fn(v); return nil }); err != nil {
			t.Fatal(err)
		}
		if valid(tokB) {
			t.Errorf("%s: the server token still works", change.name)
		}
	}
	if err := s.PutServer(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteServer(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if valid(tokB) {
		t.Error("deleted record: the server token still works")
	}
	if toks, err := s.ListTokens(ctx, "alice"); err != nil || len(toks) != 0 {
		t.Errorf("tokens %+v, %v after the record was deleted; want none", toks, err)
	}
}
