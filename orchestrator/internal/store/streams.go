package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	progressMaxLen = 100
	progressTTL    = time.Hour
	eventsMaxLen   = 10000
	// Events pages are bounded so a client cannot ask for the whole stream.
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
)

// Progress is one step of a spawn, in the shape of JupyterHub's progress
// events. ID is the stream entry id, the cursor for ReadProgress.
type Progress struct {
	ID       string
	Progress int
	Message  string
	Ready    bool
	Failed   bool
	URL      string
}

func progressFrom(m redis.XMessage) Progress {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	pct, _ := strconv.Atoi(str("progress"))
	return Progress{
		ID:       m.ID,
		Progress: pct,
		Message:  str("message"),
		Ready:    parseBool(str("ready")),
		Failed:   parseBool(str("failed")),
		URL:      str("url"),
	}
}

// AddProgress appends to the user's progress stream, which keeps about the
// last 100 entries and vanishes an hour after the last one.
func (s *Store) AddProgress(ctx context.Context, user string, p Progress) error {
	key := s.key("progress:", user)
	_, err := s.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.XAdd(ctx, &redis.XAddArgs{
			Stream: key,
			MaxLen: progressMaxLen,
			Approx: true,
			Values: []any{
				"progress", p.Progress,
				"message", p.Message,
				"ready", fmtBool(p.Ready),
				"failed", fmtBool(p.Failed),
				"url", p.URL,
			},
		})
		pl.PExpire(ctx, key, progressTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("add progress for %q: %w", user, err)
	}
	return nil
}

// ResetProgress empties the user's stream, at the start of a new spawn.
func (s *Store) ResetProgress(ctx context.Context, user string) error {
	if err := s.rdb.Del(ctx, s.key("progress:", user)).Err(); err != nil {
		return fmt.Errorf("reset progress for %q: %w", user, err)
	}
	return nil
}

// ReadProgress returns the entries after afterID ("" = from the start).
// With block > 0 it waits up to block for the first new entry (XREAD
// BLOCK) and returns nil, nil when none came; with block 0 it returns at once.
//
// A blocking read holds one pooled connection for its duration: size the
// client's PoolSize for the number of concurrent progress streams, or keep
// block short.
func (s *Store) ReadProgress(ctx context.Context, user, afterID string, block time.Duration) ([]Progress, error) {
	if afterID != "" && !streamID.MatchString(afterID) {
		return nil, fmt.Errorf("read progress: %w: %q", ErrInvalidCursor, afterID)
	}
	key := s.key("progress:", user)
	var msgs []redis.XMessage
	if block <= 0 {
		start := "-"
		if afterID != "" {
			start = "(" + afterID
		}
		var err error
		msgs, err = s.rdb.XRange(ctx, key, start, "+").Result()
		if err != nil {
			return nil, fmt.Errorf("read progress for %q: %w", user, err)
		}
	} else {
		if afterID == "" {
			afterID = "0"
		}
		// go-redis treats Block 0 as "forever"; never round down to it.
		streams, err := s.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{key, afterID},
			Block:   max(block, time.Millisecond),
		}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read progress for %q: %w", user, err)
		}
		for _, st := range streams {
			msgs = append(msgs, st.Messages...)
		}
	}
	out := make([]Progress, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, progressFrom(m))
	}
	return out, nil
}

var streamID = regexp.MustCompile(`^[0-9]{1,20}(-[0-9]{1,20})?$`)

// Event is one entry of the audit stream: login, logout, spawn, ready,
// failure, stop, cull, archive, admin access, user changes.
type Event struct {
	ID                         string
	Time                       time.Time
	Kind, User, Actor, Message string
}

// AddEvent appends to the events stream (about the last 10000 are kept).
// A zero Time means now.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.key("events"),
		MaxLen: eventsMaxLen,
		Approx: true,
		Values: []any{
			"time", fmtTime(e.Time),
			"kind", e.Kind,
			"user", e.User,
			"actor", e.Actor,
			"message", e.Message,
		},
	}).Err()
	if err != nil {
		return fmt.Errorf("add %s event: %w", e.Kind, err)
	}
	return nil
}

// Events returns up to limit events older than the event with id before
// ("" = the newest), newest first. Pass the last returned ID as before for
// the next page. limit <= 0 means 100; it is capped at 1000.
func (s *Store) Events(ctx context.Context, before string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = defaultEventsLimit
	}
	limit = min(limit, maxEventsLimit)
	end := "+"
	if before != "" {
		if !streamID.MatchString(before) {
			return nil, fmt.Errorf("events: %w: %q", ErrInvalidCursor, before)
		}
		end = "(" + before
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.key("events"), end, "-", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		str := func(k string) string { v, _ := m.Values[k].(string); return v }
		out = append(out, Event{
			ID:      m.ID,
			Time:    parseTime(str("time")),
			Kind:    str("kind"),
			User:    str("user"),
			Actor:   str("actor"),
			Message: str("message"),
		})
	}
	return out, nil
}
