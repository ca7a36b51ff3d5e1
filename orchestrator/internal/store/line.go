package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The line of server starts is shared by every replica:
//
//	line         sorted set: user -> join sequence (first come, first served)
//	line:seq     counter behind the sequence, so order does not depend on clocks
//	line:seen    sorted set: user -> last sign of life (Redis ms); a user
//	             not seen for the stale time has left the line
//	line:opts    hash: user -> the start options, opaque to the store
//	line:joined  hash: user -> join time (Redis ms)
//	starts       sorted set: user -> lease expiry (Redis ms) of a start in
//	             flight; a replica that dies stops refreshing, and its
//	             starts leave the set when the lease runs out
//
// Every script reads Redis' own clock, so replicas' clocks do not matter,
// and first drops stale entries and expired leases.
const linePrune = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local stale = tonumber(ARGV[1])
if stale > 0 then
  for _, u in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - stale)) do
    redis.call('ZREM', KEYS[1], u)
    redis.call('ZREM', KEYS[2], u)
    redis.call('HDEL', KEYS[3], u)
    redis.call('HDEL', KEYS[4], u)
  end
end
`

var (
	// ARGV: stale ms, user, options, "1" when nobody watches the start
	// (it never goes stale).
	joinLine = redis.NewScript(linePrune + `
local u = ARGV[2]
if redis.call('ZSCORE', KEYS[5], u) then
  return {-1, redis.call('ZCARD', KEYS[1])}
end
if not redis.call('ZSCORE', KEYS[1], u) then
  redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[6]), u)
  redis.call('HSET', KEYS[3], u, ARGV[3])
  redis.call('HSET', KEYS[4], u, now)
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], '+inf', u)
elseif redis.call('ZSCORE', KEYS[2], u) ~= 'inf' then
  redis.call('ZADD', KEYS[2], now, u)
end
return {redis.call('ZRANK', KEYS[1], u), redis.call('ZCARD', KEYS[1])}
`)
	// ARGV: stale ms, user. Returns {rank or -1 (starting) or -2 (not in line), length}.
	seenInLine = redis.NewScript(linePrune + `
local u = ARGV[2]
if redis.call('ZSCORE', KEYS[5], u) then
  return {-1, redis.call('ZCARD', KEYS[1])}
end
local r = redis.call('ZRANK', KEYS[1], u)
if not r then
  return {-2, redis.call('ZCARD', KEYS[1])}
end
if redis.call('ZSCORE', KEYS[2], u) ~= 'inf' then
  redis.call('ZADD', KEYS[2], now, u)
end
return {r, redis.call('ZCARD', KEYS[1])}
`)
	// ARGV: stale ms, bound (0: none), at most n, lease ms.
	// Returns user, options pairs of the admitted, head first.
	admitLine = redis.NewScript(linePrune + `
local bound, n, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
while n > 0 and (bound == 0 or redis.call('ZCARD', KEYS[5]) < bound) do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #head == 0 then break end
  local u = head[1]
  local o = redis.call('HGET', KEYS[3], u) or ''
  redis.call('ZREM', KEYS[1], u)
  redis.call('ZREM', KEYS[2], u)
  redis.call('HDEL', KEYS[3], u)
  redis.call('HDEL', KEYS[4], u)
  redis.call('ZADD', KEYS[5], now + lease, u)
  table.insert(out, u)
  table.insert(out, o)
  n = n - 1
end
return out
`)
	// ARGV: stale ms. Returns {waiting users in order, their joined ms,
	// their seen ms, starting users}.
	readLine = redis.NewScript(linePrune + `
local users = redis.call('ZRANGE', KEYS[1], 0, -1)
local joined, seen = {}, {}
for i, u in ipairs(users) do
  joined[i] = redis.call('HGET', KEYS[4], u) or '0'
  seen[i] = tostring(redis.call('ZSCORE', KEYS[2], u) or '0')
end
return {users, joined, seen, redis.call('ZRANGE', KEYS[5], 0, -1)}
`)
	// ARGV: stale ms (unused here but pruning needs it), user, lease ms.
	refreshStart = redis.NewScript(linePrune + `
if not redis.call('ZSCORE', KEYS[5], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), ARGV[2])
return 1
`)
	// ARGV: user.
	leaveLine = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 0
`)
	// KEYS: starts. Returns the users whose start is in flight.
	readStarts = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)
	// ARGV: sample ms. An exponential average, so the estimate follows the
	// machine's current load.
	recordStart = redis.NewScript(`
local old = tonumber(redis.call('GET', KEYS[1]) or '')
local v = tonumber(ARGV[1])
if old then v = 0.7 * old + 0.3 * v end
redis.call('SET', KEYS[1], tostring(math.floor(v)))
return 0
`)
)

// LinePlace is where a user stands: Position counts from 0 at the head;
// Starting means the user's start was admitted and is in flight.
type LinePlace struct {
	Position int
	Length   int
	Starting bool
}

// LineEntry is one user waiting in the line.
type LineEntry struct {
	User    string
	Options string // what JoinLine was given
	Joined  time.Time
	Seen    time.Time
}

func (s *Store) lineKeys() []string {
	return []string{s.key("line"), s.key("line:seen"), s.key("line:opts"), s.key("line:joined"), s.key("starts"), s.key("line:seq")}
}

