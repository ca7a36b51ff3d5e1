// Package identity is the one place where a raw login name becomes a
// canonical username, and where Docker service and volume names are derived
// from it. Every login path, API path and admin action goes through Canonical,
// so "Alice", "ALICE" and " alice " are one identity.
//
// Derived names use an injective escape (Escape), so two different canonical
// names never share a service or a volume, and a name that would exceed
// Docker's limits is rejected, never truncated.
package identity

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Defaults used when an Options field is empty.
const (
	DefaultPattern         = `^[a-z0-9][a-z0-9._-]{0,31}$`
	DefaultServiceTemplate = "jupyter-{username}"
	DefaultVolumeTemplate  = "jupyterhub-user-{username}"

	// Placeholder is replaced by Escape(user) in the name templates.
	Placeholder = "{username}"

	// MaxUsernameBytes is a hard limit that holds whatever the pattern allows.
	MaxUsernameBytes = 64
	// MaxServiceName is Docker Swarm's limit (a DNS label).
	MaxServiceName = 63
	// MaxVolumeName keeps volume names usable as file names on every host.
	MaxVolumeName = 255
)

// ErrInvalidUsername is wrapped by every error Canonical returns.
var ErrInvalidUsername = errors.New("invalid username")

// Options configure a Namer. Zero values take the defaults above.
type Options struct {
	Pattern         string            // default DefaultPattern; always matched against the whole name
	UsernameMap     map[string]string // keys and values canonicalised (trim+lower) at New
	ServiceTemplate string            // default DefaultServiceTemplate
	VolumeTemplate  string            // default DefaultVolumeTemplate
}

// Namer canonicalises usernames and derives Docker names. It is safe for
// concurrent use.
type Namer struct {
	pattern     *regexp.Regexp
	patternText string
	usernameMap map[string]string
	service     string
	volume      string
}

