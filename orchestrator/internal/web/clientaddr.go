package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address a request comes from, as login regulation
// counts it. X-Forwarded-For is believed only when the direct peer is one
// of trusted (a reverse proxy the operator runs): walking the header from
// the right, the first address that is no trusted proxy is the client.
// Anyone can send the header, so from any other peer it is ignored.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := remoteAddr(r)
	if !isTrusted(peer, trusted) {
		return addrString(peer, r.RemoteAddr)
	}
	hops := forwardedFor(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // a garbled hop: nothing left of it can be trusted
		}
		peer = a.Unmap()
		if !isTrusted(peer, trusted) {
			break
		}
	}
	return addrString(peer, r.RemoteAddr)
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	a = a.WithZone("")
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor splits every X-Forwarded-For line into its hops, in order.
func forwardedFor(lines []string) []string {
	var hops []string
	for _, l := range lines {
		for h := range strings.SplitSeq(l, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	return hops
}

func addrString(a netip.Addr, fallback string) string {
	if !a.IsValid() {
		return fallback
	}
	return a.String()
}
