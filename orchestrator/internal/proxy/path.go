package proxy

import (
	"net/url"
	"strings"
)

const userPrefix = "/user/"

// maxNameLen bounds the name segment; no valid username comes near it and a
// longer one is hostile input, not a user.
const maxNameLen = 256

// ParseUserPath splits an escaped request path "/user/NAME/REST" into the
// percent-decoded user name and the still-escaped remainder ("" when the path
// stops right after the name, otherwise starting with "/").
//
// It refuses (ok == false) anything that could make two different strings
// route to one server or leave the /user/NAME/ prefix on the way upstream: an
// empty name; a name that decodes to "." or "..", or contains '/', '\', NUL or
// another control character; any later segment that decodes to "." or "..",
// or holds one between encoded separators; NUL anywhere; malformed escapes.
// The remainder is otherwise left to the user's own server.
func ParseUserPath(escapedPath string) (user string, rest string, ok bool) {
	if !strings.HasPrefix(escapedPath, userPrefix) {
		return "", "", false
	}
	tail := escapedPath[len(userPrefix):]
	seg, rest := tail, ""
	if i := strings.IndexByte(tail, '/'); i >= 0 {
		seg, rest = tail[:i], tail[i:]
	}
	if seg == "" || len(seg) > maxNameLen {
		return "", "", false
	}
	name := seg
	if strings.IndexByte(seg, '%') >= 0 {
		var err error
		if name, err = url.PathUnescape(seg); err != nil {
			return "", "", false
		}
	}
	if name == "." || name == ".." {
		return "", "", false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return "", "", false
		}
	}
	if !restIsSafe(rest) {
		return "", "", false
	}
	return name, rest, true
}

// restIsSafe reports whether no segment of the escaped remainder is, or
// decodes to something holding, a "." or ".." path element or a NUL.
func restIsSafe(rest string) bool {
	for rest != "" {
		rest = rest[1:] // drop the leading '/'
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		if seg == "." || seg == ".." || strings.IndexByte(seg, 0) >= 0 {
			return false
		}
		if strings.IndexByte(seg, '%') < 0 && strings.IndexByte(seg, '\\') < 0 {
			continue
		}
		dec, err := url.PathUnescape(seg)
		if err != nil || strings.IndexByte(dec, 0) >= 0 {
			return false
		}
		// An encoded '/' or '\' may be decoded into a separator by someone
		// downstream, so every piece between them must be safe as well.
		for _, part := range strings.FieldsFunc(dec, isSep) {
			if part == "." || part == ".." {
				return false
			}
		}
		if dec == "." || dec == ".." {
			return false
		}
	}
	return true
}

func isSep(r rune) bool { return r == '/' || r == '\\' }
