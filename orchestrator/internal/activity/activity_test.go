package activity

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

type fakeSink struct {
	fail    bool
	batches []map[string]time.Time
}

func (f *fakeSink) RecordActivity(_ context.Context, b map[string]time.Time) error {
	if f.fail {
		return errors.New("redis away")
	}
	f.batches = append(f.batches, b)
	return nil
}

func TestFlushBatchesAndKeepsLatest(t *testing.T) {
	sink := &fakeSink{}
	b := New(sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	b.Touch("alice")
	now = now.Add(time.Second)
	b.Touch("alice")
	b.Touch("bob")
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.batches) != 1 || len(sink.batches[0]) != 2 {
		t.Fatalf("want one batch of two users, got %v", sink.batches)
	}
	if got := sink.batches[0]["alice"]; !got.Equal(time.Unix(1001, 0)) {
		t.Fatalf("alice: want latest touch, got %v", got)
	}
	if err := b.Flush(context.Background()); err != nil || len(sink.batches) != 1 {
		t.Fatalf("empty flush must not write: %v %d", err, len(sink.batches))
	}
}

func TestFailedFlushLosesNothing(t *testing.T) {
	sink := &fakeSink{fail: true}
	b := New(sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Touch("alice")
	if err := b.Flush(context.Background()); err == nil {
		t.Fatal("want error from failing sink")
	}
	sink.fail = false
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.batches) != 1 || sink.batches[0]["alice"].IsZero() {
		t.Fatalf("activity lost across a failed flush: %v", sink.batches)
	}
}
