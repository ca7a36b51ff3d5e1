package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// ByteSize is a memory size in bytes, written like Docker and JupyterHub
// write them: plain bytes, or a number with K, M, G, T or P (binary units,
// so 1K = 1024; an optional "i" and "B" are accepted: 2GiB, 2gb).
type ByteSize int64

// Binary units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
)

var units = []struct {
	suffix string
	size   ByteSize
}{{"P", PiB}, {"T", TiB}, {"G", GiB}, {"M", MiB}, {"K", KiB}}

var errByteSize = errors.New("not a size")

var sizeRE = regexp.MustCompile(`(?i)^([0-9]+(?:\.[0-9]+)?)\s*(?:([kmgtp])i?)?b?$`)

// ParseByteSize parses "512M", "2G", "1.5G", "2GiB" or "1073741824".
func ParseByteSize(s string) (ByteSize, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%w: %q", errByteSize, s)
	}
	var mult ByteSize = 1
	for _, u := range units {
		if strings.EqualFold(m[2], u.suffix) {
			mult = u.size
		}
	}
	if i, err := strconv.ParseInt(m[1], 10, 64); err == nil {
		if i > math.MaxInt64/int64(mult) {
			return 0, fmt.Errorf("%w: %q is too large", errByteSize, s)
		}
		return ByteSize(i) * mult, nil
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", errByteSize, s)
	}
	v := math.Round(f * float64(mult))
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: %q is too large", errByteSize, s)
	}
	return ByteSize(v), nil
}

// String writes the size exactly, in the largest unit that divides it:
// 2G, 1536M, 1000 (bytes).
func (b ByteSize) String() string {
	if b != 0 {
		for _, u := range units {
			if b%u.size == 0 {
				return strconv.FormatInt(int64(b/u.size), 10) + u.suffix
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
