package hubd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/pifleet/pifleet/internal/transport"
)

// serveDebug serves Go's profiler on a loopback address until ctx ends:
// how the fleet-scale numbers in the README were found (go tool pprof
// http://127.0.0.1:6060/debug/pprof/profile?seconds=20).
func serveDebug(ctx context.Context, addr string, log *slog.Logger) error {
	if !transport.IsLoopbackAddr(addr) {
		return fmt.Errorf("--debug-listen %s: the profiler shows memory contents; it listens on loopback only (e.g. 127.0.0.1:6060)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info("profiler listening", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return nil
}
