package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// User is a registered user. Admin, Blocked and Allowed are the runtime
// admission lists, kept as fields of the user's record.
type User struct {
	Name                    string
	Admin, Blocked, Allowed bool
	Created, LastLogin      time.Time
}

func (u User) fields() []any {
	return []any{
		"name", u.Name,
		"admin", fmtBool(u.Admin),
		"blocked", fmtBool(u.Blocked),
		"allowed", fmtBool(u.Allowed),
		"created", fmtTime(u.Created),
		"last_login", fmtTime(u.LastLogin),
	}
}

func userFrom(m map[string]string) User {
	return User{
		Name:      m["name"],
		Admin:     parseBool(m["admin"]),
		Blocked:   parseBool(m["blocked"]),
		Allowed:   parseBool(m["allowed"]),
		Created:   parseTime(m["created"]),
		LastLogin: parseTime(m["last_login"]),
	}
}

// GetUser returns ErrNotFound for an unknown name.
func (s *Store) GetUser(ctx context.Context, name string) (User, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("user:", name)).Result()
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", name, err)
	}
	if m["name"] == "" {
		return User{}, ErrNotFound
	}
	return userFrom(m), nil
}

// Admission is the part of a user's record a login decides on, and what it
// needs to refresh the record afterwards without reading it again.
type Admission struct {
	Exists                  bool
	Admin, Blocked, Allowed bool
	Created                 time.Time
}

// GetAdmission reads a user's admission flags in one round trip; an unknown
// name is Admission{} (Exists false), not an error.
func (s *Store) GetAdmission(ctx context.Context, name string) (Admission, error) {
	v, err := s.rdb.HMGet(ctx, s.key("user:", name), "name", "admin", "blocked", "allowed", "created").Result()
	if err != nil {
		return Admission{}, fmt.Errorf("get admission of %q: %w", name, err)
	}
	str := func(i int) string { s, _ := v[i].(string); return s }
	if str(0) == "" {
		return Admission{}, nil
	}
	return Admission{Exists: true, Admin: parseBool(str(1)), Blocked: parseBool(str(2)), Allowed: parseBool(str(3)), Created: parseTime(str(4))}, nil
}

// PutUser creates or replaces a user record. To change one field without
// losing a concurrent change to another (login time vs. a block), use
// UpdateUser.
func (s *Store) PutUser(ctx context.Context, u User) error {
	if u.Name == "" {
		return errors.New("put user: empty name")
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key("user:", u.Name), u.fields()...)
		p.SAdd(ctx, s.key("users"), u.Name)
		p.Del(ctx, s.key("deleted:", u.Name))
		return nil
	})
	if err != nil {
		return fmt.Errorf("put user %q: %w", u.Name, err)
	}
	return nil
}

// UpdateUser reads a user, applies fn and writes the result in one
// optimistic transaction, retried when the record changed meanwhile. A
// missing user is passed to fn as User{Name: name} with exists=false, so fn
// can decide whether to create it; an error from fn aborts without writing.
func (s *Store) UpdateUser(ctx context.Context, name string, fn func(u *User, exists bool) error) (User, error) {
	if name == "" {
		return User{}, errors.New("update user: empty name")
	}
	key := s.key("user:", name)
	var out User
	txf := func(tx *redis.Tx) error {
		m, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return err
		}
		exists := m["name"] != ""
		u := User{Name: name}
		if exists {
			u = userFrom(m)
		}
		if err := fn(&u, exists); err != nil {
			return err
		}
		u.Name = name
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, u.fields()...)
			p.SAdd(ctx, s.key("users"), name)
			p.Del(ctx, s.key("deleted:", name))
			return nil
		})
		out = u
		return err
	}
	if err := s.watchRetry(ctx, txf, key); err != nil {
		return User{}, fmt.Errorf("update user %q: %w", name, err)
	}
	return out, nil
}

// watchRetry runs an optimistic transaction, retrying on conflicts.
func (s *Store) watchRetry(ctx context.Context, txf func(*redis.Tx) error, keys ...string) error {
	var err error
	for range 20 {
		err = s.rdb.Watch(ctx, txf, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("gave up after repeated concurrent changes: %w", err)
}

// deletedMarkerTTL is how long a deleted user's tombstone lasts: long enough
// for every replica's reconcile to remove a service that outlived the
// deletion, short enough not to pile up.
const deletedMarkerTTL = 30 * 24 * time.Hour

// DeleteUser removes the user record and leaves a tombstone (see
// WasDeleted). Sessions, tokens, server and activity are separate: see
// DeleteUserSessions, DeleteUserTokens, DeleteServer and DeleteActivity.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.key("user:", name))
		p.SRem(ctx, s.key("users"), name)
		p.Set(ctx, s.key("deleted:", name), "1", deletedMarkerTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	return nil
}

// WasDeleted says whether name was deleted through DeleteUser (and not
// created again since). An unknown name that was never deleted is not: a
// Redis that lost its data must not make reconcile remove everyone's server.
func (s *Store) WasDeleted(ctx context.Context, name string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.key("deleted:", name)).Result()
	if err != nil {
		return false, fmt.Errorf("deleted marker of %q: %w", name, err)
	}
	return n == 1, nil
}

// ListUsers returns every user, sorted by name, in one round trip after the
// index read.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	ms, err := s.hashes(ctx, s.key("users"), s.key("user:"))
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users := make([]User, 0, len(ms))
	for _, m := range ms {
		users = append(users, userFrom(m))
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Name < users[j].Name })
	return users, nil
}

