package store_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestPolicyLists(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	if err := st.PutUser(ctx, store.User{Name: "ann", Admin: true, Allowed: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutUser(ctx, store.User{Name: "ben", Blocked: true}); err != nil {
		t.Fatal(err)
	}
	p := store.PolicyLists{Store: st}
	for _, c := range []struct {
		user                    string
		admin, allowed, blocked bool
	}{{"ann", true, true, false}, {"ben", false, false, true}, {"nobody", false, false, false}} {
		admin, err1 := p.IsAdmin(ctx, c.user)
		allowed, err2 := p.IsAllowed(ctx, c.user)
		blocked, err3 := p.IsBlocked(ctx, c.user)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("%s: %v %v %v", c.user, err1, err2, err3)
		}
		if admin != c.admin || allowed != c.allowed || blocked != c.blocked {
			t.Errorf("%s: admin %v allowed %v blocked %v", c.user, admin, allowed, blocked)
		}
	}
}

func TestAccessEventsRecordsAdminAccess(t *testing.T) {
	st, _ := newStore(t)
	a := &store.AccessEvents{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a.AdminAccess("root", "ann")
	evs, err := st.Events(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != "admin-access" || evs[0].User != "ann" || evs[0].Actor != "root" {
		t.Fatalf("events %+v", evs)
	}
}
