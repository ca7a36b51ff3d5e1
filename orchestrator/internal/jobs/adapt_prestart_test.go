package jobs

import (
	"context"
	"math"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/capacity"
)

type fixedRoom capacity.Report

func (f fixedRoom) Report(context.Context) (capacity.Report, error) { return capacity.Report(f), nil }

// Without guarantees the capacity is unlimited, which must not read as
// "full" to a pre-start.
func TestFreeRoomTreatsUnlimitedAsRoom(t *testing.T) {
	for _, tt := range []struct{ fit, want int }{{capacity.Unlimited, math.MaxInt}, {3, 3}, {0, 0}} {
		got, err := freeRoom{fixedRoom{Fit: tt.fit}}.Free(t.Context())
		if err != nil || got != tt.want {
			t.Errorf("Fit %d: Free = %d, %v; want %d", tt.fit, got, err, tt.want)
		}
	}
}
