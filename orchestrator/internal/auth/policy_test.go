package auth_test

import (
	"errors"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
)

func TestPolicyAdmit(t *testing.T) {
	lists := memLists{
		blocked: map[string]bool{"mallory": true, "fallen": true},
		admin:   map[string]bool{"data8": true, "fallen": true},
		allowed: map[string]bool{"alice": true, "mallory": true},
	}
	group := "cn=data8,ou=groups,dc=example,dc=edu"
	tests := []struct {
		name      string
		allowAll  bool
		r         auth.Result
		wantAdmin bool
		wantErr   error
	}{
		{"listed user", false, auth.Result{Username: "alice"}, false, nil},
		{"admin needs no other listing", false, auth.Result{Username: "data8"}, true, nil},
		{"blocked beats allowed", false, auth.Result{Username: "mallory"}, false, auth.ErrBlocked},
		{"blocked beats admin", false, auth.Result{Username: "fallen"}, false, auth.ErrBlocked},
		{"blocked beats allow_all", true, auth.Result{Username: "mallory"}, false, auth.ErrBlocked},
		{"unlisted user", false, auth.Result{Username: "bob"}, false, auth.ErrNotAllowed},
		{"unlisted user with allow_all", true, auth.Result{Username: "bob"}, false, nil},
		{"member of an allowed group", false, auth.Result{Username: "bob", Groups: []string{group}}, false, nil},
		{"no username", true, auth.Result{}, false, auth.ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := auth.NewPolicy(tt.allowAll)
			admin, err := p.Admit(tt.r, lists.of(tt.r.Username))
			if admin != tt.wantAdmin || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Admit(%+v) = %v, %v; want %v, %v", tt.r, admin, err, tt.wantAdmin, tt.wantErr)
			}
		})
	}
}