// GetUsers returns the records of the named users that exist, keyed by
// name, in one round trip (the culler asks for the few users with a running
// server, not for every user).
func (s *Store) GetUsers(ctx context.Context, names []string) (map[string]User, error) {
	out := make(map[string]User, len(names))
	if len(names) == 0 {
		return out, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.HGetAll(ctx, s.key("user:", n))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get %d users: %w", len(names), err)
	}
	for _, c := range cmds {
		if m := c.Val(); m["name"] != "" {
			u := userFrom(m)
			out[u.Name] = u
		}
	}
	return out, nil
}

// pruneIndex removes index members whose record is gone, checking inside
// the script so that a record re-created meanwhile keeps its entry.
// KEYS: index. ARGV: record key prefix, member, member, ...
var pruneIndex = redis.NewScript(`
local n = 0
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then
    n = n + redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return n
`)

// hashes reads every hash named in an index set, skipping (and unindexing)
// members whose hash is gone.
func (s *Store) hashes(ctx context.Context, index, prefix string) ([]map[string]string, error) {
	names, err := s.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.HGetAll(ctx, prefix+n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, 0, len(names))
	var stale []any
	for i, c := range cmds {
		if len(c.Val()) == 0 {
			stale = append(stale, names[i])
			continue
		}
		out = append(out, c.Val())
	}
	if len(stale) > 0 {
		// Best effort cleanup; errors only leave stale names behind.
		_ = pruneIndex.Run(ctx, s.rdb, []string{index}, append([]any{prefix}, stale...)...).Err()
	}
	return out, nil
}

// Server is the record of a user's Jupyter server.
type Server struct {
	User, State, ServiceID, ServiceName, Token, Image, Error, Addr string
	Instructor                                                     bool
	// HubToken says Token is also one of User's hub API tokens (kind
	// TokenKindServer): jupyterhub-singleuser servers call the hub's API with
	// it. The store keeps that token exactly while the record is starting or
	// running with this Token, so every stop, failure or reconcile that
	// changes the record also revokes it.
	HubToken                  bool
	Requested, Started, Ready time.Time
}

// Server states (DESIGN.md "Server lifecycle"): the one spelling the
// spawner, web and lifecycle packages use.
const (
	StateStopped  = "stopped"
	StateStarting = "starting"
	StateRunning  = "running"
	StateStopping = "stopping"
	StateFailed   = "failed"
)

func (v Server) fields() []any {
	return []any{
		"user", v.User,
		"state", v.State,
		"service_id", v.ServiceID,
		"service_name", v.ServiceName,
		"token", v.Token,
		"image", v.Image,
		"error", v.Error,
		"addr", v.Addr,
		"instructor", fmtBool(v.Instructor),
		"hub_token", fmtBool(v.HubToken),
		"requested", fmtTime(v.Requested),
		"started", fmtTime(v.Started),
		"ready", fmtTime(v.Ready),
	}
}

func serverFrom(m map[string]string) Server {
	return Server{
		User:        m["user"],
		State:       m["state"],
		ServiceID:   m["service_id"],
		ServiceName: m["service_name"],
		Token:       m["token"],
		Image:       m["image"],
		Error:       m["error"],
		Addr:        m["addr"],
		Instructor:  parseBool(m["instructor"]),
		HubToken:    parseBool(m["hub_token"]),
		Requested:   parseTime(m["requested"]),
		Started:     parseTime(m["started"]),
		Ready:       parseTime(m["ready"]),
	}
}

// GetServer returns ErrNotFound when the user has no server record.
func (s *Store) GetServer(ctx context.Context, user string) (Server, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("server:", user)).Result()
	if err != nil {
		return Server{}, fmt.Errorf("get server of %q: %w", user, err)
	}
	if m["user"] == "" {
		return Server{}, ErrNotFound
	}
	return serverFrom(m), nil
}

// PutServer creates or replaces a server record.
func (s *Store) PutServer(ctx context.Context, v Server) error {
	if v.User == "" {
		return errors.New("put server: empty user")
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key("server:", v.User), v.fields()...)
		p.SAdd(ctx, s.key("servers"), v.User)
		s.syncServerToken(ctx, p, v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("put server of %q: %w", v.User, err)
	}
	return nil
}

// UpdateServer is UpdateUser for server records: fn gets the current record
// (or Server{User: user} and exists=false) and may change it; an error from
// fn aborts without writing.
func (s *Store) UpdateServer(ctx context.Context, user string, fn func(v *Server, exists bool) error) (Server, error) {
	if user == "" {
		return Server{}, errors.New("update server: empty user")
	}
	key := s.key("server:", user)
	var out Server
	txf := func(tx *redis.Tx) error {
		m, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return err
		}
		exists := m["user"] != ""
		v := Server{User: user}
		if exists {
			v = serverFrom(m)
		}
		if err := fn(&v, exists); err != nil {
			return err
		}
		v.User = user
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, v.fields()...)
			p.SAdd(ctx, s.key("servers"), user)
			s.syncServerToken(ctx, p, v)
			return nil
		})
		out = v
		return err
	}
	if err := s.watchRetry(ctx, txf, key); err != nil {
		return Server{}, fmt.Errorf("update server of %q: %w", user, err)
	}
	return out, nil
}

// DeleteServer removes the record; a missing one is not an error.
func (s *Store) DeleteServer(ctx context.Context, user string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.key("server:", user))
		p.SRem(ctx, s.key("servers"), user)
		s.syncServerToken(ctx, p, Server{User: user})
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete server of %q: %w", user, err)
	}
	return nil
}

// ListServers returns every server record, sorted by user.
func (s *Store) ListServers(ctx context.Context) ([]Server, error) {
	ms, err := s.hashes(ctx, s.key("servers"), s.key("server:"))
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	out := make([]Server, 0, len(ms))
	for _, m := range ms {
		out = append(out, serverFrom(m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}
