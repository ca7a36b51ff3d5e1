package spawner

import (
	"testing"
	"time"
)

// TestProbePaceSharesABudget: a lone start is probed every minProbeGap; the
// starts of a storm share probesPerSecond, never spaced wider than the poll
// interval.
func TestProbePaceSharesABudget(t *testing.T) {
	p := newProbePace(250 * time.Millisecond)
	for _, c := range []struct {
		active int64
		want   time.Duration
	}{
		{0, minProbeGap}, {1, minProbeGap}, {2, minProbeGap},
		{10, 50 * time.Millisecond}, {30, 150 * time.Millisecond},
		{50, 250 * time.Millisecond}, {300, 250 * time.Millisecond},
	} {
		p.active.Store(c.active)
		if got := p.gap(); got != c.want {
			t.Errorf("gap with %d starts = %s, want %s", c.active, got, c.want)
		}
	}
	if got := newProbePace(time.Millisecond).gap(); got != time.Millisecond {
		t.Errorf("gap with a 1ms poll interval = %s, want 1ms", got)
	}
}
