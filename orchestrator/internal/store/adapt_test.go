package store_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

func TestAccessEventsRecordsAdminAccess(t *testing.T) {
	st, _ := newStore(t)
	a := &store.AccessEvents{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a.AdminAccess("root", "ann")
	evs, err := st.Events(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != "admin-access" || evs[0].User != "ann" || evs[0].Actor != "root" {
		t.Fatalf("events %+v", evs)
	}
}
