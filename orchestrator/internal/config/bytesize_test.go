package config_test

import (
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want config.ByteSize
	}{
		{"0", 0},
		{"1073741824", config.GiB},
		{"512M", 512 * config.MiB},
		{"512m", 512 * config.MiB},
		{"2G", 2 * config.GiB},
		{"1.5G", 1536 * config.MiB},
		{"2GiB", 2 * config.GiB},
		{"2gb", 2 * config.GiB},
		{"100K", 100 * config.KiB},
		{"1T", config.TiB},
		{"1P", config.PiB},
		{"10b", 10},
		{" 64 M ", 64 * config.MiB},
	}
	for _, tt := range tests {
		got, err := config.ParseByteSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "1.G", "1e9", "0x10", "2X", "2 GB extra", "1i", "9999999999999999999", "99999999P", "NaN", "Inf"} {
		if got, err := config.ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", bad, got)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   config.ByteSize
		want string
	}{
		{0, "0"}, {1000, "1000"}, {2 * config.GiB, "2G"}, {1536 * config.MiB, "1536M"}, {config.KiB, "1K"}, {3 * config.PiB, "3P"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		back, err := config.ParseByteSize(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.want, back, err, tt.in)
		}
	}
	var b config.ByteSize
	if err := b.UnmarshalText([]byte("2G")); err != nil || b != 2*config.GiB {
		t.Errorf("UnmarshalText: %d %v", b, err)
	}
}
