package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/config"
)

func TestPrestartSchedulesLoadAndNameTheirProblems(t *testing.T) {
	ok := `auth: {authenticator: dummy, dummy: {password: pw}}
lifecycle:
  prestart:
    - {name: cs101, cron: "15 10 * * 1", group: cs101, lead: 45m, rate_per_minute: 20}
    - {name: exam, times: ["2026-12-07 10:15"]}
`
	c, err := config.Load(writeFile(t, "c.yaml", ok), env())
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Lifecycle.Prestart; len(p) != 2 || p[0].Lead != 45*time.Minute || p[0].RatePerMinute != 20 || p[1].Times[0] != "2026-12-07 10:15" {
		t.Fatalf("prestart = %+v", p)
	}
	bad := `auth: {authenticator: dummy, dummy: {password: pw}}
lifecycle:
  prestart:
    - {name: a, cron: "0 25 * * 1"}
    - {name: a, times: [tomorrow], leed: 3m}
`
	_, err = config.Load(writeFile(t, "c.yaml", bad), env())
	var errs *config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %v, want *config.Errors", err)
	}
	for _, want := range []string{"lifecycle.prestart[0].cron", "lifecycle.prestart[1].times[0]", "lifecycle.prestart[1].leed", "lifecycle.prestart[1].name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no problem reported for %s:\n%v", want, err)
		}
	}
}
