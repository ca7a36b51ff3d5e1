package store

import (
	"context"
	"log/slog"
	"time"
)

// AccessEvents records an admin opening someone else's server.
type AccessEvents struct {
	Store *Store
	Log   *slog.Logger
}

// AdminAccess implements the proxy's admin access hook.
func (a *AccessEvents) AdminAccess(admin, user string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := a.Store.AddEvent(ctx, Event{Time: time.Now().UTC(), Kind: "admin-access", User: user, Actor: admin,
		Message: admin + " opened " + user + "'s server"}); err != nil {
		a.Log.Warn("recording admin access", "err", err)
	}
}
