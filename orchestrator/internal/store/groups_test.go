package store_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestGroups(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	if err := s.CreateGroup(ctx, "ta"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, "ta"); !errors.Is(err, store.ErrGroupExists) {
		t.Fatalf("second create: %v, want ErrGroupExists", err)
	}
	if err := s.AddGroupMembers(ctx, "ta", []string{"bob", "alice", "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Groups(ctx)
	want := map[string][]string{"ta": {"alice", "bob"}, "empty": {}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Groups = %v, %v; want %v", got, err, want)
	}
	if err := s.RemoveGroupMembers(ctx, "ta", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Groups(ctx); !reflect.DeepEqual(got["ta"], []string{"alice"}) {
		t.Fatalf("after removing bob: %v", got)
	}
	if err := s.DeleteGroup(ctx, "ta"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"delete again":        s.DeleteGroup(ctx, "ta"),
		"add to deleted":      s.AddGroupMembers(ctx, "ta", []string{"alice"}),
		"remove from deleted": s.RemoveGroupMembers(ctx, "ta", []string{"alice"}),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if got, _ := s.Groups(ctx); !reflect.DeepEqual(got, map[string][]string{"empty": {}}) {
		t.Fatalf("after delete: %v (a member add must not resurrect the group)", got)
	}
}
