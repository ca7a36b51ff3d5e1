package auth_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

// Per user and address: the first Each failures one by one, then summaries
// at 10, 100, 1000; a new window starts over.
func TestFailureLogSummarisesAPairsFlood(t *testing.T) {
	clk := testsupport.NewClock(time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC))
	f := auth.NewFailureLog(newMemCounter(clk.Now), auth.FailureLogOptions{Each: 3, Max: 1000, Window: time.Minute})
	var recorded []int
	for i := 1; i <= 1000; i++ {
		v, err := f.Note(context.Background(), "alice", "2001:db8::1")
		if err != nil {
			t.Fatal(err)
		}
		if v.Record {
			recorded = append(recorded, i)
			if (i > 3) != strings.Contains(v.Message, fmt.Sprintf("%d failed logins from 2001:db8::/64", i)) {
				t.Errorf("failure %d: message %q", i, v.Message)
			}
		}
	}
	if fmt.Sprint(recorded) != "[1 2 3 10 100 1000]" {
		t.Fatalf("recorded failures %v, want [1 2 3 10 100 1000]", recorded)
	}
	clk.Advance(time.Minute)
	if v, _ := f.Note(context.Background(), "alice", "2001:db8::1"); !v.Record || v.Message != "" {
		t.Fatalf("first failure of a new window: %+v", v)
	}
}

// Over everything at most Max events per window, then one notice.
func TestFailureLogCapsAllEvents(t *testing.T) {
	clk := testsupport.NewClock(time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC))
	f := auth.NewFailureLog(newMemCounter(clk.Now), auth.FailureLogOptions{Max: 5, Window: time.Minute})
	n, notices := 0, 0
	for i := range 50 {
		v, err := f.Note(context.Background(), fmt.Sprintf("u%d", i), "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if v.Record {
			n++
		}
		if strings.Contains(v.Message, "only counted") {
			notices++
		}
	}
	if n != 6 || notices != 1 {
		t.Fatalf("50 failures recorded %d events (%d notices), want 5 and one notice", n, notices)
	}
}

// A ban's first refusal is recorded even after the failures that caused it
// filled their quota: the admin must see why the student cannot log in.
func TestFailureLogRecordsTheBanApart(t *testing.T) {
	clk := testsupport.NewClock(time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC))
	f := auth.NewFailureLog(newMemCounter(clk.Now), auth.FailureLogOptions{Each: 3, Max: 1000, Window: time.Minute})
	for range 4 {
		if _, err := f.Note(context.Background(), "bob", "192.0.2.7"); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := f.Note(context.Background(), "bob", "192.0.2.7"); v.Record {
		t.Fatalf("the 5th failure was recorded: %+v", v)
	}
	if v, err := f.NoteBan(context.Background(), "bob", "192.0.2.7"); err != nil || !v.Record || v.Message != "" {
		t.Fatalf("the ban's first refusal: %+v, %v; want it recorded as it is", v, err)
	}
}
