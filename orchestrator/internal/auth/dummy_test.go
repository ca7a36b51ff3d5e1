package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
)

func TestDummy(t *testing.T) {
	log, buf := newLogger(t)
	a := auth.NewDummy("sesame", namer(t), log)
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "development only") {
		t.Errorf("no development-only warning:\n%s", buf)
	}
	tests := []struct {
		name, user, password, want string
		err                        error
	}{
		{"right password", " Alice ", "sesame", "alice", nil},
		{"username_map", "Boninho", "sesame", "data8", nil},
		{"wrong password", "alice", "sesame!", "", auth.ErrInvalidCredentials},
		{"prefix of the password", "alice", "sesam", "", auth.ErrInvalidCredentials},
		{"empty password", "alice", "", "", auth.ErrInvalidCredentials},
		{"invalid name", "../etc", "sesame", "", auth.ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := a.Authenticate(context.Background(), tt.user, tt.password)
			if !errors.Is(err, tt.err) || r.Username != tt.want {
				t.Errorf("got %q, %v; want %q, %v", r.Username, err, tt.want, tt.err)
			}
		})
	}
	if a.Name() != "dummy" || a.Check(context.Background()) != nil {
		t.Error("Name/Check")
	}
}

func TestDummyWithoutPasswordRefusesAll(t *testing.T) {
	log, _ := newLogger(t)
	a := auth.NewDummy("", namer(t), log)
	if _, err := a.Authenticate(context.Background(), "alice", "anything"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("got %v", err)
	}
}
