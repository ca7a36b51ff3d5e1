// Command tinynotebook is a stand-in Jupyter server for tests and
// benchmarks: it follows swarmhub's server start contract (SWARMHUB_PORT,
// SWARMHUB_BASE_URL, JUPYTER_TOKEN) and answers the few endpoints the
// orchestrator and the benchmarks use, in a static binary for a FROM scratch
// image. Its kernels (kernel.go) evaluate sums of integers, enough for a
// benchmark's first cell.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tinynotebook:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	port := getenv("SWARMHUB_PORT")
	if port == "" {
		port = "8888"
	}
	base := getenv("SWARMHUB_BASE_URL")
	if base == "" {
		base = "/"
	}
	if !strings.HasPrefix(base, "/") || !strings.HasSuffix(base, "/") {
		return fmt.Errorf("SWARMHUB_BASE_URL %q must start and end with /", base)
	}
	token := getenv("JUPYTER_TOKEN")
	if token == "" {
		return errors.New("JUPYTER_TOKEN is empty: refusing to serve without a token")
	}

	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newHandler(base, token, time.Now), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("tinynotebook listening", "addr", ln.Addr().String(), "base_url", base)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type status struct {
	Started      string `json:"started"`
	LastActivity string `json:"last_activity"`
	Connections  int    `json:"connections"`
	Kernels      int    `json:"kernels"`
}

func newHandler(base, token string, now func() time.Time) http.Handler {
	started := now().UTC()
	var last atomic.Int64
	last.Store(started.UnixNano())
	var conns atomic.Int64
	touch := func() { last.Store(now().UnixNano()) }
	kernels := &kernelSet{}
	authorized := func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "token "+token || r.URL.Query().Get("token") == token
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+base+"api", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": "tiny"})
	})
	mux.HandleFunc("GET "+base+"api/status", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
			return
		}
		writeJSON(w, http.StatusOK, status{
			Started:      started.Format(time.RFC3339Nano),
			LastActivity: time.Unix(0, last.Load()).UTC().Format(time.RFC3339Nano),
			Connections:  int(conns.Load()),
			Kernels:      kernels.count(),
		})
	})
	kernels.routes(mux, base, authorized, touch)
	mux.HandleFunc("GET "+base+"echo", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		conns.Add(1)
		defer conns.Add(-1)
		defer c.CloseNow()
		ctx := r.Context()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			touch()
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
