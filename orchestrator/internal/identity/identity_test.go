package identity_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

func mustNew(t testing.TB, o identity.Options) *identity.Namer {
	t.Helper()
	n, err := identity.New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return n
}

func TestCanonical(t *testing.T) {
	n := mustNew(t, identity.Options{UsernameMap: map[string]string{
		"Boninho":   "data8",
		" JDoe ":    "data8",
		"data8":     "data8", // a target may map to itself
		"otherprof": "Admin",
	}})
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr string // substring of the error; empty means success
	}{
		{name: "plain", raw: "alice", want: "alice"},
		{name: "upper case", raw: "ALICE", want: "alice"},
		{name: "mixed case with spaces", raw: "  Alice\t", want: "alice"},
		{name: "digits and punctuation allowed by default", raw: "a.b_c-9", want: "a.b_c-9"},
		{name: "mapped key canonicalised at New", raw: "boninho", want: "data8"},
		{name: "mapped key any case", raw: "BONINHO", want: "data8"},
		{name: "mapped key written with spaces in config", raw: "jdoe", want: "data8"},
		{name: "mapped target canonicalised at New", raw: "OtherProf", want: "admin"},
		{name: "target maps to itself", raw: "Data8", want: "data8"},
		{name: "empty", raw: "", wantErr: "empty"},
		{name: "only spaces", raw: "   ", wantErr: "empty"},
		{name: "slash", raw: "a/b", wantErr: "slash"},
		{name: "backslash", raw: `a\b`, wantErr: "slash"},
		{name: "NUL", raw: "a\x00b", wantErr: "NUL"},
		{name: "inner space", raw: "a b", wantErr: "spaces"},
		{name: "control character", raw: "a\x07b", wantErr: "control"},
		{name: "dot", raw: ".", wantErr: "not a name"},
		{name: "dot dot", raw: " .. ", wantErr: "not a name"},
		{name: "invalid UTF-8", raw: "a\xffb", wantErr: "not valid text"},
		{name: "too long for the pattern", raw: strings.Repeat("a", 33), wantErr: "1 to 32"},
		{name: "leading dot", raw: ".alice", wantErr: "starting with a letter or digit"},
		{name: "ldap injection", raw: "*)(uid=*", wantErr: "letters, digits"},
		{name: "unicode letter", raw: "jürgen", wantErr: "letters, digits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := n.Canonical(tc.raw)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Canonical(%q) error: %v", tc.raw, err)
				}
				if got != tc.want {
					t.Fatalf("Canonical(%q) = %q, want %q", tc.raw, got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Canonical(%q) = %q, want an error containing %q", tc.raw, got, tc.wantErr)
			}
			if !errors.Is(err, identity.ErrInvalidUsername) {
				t.Errorf("error %v does not wrap ErrInvalidUsername", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestCanonicalHardRulesHoldWithPermissivePattern(t *testing.T) {
	n := mustNew(t, identity.Options{Pattern: ".+"})
	for _, raw := range []string{"a/b", `a\b`, "a\x00b", "a b", "a\u00a0b", "a\u200bb", "..", strings.Repeat("x", 65)} {
		if got, err := n.Canonical(raw); !errors.Is(err, identity.ErrInvalidUsername) {
			t.Errorf("Canonical(%q) = %q, %v; want ErrInvalidUsername", raw, got, err)
		}
	}
	// The pattern is matched against the whole name, even if not anchored.
	n = mustNew(t, identity.Options{Pattern: "[a-z]+"})
	if got, err := n.Canonical("abc1"); err == nil {
		t.Errorf("unanchored pattern accepted %q", got)
	}
	if _, err := n.Canonical("abc"); err != nil {
		t.Errorf("Canonical(abc): %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name    string
		opts    identity.Options
		wantErr string
	}{
		{name: "bad pattern", opts: identity.Options{Pattern: "("}, wantErr: "username_pattern"},
		{name: "service template without placeholder", opts: identity.Options{ServiceTemplate: "jupyter"}, wantErr: "must contain {username}"},
		{name: "volume template without placeholder", opts: identity.Options{VolumeTemplate: "vol"}, wantErr: "must contain {username}"},
		{name: "service template with a dot", opts: identity.Options{ServiceTemplate: "jupyter.{username}"}, wantErr: "not valid for Docker Swarm"},
		{name: "service template too long", opts: identity.Options{ServiceTemplate: strings.Repeat("j", 63) + "{username}"}, wantErr: "at most 63"},
		{name: "volume template with a slash", opts: identity.Options{VolumeTemplate: "a/{username}"}, wantErr: "not valid for Docker"},
		{name: "map target invalid", opts: identity.Options{UsernameMap: map[string]string{"x": "no way"}}, wantErr: "spaces"},
		{name: "map chain", opts: identity.Options{UsernameMap: map[string]string{"a": "b", "b": "c"}}, wantErr: "map \"a\" to \"c\" directly"},
		{name: "map key empty", opts: identity.Options{UsernameMap: map[string]string{" ": "b"}}, wantErr: "empty name"},
		{name: "map key twice", opts: identity.Options{UsernameMap: map[string]string{"A": "b", "a": "c"}}, wantErr: "listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := identity.New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"a.b", "a-2eb"},
		{"a-b", "a-2db"},
		{"a_b", "a-5fb"},
		{"A", "-41"},
		{"ü", "-c3-bc"},
		{"", ""},
		{"a-2eb", "a-2d2eb"},
	}
	for _, tc := range tests {
		if got := identity.Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDerivedNames(t *testing.T) {
	n := mustNew(t, identity.Options{})
	tests := []struct {
		user, service, volume string
	}{
		{"alice", "jupyter-alice", "jupyterhub-user-alice"},
		{"a.b", "jupyter-a-2eb", "jupyterhub-user-a-2eb"},
		{"a-b", "jupyter-a-2db", "jupyterhub-user-a-2db"},
		{"a_", "jupyter-a-5f", "jupyterhub-user-a-5f"},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			svc, err := n.ServiceName(tc.user)
			if err != nil || svc != tc.service {
				t.Errorf("ServiceName(%q) = %q, %v; want %q", tc.user, svc, err, tc.service)
			}
			vol, err := n.VolumeName(tc.user)
			if err != nil || vol != tc.volume {
				t.Errorf("VolumeName(%q) = %q, %v; want %q", tc.user, vol, err, tc.volume)
			}
		})
	}
}

func TestDerivedNameTooLongIsRejectedNotTruncated(t *testing.T) {
	n := mustNew(t, identity.Options{Pattern: ".+"})
	user := strings.Repeat("a", 50) + "........" // 50 + 8*3 escaped bytes
	svc, err := n.ServiceName(user)
	if err == nil {
		t.Fatalf("ServiceName(%q) = %q, want an error", user, svc)
	}
	if !strings.Contains(err.Error(), "at most 63") {
		t.Errorf("error %q does not name the limit", err)
	}
	if _, err := n.ServiceName(""); err == nil {
		t.Error("ServiceName(\"\") succeeded")
	}
	if _, err := n.VolumeName(""); err == nil {
		t.Error("VolumeName(\"\") succeeded")
	}
}

// Independent statements of Docker's rules, so the fuzz target does not
// merely re-run the code under test.
var (
	dockerService = regexp.MustCompile(`^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`)
	dockerVolume  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
)

func FuzzNames(f *testing.F) {
	namers := []*identity.Namer{
		mustNew(f, identity.Options{UsernameMap: map[string]string{"Boninho": "data8", "x.y": "x-y"}}),
		mustNew(f, identity.Options{Pattern: ".+", ServiceTemplate: "{username}", VolumeTemplate: "{username}-home"}),
	}
	for _, seed := range [][2]string{
		{"alice", "bob"},
		{"a.b", "a-b"},
		{"a-2eb", "a.b"},
		{"Alice", " alice "},
		{"Boninho", "data8"},
		{"x.y", "x-y"},
		{"ü", "-c3-bc"},
		{"İ", "i"},
		{"ẞ", "ß"},
		{"a_", "a-5f"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for i, n := range namers {
			ca, errA := n.Canonical(a)
			cb, errB := n.Canonical(b)
			for _, c := range []struct {
				raw, canon string
				err        error
			}{{a, ca, errA}, {b, cb, errB}} {
				if c.err != nil {
					if !errors.Is(c.err, identity.ErrInvalidUsername) {
						t.Fatalf("namer %d: Canonical(%q) error %v does not wrap ErrInvalidUsername", i, c.raw, c.err)
					}
					continue
				}
				again, err := n.Canonical(c.canon)
				if err != nil || again != c.canon {
					t.Fatalf("namer %d: not idempotent: Canonical(%q) = %q, then %q, %v", i, c.raw, c.canon, again, err)
				}
				if svc, err := n.ServiceName(c.canon); err == nil && (len(svc) > 63 || !dockerService.MatchString(svc)) {
					t.Fatalf("namer %d: service name %q for %q is invalid for Docker", i, svc, c.canon)
				}
				if vol, err := n.VolumeName(c.canon); err == nil && (len(vol) > 255 || !dockerVolume.MatchString(vol)) {
					t.Fatalf("namer %d: volume name %q for %q is invalid for Docker", i, vol, c.canon)
				}
			}
			if errA != nil || errB != nil || ca == cb {
				continue
			}
			sa, errSA := n.ServiceName(ca)
			sb, errSB := n.ServiceName(cb)
			if errSA == nil && errSB == nil && sa == sb {
				t.Fatalf("namer %d: %q and %q share service name %q", i, ca, cb, sa)
			}
			va, errVA := n.VolumeName(ca)
			vb, errVB := n.VolumeName(cb)
			if errVA == nil && errVB == nil && va == vb {
				t.Fatalf("namer %d: %q and %q share volume name %q", i, ca, cb, va)
			}
		}
	})
}

func TestDerivedPaths(t *testing.T) {
	cases := []struct{ user, path, dir string }{
		{"alice", "/user/alice/", "users/alice"},
		{"a.b", "/user/a.b/", "users/a.b"},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			if got := identity.UserPath(tc.user); got != tc.path {
				t.Errorf("UserPath(%q) = %q, want %q", tc.user, got, tc.path)
			}
			if got := identity.WorkspaceDir(tc.user); got != tc.dir {
				t.Errorf("WorkspaceDir(%q) = %q, want %q", tc.user, got, tc.dir)
			}
		})
	}
}
