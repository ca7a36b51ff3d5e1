package spawner

import (
	"context"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// WrapStore adapts *store.Store to Store: its Lock returns the concrete
// *store.Lock, which Go does not accept where an interface result is asked.
func WrapStore(s *store.Store) Store { return storeAdapter{s} }

type storeAdapter struct{ *store.Store }

func (a storeAdapter) Lock(ctx context.Context, key string, ttl time.Duration) (Lock, error) {
	l, err := a.Store.Lock(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	return l, nil
}
