package testsupport_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

func TestClockMovesOnlyWhenAdvanced(t *testing.T) {
	start := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	c := testsupport.NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Fatalf("after Advance: Now = %v, want %v", got, want)
	}
}

func TestBufferConcurrentWrites(t *testing.T) {
	var b testsupport.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprintf(&b, "w%d\n", i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
}

func TestEchoBufferKeepsWrites(t *testing.T) {
	b := testsupport.NewEchoBuffer(t)
	b.Write([]byte("level=INFO msg=hello\n"))
	if got := b.String(); got != "level=INFO msg=hello\n" {
		t.Fatalf("String = %q", got)
	}
}
