package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
)

func TestKernelFirstCell(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newHandler("/user/alice/", "secret", time.Now))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ks := kernelclient.Server{URL: srv.URL + "/user/alice", Header: http.Header{"Authorization": {"token secret"}}}
	id, err := ks.StartKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := kernelclient.Dial(ctx, ks.ChannelsURL(id), ks.Header)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for code, want := range map[string]string{"1+1": "2", " 2 + 3 + -4 ": "1"} {
		if out, err := kernelclient.Execute(ctx, conn, kernelclient.Request{Code: code}); err != nil || out != want {
			t.Errorf("execute %q = %q, %v; want %q", code, out, err, want)
		}
	}
	var kerr *kernelclient.Error
	if _, err := kernelclient.Execute(ctx, conn, kernelclient.Request{Code: "print(1)"}); !errors.As(err, &kerr) || kerr.Name != "NotImplementedError" {
		t.Errorf("execute print(1) = %v, want a NotImplementedError reply", err)
	}
	if err := ks.DeleteKernel(ctx, id); err != nil {
		t.Error(err)
	}
	if _, err := kernelclient.Dial(ctx, ks.ChannelsURL(id), ks.Header); err == nil {
		t.Error("the channels of a deleted kernel were accepted")
	}
	if _, err := (kernelclient.Server{URL: ks.URL}).StartKernel(ctx); err == nil {
		t.Error("a kernel was created without the token")
	}
}
