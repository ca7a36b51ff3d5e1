package proxy_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/proxy"
)

func TestParseUserPath(t *testing.T) {
	cases := []struct {
		name     string
		in       string
		wantUser string
		wantRest string
		wantOK   bool
	}{
		{"plain", "/user/alice/tree", "alice", "/tree", true},
		{"root of server", "/user/alice/", "alice", "/", true},
		{"no trailing slash", "/user/alice", "alice", "", true},
		{"escaped name decoded", "/user/a%2Db/", "a-b", "/", true},
		{"rest stays escaped", "/user/alice/files/a%20b.txt", "alice", "/files/a%20b.txt", true},
		{"double slash in rest", "/user/alice//x", "alice", "//x", true},
		{"dots inside names are fine", "/user/a.b/x..y/.hidden", "a.b", "/x..y/.hidden", true},
		{"not under /user/", "/hub/home", "", "", false},
		{"bare prefix", "/user", "", "", false},
		{"empty name", "/user/", "", "", false},
		{"empty name with rest", "/user//alice/", "", "", false},
		{"encoded slash in name", "/user/a%2Fb/", "", "", false},
		{"encoded backslash in name", "/user/a%5cb/", "", "", false},
		{"raw backslash in name", "/user/a\\b/", "", "", false},
		{"dot name", "/user/./", "", "", false},
		{"dot-dot name", "/user/../", "", "", false},
		{"encoded dot-dot name", "/user/%2E%2E/", "", "", false},
		{"NUL in name", "/user/a%00/", "", "", false},
		{"control character in name", "/user/a%0Ab/", "", "", false},
		{"malformed escape in name", "/user/a%zz/", "", "", false},
		{"malformed escape in rest", "/user/alice/%z", "", "", false},
		{"dot-dot in rest", "/user/alice/../bob/", "", "", false},
		{"encoded dot in rest", "/user/alice/%2e/x", "", "", false},
		{"dot-dot behind encoded slash", "/user/alice/a%2f..", "", "", false},
		{"dot-dot behind backslash", "/user/alice/a%5c..%5cb", "", "", false},
		{"raw NUL in rest", "/user/alice/a\x00", "", "", false},
		{"overlong name", "/user/" + strings.Repeat("a", 300) + "/", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			user, rest, ok := proxy.ParseUserPath(tc.in)
			if user != tc.wantUser || rest != tc.wantRest || ok != tc.wantOK {
				t.Errorf("ParseUserPath(%q) = %q, %q, %v; want %q, %q, %v",
					tc.in, user, rest, ok, tc.wantUser, tc.wantRest, tc.wantOK)
			}
		})
	}
}

// FuzzParseUserPath checks the routing invariants: no panic; an accepted
// name is a single, non-dot path element; no accepted path holds a "." or
// ".." element, even after decoding; the canonical spelling the proxy
// redirects to parses back to the same name.
func FuzzParseUserPath(f *testing.F) {
	for _, s := range []string{
		"/user/alice/", "/user/alice", "/user/alice/api/kernels/1/channels?session_id=x",
		"/user/a%2Fb/", "/user/..%2f/", "/user/%2e%2e/x", "/user//x", "/user/alice/%2e%2E/bob",
		"/user/ALICE/", "/user/al%69ce/tree", "/user/a%00/", "/user/alice/a%2f..%2fb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		user, rest, ok := proxy.ParseUserPath(in)
		if !ok {
			if user != "" || rest != "" {
				t.Fatalf("refused %q but returned %q, %q", in, user, rest)
			}
			return
		}
		if user == "" || user == "." || user == ".." {
			t.Fatalf("accepted name %q from %q", user, in)
		}
		if strings.ContainsAny(user, "/\\\x00") {
			t.Fatalf("accepted name %q from %q holds a separator or NUL", user, in)
		}
		if rest != "" && rest[0] != '/' {
			t.Fatalf("rest %q of %q does not start with /", rest, in)
		}
		if !strings.HasSuffix(in, rest) {
			t.Fatalf("rest %q is not the tail of %q", rest, in)
		}
		for _, seg := range strings.Split(rest, "/") {
			dec, err := url.PathUnescape(seg)
			if err != nil {
				t.Fatalf("accepted %q with malformed segment %q", in, seg)
			}
			for _, part := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
				if part == "." || part == ".." {
					t.Fatalf("accepted %q with dot element in segment %q", in, seg)
				}
			}
			if dec == "." || dec == ".." || strings.Contains(dec, "\x00") {
				t.Fatalf("accepted %q with segment %q", in, seg)
			}
		}
		// The redirect target stays on the same name, without a loop.
		canon := url.PathEscape(strings.ToLower(user))
		u2, _, ok2 := proxy.ParseUserPath("/user/" + canon + "/")
		if ok2 && u2 != strings.ToLower(user) {
			t.Fatalf("canonical path of %q parses to %q", user, u2)
		}
		if ok2 && url.PathEscape(strings.ToLower(u2)) != canon {
			t.Fatalf("canonical spelling of %q is not stable", user)
		}
	})
}
