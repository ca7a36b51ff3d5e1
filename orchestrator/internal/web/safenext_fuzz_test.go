package web_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// nextDefault is a marker no input can produce by accident, so the test can
// tell "rejected" from "accepted".
const nextDefault = "/hub/home#default"

// FuzzSafeNext checks that next= can only ever lead to a path on the hub
// itself: whatever safeNext returns is either the default or a local path
// with a single leading slash, no scheme, no host, no control characters,
// and a browser resolving it against the hub's URL stays on the hub.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{
		"", "/", "/hub/home", "/user/alice/tree?x=1#y", "//evil.example", "/\\evil.example",
		"https:evil.example", "https://evil.example/", "javascript:alert(1)", "/%0d%0aSet-Cookie:x",
		"/\t/evil.example", "/\r\n//evil", "/%2f%2fevil", "/./..//evil", "\\\\evil", "/@evil.example",
		"/user/a/../../..//evil", "/\x00", "/\x7f", "/\u0085evil", "http:/evil", "/ /evil",
		"/" + strings.Repeat("a", 3000),
	} {
		f.Add(s)
	}
	hub, _ := url.Parse("http://hub.example/")
	f.Fuzz(func(t *testing.T, in string) {
		got := web.SafeNext(in, nextDefault)
		if got == nextDefault {
			return
		}
		if got != in {
			t.Fatalf("safeNext(%q) = %q: neither the input nor the default", in, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") {
			t.Fatalf("safeNext accepted %q: not a single-slash local path", got)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("safeNext accepted %q holding control byte %#x", got, c)
			}
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("safeNext accepted %q, which does not parse: %v", got, err)
		}
		if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
			t.Fatalf("safeNext accepted %q with scheme %q host %q user %v opaque %q", got, u.Scheme, u.Host, u.User, u.Opaque)
		}
		if r := hub.ResolveReference(u); r.Host != "hub.example" || r.Scheme != "http" {
			t.Fatalf("safeNext accepted %q, which a browser resolves to %s", got, r)
		}
	})
}
