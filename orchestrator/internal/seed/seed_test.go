package seed

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

// Seeding adds and flags users but never clears a flag an admin set.
func TestUsersMergesNeverRemoves(t *testing.T) {
	ctx := context.Background()
	st := store.New(testenv.RedisClient(t), "seedtest:")
	n, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := st.PutUser(ctx, store.User{Name: "carol", Blocked: true, Admin: true}); err != nil {
		t.Fatal(err)
	}
	var cfg config.Config
	cfg.Auth.AdminUsers = []string{"Alice"}
	cfg.Auth.AllowedUsers = []string{"bob"}
	cfg.Auth.BlockedUsers = []string{"bob"}
	cfg.Auth.AllowedUsers = append(cfg.Auth.AllowedUsers, "carol")
	cfg.Notebook.InstructorUsers = []string{"Dave"}
	if err := st.EnsureGroupMembers(ctx, store.InstructorsGroup, []string{"erin"}); err != nil {
		t.Fatal(err)
	}
	if err := Users(ctx, st, n, cfg, log); err != nil {
		t.Fatal(err)
	}
	groups, err := st.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := groups[store.InstructorsGroup]; len(got) != 2 || got[0] != "dave" || got[1] != "erin" {
		t.Errorf("instructors group = %v, want the configured dave beside erin, whom an admin added", got)
	}
	want := map[string]store.User{
		"alice": {Admin: true, Allowed: true},
		"bob":   {Allowed: true, Blocked: true},
		"carol": {Admin: true, Allowed: true, Blocked: true},
	}
	for name, w := range want {
		u, err := st.GetUser(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if u.Admin != w.Admin || u.Allowed != w.Allowed || u.Blocked != w.Blocked {
			t.Errorf("%s = %+v, want admin %v allowed %v blocked %v", name, u, w.Admin, w.Allowed, w.Blocked)
		}
		if name != "carol" && u.Created.IsZero() {
			t.Errorf("%s has no creation time", name)
		}
	}

	var state State
	state.Set(context.Canceled)
	if state.Check(ctx) == nil {
		t.Error("Check passes after a failed seeding")
	}
	state.Set(nil)
	if err := state.Check(ctx); err != nil {
		t.Errorf("Check after success: %v", err)
	}
}
