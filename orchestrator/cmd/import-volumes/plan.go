package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

// volume is a planned import.
type volume struct {
	name string // Docker volume name
	dest string // relative to ROOT: users/NAME or exchange
}

// plan maps volume names to destinations and rejects collisions before
// anything is written.
func (im *importer) plan(names []string) error {
	var namer *identity.Namer
	if im.o.mapNames {
		var err error
		if namer, err = identity.New(identity.Options{}); err != nil {
			return err
		}
	}
	byDest := map[string]string{}
	for _, n := range names {
		var dest string
		switch {
		case n == exchange:
			dest = exchange
		case strings.HasPrefix(n, userPrefix):
			user, err := userName(strings.TrimPrefix(n, userPrefix), namer)
			if err != nil {
				return fmt.Errorf("volume %s: %w", n, err)
			}
			dest = identity.WorkspaceDir(user)
		default:
			fmt.Fprintf(im.out, "ignore volume %s (not a user workspace or exchange)\n", n)
			continue
		}
		if prev, dup := byDest[dest]; dup {
			return fmt.Errorf("volumes %s and %s would both be imported into %s; import one of them by hand", prev, n, dest)
		}
		byDest[dest] = n
		im.vols = append(im.vols, volume{name: n, dest: dest})
	}
	if len(im.vols) == 0 {
		return errors.New("no jupyterhub-user-* or exchange volumes found in the source")
	}
	return nil
}

// userName turns a volume suffix into a workspace directory name.
func userName(raw string, namer *identity.Namer) (string, error) {
	name := raw
	if namer != nil {
		u, err := unescape(strings.ToLower(raw))
		if err != nil {
			return "", err
		}
		if name, err = namer.Canonical(u); err != nil {
			return "", fmt.Errorf("user name %q (from %q): %w", u, raw, err)
		}
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return "", fmt.Errorf("user name %q is not usable as a directory name", name)
	}
	return name, nil
}

// unescape undoes DockerSpawner's escapism ('-' followed by two hex digits
// per escaped byte), the inverse of identity.Escape.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%q is not an escaped name: '-' at %d is not followed by two hex digits", s, i)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("%q is not an escaped name: '-' at %d is not followed by two hex digits", s, i)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}
