package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"
)

// Groups are JupyterHub's groups: a set of group names and, per group, a
// set of member user names.

// ErrGroupExists is CreateGroup's answer for a name already taken.
var ErrGroupExists = errors.New("group exists")

// changeMembers adds (ARGV[1] == "add") or removes the users ARGV[2:] of a
// group, only if the group exists, so a concurrent delete cannot leave
// orphan members. KEYS: groups set, group's member set.
var changeMembers = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], KEYS[2]) == 0 then return 0 end
if #ARGV < 2 then return 1 end
if ARGV[1] == 'add' then
  redis.call('SADD', KEYS[2], unpack(ARGV, 2))
else
  redis.call('SREM', KEYS[2], unpack(ARGV, 2))
end
return 1
`)

// CreateGroup adds an empty group; ErrGroupExists if it is there already.
func (s *Store) CreateGroup(ctx context.Context, name string) error {
	n, err := s.rdb.SAdd(ctx, s.key("groups"), s.key("group:", name)).Result()
	if err != nil {
		return fmt.Errorf("create group %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("create group %q: %w", name, ErrGroupExists)
	}
	return nil
}

// DeleteGroup removes a group and its membership; ErrNotFound if absent.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	var rem *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rem = p.SRem(ctx, s.key("groups"), s.key("group:", name))
		p.Del(ctx, s.key("group:", name))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete group %q: %w", name, err)
	}
	if rem.Val() == 0 {
		return fmt.Errorf("delete group %q: %w", name, ErrNotFound)
	}
	return nil
}

// AddGroupMembers adds users to a group; ErrNotFound if the group is absent.
func (s *Store) AddGroupMembers(ctx context.Context, name string, users []string) error {
	return s.changeMembers(ctx, "add", name, users)
}

// RemoveGroupMembers removes users from a group; ErrNotFound if the group
// is absent.
func (s *Store) RemoveGroupMembers(ctx context.Context, name string, users []string) error {
	return s.changeMembers(ctx, "remove", name, users)
}

func (s *Store) changeMembers(ctx context.Context, op, name string, users []string) error {
	args := make([]any, 0, len(users)+1)
	args = append(args, op)
	for _, u := range users {
		args = append(args, u)
	}
	ok, err := changeMembers.Run(ctx, s.rdb, []string{s.key("groups"), s.key("group:", name)}, args...).Int()
	if err != nil {
		return fmt.Errorf("%s members of group %q: %w", op, name, err)
	}
	if ok == 0 {
		return fmt.Errorf("%s members of group %q: %w", op, name, ErrNotFound)
	}
	return nil
}

// InstructorsGroup is the group whose members start their servers as
// instructors (nbgrader's formgrader), besides admins and
// notebook.instructor_users, which the configuration adds to it.
const InstructorsGroup = "instructors"

// InGroup reports whether user is a member of group (false for a group
// that does not exist).
func (s *Store) InGroup(ctx context.Context, group, user string) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, s.key("group:", group), user).Result()
	if err != nil {
		return false, fmt.Errorf("group %q membership of %q: %w", group, user, err)
	}
	return ok, nil
}

// EnsureGroupMembers creates group if needed and adds users to it.
func (s *Store) EnsureGroupMembers(ctx context.Context, group string, users []string) error {
	if err := s.CreateGroup(ctx, group); err != nil && !errors.Is(err, ErrGroupExists) {
		return err
	}
	if len(users) == 0 {
		return nil
	}
	return s.AddGroupMembers(ctx, group, users)
}

// Groups returns every group with its members, names sorted.
func (s *Store) Groups(ctx context.Context) (map[string][]string, error) {
	keys, err := s.rdb.SMembers(ctx, s.key("groups")).Result()
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	cmds := make([]*redis.StringSliceCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.SMembers(ctx, k)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list group members: %w", err)
	}
	prefix := s.key("group:")
	out := make(map[string][]string, len(keys))
	for i, k := range keys {
		members := cmds[i].Val()
		sort.Strings(members)
		out[k[len(prefix):]] = members
	}
	return out, nil
}