var (
	// swarmkit's own check for service names (manager/controlapi/common.go):
	// no dots, and no trailing '-' or '_'.
	serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`)
	// Docker's local volume driver check (volume/local: validNamePattern).
	volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
)

// New checks the options once, so a bad configuration fails at start-up
// rather than at some student's first login.
func New(o Options) (*Namer, error) {
	n := &Namer{
		patternText: o.Pattern,
		service:     o.ServiceTemplate,
		volume:      o.VolumeTemplate,
	}
	if n.patternText == "" {
		n.patternText = DefaultPattern
	}
	if n.service == "" {
		n.service = DefaultServiceTemplate
	}
	if n.volume == "" {
		n.volume = DefaultVolumeTemplate
	}
	// Anchor the whole pattern: an unanchored "[a-z]+" would otherwise
	// accept any name that merely contains a letter.
	re, err := regexp.Compile(`^(?:` + n.patternText + `)$`)
	if err != nil {
		return nil, fmt.Errorf("username_pattern %q is not a valid regular expression: %w", n.patternText, err)
	}
	n.pattern = re

	for _, t := range []struct{ field, tmpl string }{{"service name template", n.service}, {"volume name template", n.volume}} {
		if !strings.Contains(t.tmpl, Placeholder) {
			return nil, fmt.Errorf("%s %q must contain %s, otherwise every user would get the same name", t.field, t.tmpl, Placeholder)
		}
	}
	if _, err := n.ServiceName("a"); err != nil {
		return nil, fmt.Errorf("service name template %q: %w", n.service, err)
	}
	if _, err := n.VolumeName("a"); err != nil {
		return nil, fmt.Errorf("volume name template %q: %w", n.volume, err)
	}

	n.usernameMap = make(map[string]string, len(o.UsernameMap))
	keys := make([]string, 0, len(o.UsernameMap))
	for k := range o.UsernameMap {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic error messages
	for _, k := range keys {
		from := Fold(k)
		to := Fold(o.UsernameMap[k])
		if from == "" {
			return nil, fmt.Errorf("username_map: an empty name cannot be mapped (to %q)", o.UsernameMap[k])
		}
		if prev, dup := n.usernameMap[from]; dup && prev != to {
			return nil, fmt.Errorf("username_map: %q is listed twice (as different spellings) with targets %q and %q", from, prev, to)
		}
		if err := n.check(to); err != nil {
			return nil, fmt.Errorf("username_map: %q maps to %q: %w", k, o.UsernameMap[k], err)
		}
		n.usernameMap[from] = to
	}
	// Chains (a→b, b→c) would make Canonical depend on how often it is
	// applied; require every target to map to itself or not at all.
	for _, from := range sortedKeys(n.usernameMap) {
		to := n.usernameMap[from]
		if next, ok := n.usernameMap[to]; ok && next != to {
			return nil, fmt.Errorf("username_map: %q maps to %q, which is itself mapped to %q; map %q to %q directly", from, to, next, from, next)
		}
	}
	return n, nil
}

// Fold is the first step of canonicalisation, trim and lower-case, on its
// own for the places that need a name's case-insensitive spelling before
// username_map applies (an LDAP login name, a configured list entry).
func Fold(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Canonical turns what a person typed into the one name swarmhub uses for
// them everywhere. Errors wrap ErrInvalidUsername and their text is safe to
// show on the login page.
func (n *Namer) Canonical(raw string) (string, error) {
	if !utf8.ValidString(raw) {
		return "", fmt.Errorf("%w: it contains bytes that are not valid text", ErrInvalidUsername)
	}
	name := Fold(raw)
	if mapped, ok := n.usernameMap[name]; ok {
		name = mapped
	}
	if err := n.check(name); err != nil {
		return "", err
	}
	return name, nil
}

// check applies the hard safety rules, then the configured pattern.
func (n *Namer) check(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: it is empty", ErrInvalidUsername)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: it contains bytes that are not valid text", ErrInvalidUsername)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not a name", ErrInvalidUsername, name)
	case len(name) > MaxUsernameBytes:
		return fmt.Errorf("%w: it is longer than %d characters", ErrInvalidUsername, MaxUsernameBytes)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("%w: it may not contain a slash or backslash", ErrInvalidUsername)
	}
	for _, r := range name {
		switch {
		case r == 0:
			return fmt.Errorf("%w: it contains a NUL character", ErrInvalidUsername)
		case unicode.IsSpace(r):
			return fmt.Errorf("%w: it may not contain spaces", ErrInvalidUsername)
		case unicode.IsControl(r) || r == utf8.RuneError || !unicode.IsPrint(r):
			return fmt.Errorf("%w: it contains an invisible or control character", ErrInvalidUsername)
		}
	}
	if !n.pattern.MatchString(name) {
		if n.patternText == DefaultPattern {
			return fmt.Errorf("%w: use 1 to 32 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidUsername)
		}
		return fmt.Errorf("%w: it does not match this site's username rule %s", ErrInvalidUsername, n.patternText)
	}
	return nil
}

// Escape maps any string injectively into [a-z0-9-]: lower-case letters and
// digits stay, every other byte becomes '-' and two lower-case hex digits
// (DockerSpawner's escapism convention), so "a.b" → "a-2eb" and
// "a-b" → "a-2db". A non-empty result always ends in a letter or digit.
func Escape(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('-')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// ServiceName derives the swarm service name of a canonical user. It fails,
// naming the limit, when the result is not a name Docker Swarm accepts.
func (n *Namer) ServiceName(user string) (string, error) {
	if user == "" {
		return "", errors.New("service name: the username is empty")
	}
	name := strings.ReplaceAll(n.service, Placeholder, Escape(user))
	if len(name) > MaxServiceName {
		return "", fmt.Errorf("service name %q for user %q is %d characters long; Docker Swarm allows at most %d (shorten the service name template or the username)", name, user, len(name), MaxServiceName)
	}
	if !serviceNameRE.MatchString(name) {
		return "", fmt.Errorf("service name %q for user %q is not valid for Docker Swarm: it must start and end with a letter or digit and contain only letters, digits, '-' and '_'", name, user)
	}
	return name, nil
}

// VolumeName derives the workspace volume name of a canonical user.
func (n *Namer) VolumeName(user string) (string, error) {
	if user == "" {
		return "", errors.New("volume name: the username is empty")
	}
	name := strings.ReplaceAll(n.volume, Placeholder, Escape(user))
	if len(name) > MaxVolumeName {
		return "", fmt.Errorf("volume name %q for user %q is %d characters long; at most %d are allowed", name, user, len(name), MaxVolumeName)
	}
	if !volumeNameRE.MatchString(name) {
		return "", fmt.Errorf("volume name %q for user %q is not valid for Docker: it needs at least 2 characters, must start with a letter or digit and contain only letters, digits, '_', '.' and '-'", name, user)
	}
	return name, nil
}

// UsersDir is the directory under the storage root that holds every
// workspace.
const UsersDir = "users"

// UserPath is the URL path prefix a user's server is served under,
// /user/NAME/ (Jupyter's base_url).
func UserPath(user string) string { return "/user/" + user + "/" }

// WorkspaceDir is a user's workspace relative to the storage root,
// users/NAME, slash-separated (it is also the NFS export's sub-path).
func WorkspaceDir(user string) string { return UsersDir + "/" + user }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
