package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestUsers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)

	if _, err := s.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser of unknown user: %v, want ErrNotFound", err)
	}
	created := time.UnixMilli(1_700_000_000_000)
	want := []store.User{
		{Name: "alice", Allowed: true, Created: created},
		{Name: "bob", Blocked: true, Created: created, LastLogin: created.Add(time.Hour)},
		{Name: "data8", Admin: true, Allowed: true},
	}
	for _, u := range []store.User{want[2], want[0], want[1]} {
		if err := s.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetUser(ctx, "bob")
	if err != nil || !reflect.DeepEqual(got, want[1]) {
		t.Errorf("GetUser(bob) = %+v, %v; want %+v", got, err, want[1])
	}
	list, err := s.ListUsers(ctx)
	if err != nil || !reflect.DeepEqual(list, want) {
		t.Errorf("ListUsers = %+v, %v; want %+v", list, err, want)
	}

	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user still found: %v", err)
	}
	list, err = s.ListUsers(ctx)
	if err != nil || len(list) != 2 {
		t.Errorf("ListUsers after delete = %+v, %v", list, err)
	}
}

func TestUpdateUserLosesNoConcurrentChange(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	if err := s.PutUser(ctx, store.User{Name: "alice", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	// Many logins record their time while an admin blocks the user: the
	// block must survive (a plain Get+Put would race).
	var wg sync.WaitGroup
	errs := make(chan error, 21)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateUser(ctx, "alice", func(u *store.User, exists bool) error {
				u.LastLogin = time.UnixMilli(int64(1_700_000_000_000 + i))
				return nil
			})
			errs <- err
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := s.UpdateUser(ctx, "alice", func(u *store.User, exists bool) error {
			u.Blocked = true
			return nil
		})
		errs <- err
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Blocked || !u.Allowed || u.LastLogin.IsZero() {
		t.Errorf("after concurrent updates: %+v, want blocked, allowed and a login time", u)
	}

	// An error from fn writes nothing; a missing user is offered as new.
	boom := errors.New("boom")
	if _, err := s.UpdateUser(ctx, "carol", func(u *store.User, exists bool) error {
		if exists {
			t.Error("carol reported as existing")
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("UpdateUser error = %v, want boom", err)
	}
	if _, err := s.GetUser(ctx, "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("aborted update created carol: %v", err)
	}
}

func TestServers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	now := time.UnixMilli(1_700_000_000_000)
	a := store.Server{User: "alice", State: store.StateRunning, ServiceID: "svc1", ServiceName: "jupyter-alice",
		Token: "tok", Image: "notebook:1", Addr: "10.0.0.5:8888", Instructor: true, Requested: now, Started: now, Ready: now}
	b := store.Server{User: "bob", State: store.StateFailed, Error: "no such image"}
	for _, v := range []store.Server{b, a} {
		if err := s.PutServer(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.GetServer(ctx, "alice"); err != nil || !reflect.DeepEqual(got, a) {
		t.Errorf("GetServer(alice) = %+v, %v; want %+v", got, err, a)
	}
	if list, err := s.ListServers(ctx); err != nil || !reflect.DeepEqual(list, []store.Server{a, b}) {
		t.Errorf("ListServers = %+v, %v", list, err)
	}
	got, err := s.UpdateServer(ctx, "alice", func(v *store.Server, exists bool) error {
		if !exists {
			return fmt.Errorf("alice's server should exist")
		}
		v.State = store.StateStopped
		return nil
	})
	if err != nil || got.State != store.StateStopped || got.ServiceID != "svc1" {
		t.Errorf("UpdateServer = %+v, %v", got, err)
	}
	if err := s.DeleteServer(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetServer(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted server still found: %v", err)
	}
	if list, err := s.ListServers(ctx); err != nil || len(list) != 1 || list[0].User != "bob" {
		t.Errorf("ListServers after delete = %+v, %v", list, err)
	}
}

func TestPrefixIsolatesStores(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, rdb := newStore(t)
	a := store.New(rdb, "a:")
	b := store.New(rdb, "b:")
	if err := a.PutUser(ctx, store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store b sees store a's user: %v", err)
	}
	if err := a.Ping(ctx); err != nil {
		t.Error(err)
	}
	if a.Client() != rdb {
		t.Error("Client() is not the client given to New")
	}
}

func TestDeletedUserLeavesTombstoneUntilRecreated(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	if err := st.PutUser(ctx, store.User{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if del, _ := st.WasDeleted(ctx, "gone"); del {
		t.Fatal("existing user reported as deleted")
	}
	if err := st.DeleteUser(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if del, err := st.WasDeleted(ctx, "gone"); err != nil || !del {
		t.Fatalf("deleted user: WasDeleted=%v err=%v", del, err)
	}
	if del, _ := st.WasDeleted(ctx, "never-existed"); del {
		t.Fatal("unknown user reported as deleted")
	}
	if err := st.PutUser(ctx, store.User{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if del, _ := st.WasDeleted(ctx, "gone"); del {
		t.Fatal("re-created user still reported as deleted")
	}
}

func TestGetUsersReadsOnlyTheNamedOnes(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		if err := st.PutUser(ctx, store.User{Name: n, Admin: n == "b"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.GetUsers(ctx, []string{"b", "c", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["b"].Admin || got["c"].Admin {
		t.Fatalf("GetUsers = %+v", got)
	}
	if got, err := st.GetUsers(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("GetUsers(nil) = %v, %v", got, err)
	}
}

func TestGetAdmission(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := newStore(t)
	created := time.UnixMilli(1_700_000_000_000)
	for _, u := range []store.User{
		{Name: "alice", Allowed: true, Created: created},
		{Name: "bob", Blocked: true, Created: created},
		{Name: "data8", Admin: true, Allowed: true},
	} {
		if err := s.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		user string
		want store.Admission
	}{
		{"alice", store.Admission{Exists: true, Allowed: true, Created: created}},
		{"bob", store.Admission{Exists: true, Blocked: true, Created: created}},
		{"data8", store.Admission{Exists: true, Admin: true, Allowed: true}},
		{"nobody", store.Admission{}},
	}
	for _, tc := range cases {
		got, err := s.GetAdmission(ctx, tc.user)
		if err != nil {
			t.Fatalf("GetAdmission(%q): %v", tc.user, err)
		}
		if !got.Created.Equal(tc.want.Created) {
			t.Errorf("GetAdmission(%q).Created = %v, want %v", tc.user, got.Created, tc.want.Created)
		}
		got.Created, tc.want.Created = time.Time{}, time.Time{}
		if got != tc.want {
			t.Errorf("GetAdmission(%q) = %+v, want %+v", tc.user, got, tc.want)
		}
	}
}