// JoinLine puts user at the end of the line, or keeps the place already
// held (and its options), and counts as a sign of life. A user not seen
// for stale leaves the line (0: never), unless unattended: a start nobody
// watches (one an admin scheduled) keeps its place until admitted.
func (s *Store) JoinLine(ctx context.Context, user, options string, unattended bool, stale time.Duration) (LinePlace, error) {
	flag := "0"
	if unattended {
		flag = "1"
	}
	r, err := joinLine.Run(ctx, s.rdb, s.lineKeys(), staleMS(stale), user, options, flag).Int64Slice()
	if err != nil {
		return LinePlace{}, fmt.Errorf("join line: %w", err)
	}
	return place(r), nil
}

// SeenInLine refreshes user's sign of life and returns the place; false
// when the user neither waits nor starts.
func (s *Store) SeenInLine(ctx context.Context, user string, stale time.Duration) (LinePlace, bool, error) {
	r, err := seenInLine.Run(ctx, s.rdb, s.lineKeys(), staleMS(stale), user).Int64Slice()
	if err != nil {
		return LinePlace{}, false, fmt.Errorf("read line: %w", err)
	}
	if r[0] == -2 {
		return LinePlace{Length: int(r[1])}, false, nil
	}
	return place(r), true, nil
}

func place(r []int64) LinePlace {
	if r[0] == -1 {
		return LinePlace{Starting: true, Length: int(r[1])}
	}
	return LinePlace{Position: int(r[0]), Length: int(r[1])}
}

// AdmitFromLine moves at most n users from the head of the line to the
// starts in flight, each with a lease, while fewer than bound starts are in
// flight (bound 0: no bound). It returns them head first.
func (s *Store) AdmitFromLine(ctx context.Context, bound, n int, lease, stale time.Duration) ([]LineEntry, error) {
	if n <= 0 {
		return nil, nil
	}
	r, err := admitLine.Run(ctx, s.rdb, s.lineKeys(), staleMS(stale), bound, n, ms(lease)).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("admit from line: %w", err)
	}
	out := make([]LineEntry, 0, len(r)/2)
	for i := 0; i+1 < len(r); i += 2 {
		out = append(out, LineEntry{User: r[i], Options: r[i+1]})
	}
	return out, nil
}

// RefreshStart extends the lease of user's start in flight; false when it
// has none (it ended, or its lease ran out).
func (s *Store) RefreshStart(ctx context.Context, user string, lease time.Duration) (bool, error) {
	n, err := refreshStart.Run(ctx, s.rdb, s.lineKeys(), 0, user, ms(lease)).Int()
	if err != nil {
		return false, fmt.Errorf("refresh start lease: %w", err)
	}
	return n == 1, nil
}

// EndStart ends user's start in flight; ending none is not an error.
func (s *Store) EndStart(ctx context.Context, user string) error {
	if err := s.rdb.ZRem(ctx, s.key("starts"), user).Err(); err != nil {
		return fmt.Errorf("end start: %w", err)
	}
	return nil
}

// LeaveLine takes user out of the line; leaving when not in it is not an error.
func (s *Store) LeaveLine(ctx context.Context, user string) error {
	if err := leaveLine.Run(ctx, s.rdb, s.lineKeys()[:4], user).Err(); err != nil {
		return fmt.Errorf("leave line: %w", err)
	}
	return nil
}

// Line returns the users waiting, head first, and those whose start is in flight.
func (s *Store) Line(ctx context.Context, stale time.Duration) (waiting []LineEntry, starting []string, err error) {
	r, err := readLine.Run(ctx, s.rdb, s.lineKeys(), staleMS(stale)).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("read line: %w", err)
	}
	strs := func(v any) []string {
		l, _ := v.([]any)
		out := make([]string, len(l))
		for i, x := range l {
			out[i], _ = x.(string)
		}
		return out
	}
	users, joined, seen := strs(r[0]), strs(r[1]), strs(r[2])
	for i, u := range users {
		waiting = append(waiting, LineEntry{User: u, Joined: msTime(joined[i]), Seen: msTime(seen[i])})
	}
	return waiting, strs(r[3]), nil
}

// StartsInFlight returns the users whose start is in flight: one call,
// however long the line.
func (s *Store) StartsInFlight(ctx context.Context) ([]string, error) {
	r, err := readStarts.Run(ctx, s.rdb, []string{s.key("starts")}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read starts in flight: %w", err)
	}
	return r, nil
}

// RecordStartDuration feeds the average start duration the line's
// expected wait is estimated from.
func (s *Store) RecordStartDuration(ctx context.Context, d time.Duration) error {
	if err := recordStart.Run(ctx, s.rdb, []string{s.key("line:start-ms")}, ms(d)).Err(); err != nil {
		return fmt.Errorf("record start duration: %w", err)
	}
	return nil
}

// StartDuration is the average recorded by RecordStartDuration; 0 before the first.
func (s *Store) StartDuration(ctx context.Context) (time.Duration, error) {
	v, err := s.rdb.Get(ctx, s.key("line:start-ms")).Int64()
	if err == redis.Nil {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read start duration: %w", err)
	}
	return time.Duration(v) * time.Millisecond, nil
}

func staleMS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return ms(d)
}

func msTime(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
