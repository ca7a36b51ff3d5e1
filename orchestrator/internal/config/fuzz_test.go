package config_test

import (
	"errors"
	"os"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

// FuzzParse: arbitrary bytes never panic, and every rejection is *Errors
// with a message.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(exampleFile); err == nil {
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte("notebook: {mem_limit: 1.5G, env: {A: b}}\nauth: &a {ldap: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, nil)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate rejects: %v", verr)
			}
			return
		}
		var errs *config.Errors
		if !errors.As(err, &errs) || len(*errs) == 0 {
			t.Fatalf("error is not a non-empty *config.Errors: %T %v", err, err)
		}
		for _, e := range *errs {
			if e.Msg == "" {
				t.Fatalf("empty message for key %q", e.Key)
			}
		}
	})
}
