// Package prestart starts a group's servers ahead of a lecture: at each
// lecture time (a cron expression or a list of times) minus a lead, it
// starts the group's servers at a rate the cluster can take, skipping those
// already running and those that would not fit, and asks the culler to
// spare them until a grace period after the lecture has begun.
package prestart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
)

// Defaults for the fields a schedule leaves at zero.
const (
	DefaultLead          = 30 * time.Minute
	DefaultRatePerMinute = 30
	DefaultGrace         = 30 * time.Minute
)

// Schedule is one pre-start. Exactly one of Cron and Times says when the
// lectures begin; the servers are started Lead before each.
type Schedule struct {
	Name string `yaml:"name"`
	// Cron is a 5-field cron expression (or @weekly style) of lecture
	// starts in the machine's time zone; a CRON_TZ=Area/City prefix picks
	// another zone.
	Cron string `yaml:"cron"`
	// Times are single lecture starts, RFC 3339 ("2026-12-07T10:15:00+01:00")
	// or local "2026-12-07 10:15".
	Times []string `yaml:"times"`
	// Group is the hub group whose servers are started; empty means every
	// allowed user.
	Group         string        `yaml:"group"`
	Lead          time.Duration `yaml:"lead"`
	RatePerMinute int           `yaml:"rate_per_minute"`
	Grace         time.Duration `yaml:"grace"`
}

// FieldError names the field a problem is in.
type FieldError struct {
	Field, Msg string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Normalized fills the defaults.
func (s Schedule) Normalized() Schedule {
	if s.Lead == 0 {
		s.Lead = DefaultLead
	}
	if s.RatePerMinute == 0 {
		s.RatePerMinute = DefaultRatePerMinute
	}
	if s.Grace == 0 {
		s.Grace = DefaultGrace
	}
	return s
}

// Validate returns every problem of s, each naming its field.
func (s Schedule) Validate() []*FieldError {
	var errs []*FieldError
	add := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	if !namePattern.MatchString(s.Name) {
		add("name", "%q is not a schedule name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	switch {
	case s.Cron == "" && len(s.Times) == 0:
		add("cron", "say when the lectures begin: a cron expression (cron: \"15 10 * * 1\" = Mondays 10:15) or a list of times")
	case s.Cron != "" && len(s.Times) > 0:
		add("times", "give either cron or times, not both")
	case s.Cron != "":
		if _, err := cronParser.Parse(s.Cron); err != nil {
			add("cron", "%q is not a cron expression (5 fields, e.g. \"15 10 * * 1\"): %v", s.Cron, err)
		}
	default:
		for i, t := range s.Times {
			if _, err := parseTime(t); err != nil {
				add(fmt.Sprintf("times[%d]", i), "%v", err)
			}
		}
	}
	if s.Lead < 0 || s.Lead > 24*time.Hour {
		add("lead", "%s is out of range: servers start between 1s and 24h before the lecture (default 30m)", s.Lead)
	}
	if s.RatePerMinute < 0 || s.RatePerMinute > 6000 {
		add("rate_per_minute", "%d is out of range: 1 to 6000 starts per minute (default %d)", s.RatePerMinute, DefaultRatePerMinute)
	}
	if s.Grace < 0 || s.Grace > 24*time.Hour {
		add("grace", "%s is out of range: the culler spares pre-started servers for 1s to 24h after the lecture begins (default 30m)", s.Grace)
	}
	return errs
}

// timeLayouts are the accepted forms of a lecture time; the ones without
// a zone are read in the machine's time zone.
var timeLayouts = []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04"}

func parseTime(v string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: write 2026-12-07T10:15:00+01:00 or 2026-12-07 10:15 (local time)", v)
}

// NextLecture is the first lecture start strictly after now (zero when
// none is left). s must be valid.
func (s Schedule) NextLecture(now time.Time) time.Time {
	if s.Cron != "" {
		sched, err := cronParser.Parse(s.Cron)
		if err != nil {
			return time.Time{}
		}
		return sched.Next(now)
	}
	var next time.Time
	for _, v := range s.Times {
		t, err := parseTime(v)
		if err != nil || !t.After(now) {
			continue
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// scheduleJSON is the API's shape: durations as Go duration strings.
type scheduleJSON struct {
	Name          string   `json:"name"`
	Cron          string   `json:"cron,omitempty"`
	Times         []string `json:"times,omitempty"`
	Group         string   `json:"group"`
	Lead          string   `json:"lead,omitempty"`
	RatePerMinute int      `json:"rate_per_minute,omitempty"`
	Grace         string   `json:"grace,omitempty"`
}

// MarshalJSON writes durations as "30m0s".
func (s Schedule) MarshalJSON() ([]byte, error) {
	j := scheduleJSON{Name: s.Name, Cron: s.Cron, Times: s.Times, Group: s.Group, RatePerMinute: s.RatePerMinute}
	if s.Lead != 0 {
		j.Lead = s.Lead.String()
	}
	if s.Grace != 0 {
		j.Grace = s.Grace.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads durations as "30m"; unknown fields are refused so a
// typo does not silently become a default.
func (s *Schedule) UnmarshalJSON(b []byte) error {
	var j scheduleJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	out := Schedule{Name: j.Name, Cron: j.Cron, Times: slices.Clone(j.Times), Group: j.Group, RatePerMinute: j.RatePerMinute}
	var err error
	if out.Lead, err = parseDuration("lead", j.Lead); err != nil {
		return err
	}
	if out.Grace, err = parseDuration("grace", j.Grace); err != nil {
		return err
	}
	*s = out
	return nil
}

func parseDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, &FieldError{Field: field, Msg: fmt.Sprintf("%q is not a duration (e.g. 30m, 1h)", v)}
	}
	return d, nil
}
