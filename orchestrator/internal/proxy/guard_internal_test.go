package proxy

import (
	"net/http/httptest"
	"testing"
)

// BenchmarkGuards is what the Origin check, the two-cookie check and the
// per-user cap add to one proxied same-origin POST, without the network
// around it that dominates BenchmarkProxyHTTP's figures. It must not
// allocate.
func BenchmarkGuards(b *testing.B) {
	p := originPolicy{}
	var l userLimits
	l.maxReq = 128
	r := httptest.NewRequest("POST", "http://hub.example.edu/user/alice/api/contents/a.ipynb", nil)
	r.Header.Set("Origin", "http://hub.example.edu")
	r.Header.Set("Cookie", "_xsrf=2|abcdef; swarmhub-session=s-alice; username-hub=x")
	b.ReportAllocs()
	for b.Loop() {
		if sessionCookies(r, "swarmhub-session") != 1 {
			b.Fatal("cookie count")
		}
		if why := p.crossOrigin(r, false); why != "" {
			b.Fatal(why)
		}
		slot, ok := l.acquire("alice", false)
		if !ok {
			b.Fatal("capped")
		}
		release(slot)
	}
}
