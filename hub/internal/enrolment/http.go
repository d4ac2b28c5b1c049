package enrolment

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/pifleet/pifleet/internal/enrol"
)

// maxBody caps request bodies: a join request is a few hundred bytes.
const maxBody = 16 << 10

// Listen opens the enrolment listener (HTTPS with the broker's
// certificate and the CA in its chain, so a Pi finds the CA it pinned).
func (e *Enroller) Listen(addr string) (net.Listener, error) {
	chain, key := e.cfg.PKI.serverChain()
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return nil, fmt.Errorf("enrolment listener: certificate: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("enrolment listener: listen on %s: %w", addr, err)
	}
	return tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}), nil
}

// Serve answers joins on ln until ctx ends.
func (e *Enroller) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+enrol.JoinPath, e.serveJoin)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second,
		// TLS handshake errors (scanners, a Pi refusing the hub's
		// certificate) are not the operator's problem.
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	e.log.Info("enrolment listening", "addr", ln.Addr().String(), "ca_pin", e.cfg.PKI.Pin.String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("enrolment listener: %w", err)
	}
	return nil
}

func (e *Enroller) serveJoin(w http.ResponseWriter, r *http.Request) {
	if !e.allow(r.RemoteAddr) {
		writeErr(w, http.StatusTooManyRequests, "too many join attempts from this address; wait a minute")
		return
	}
	var req enrol.JoinRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "the join request is not JSON")
		return
	}
	ans, err := e.Join(req)
	if err != nil {
		e.logRefusal(r.RemoteAddr, req, err)
		status := http.StatusInternalServerError
		var je *joinError
		if errors.As(err, &je) {
			status = je.status
		}
		msg := err.Error()
		if status == http.StatusInternalServerError {
			msg = "the hub could not enrol this Pi; its log says why"
		}
		writeErr(w, status, msg)
		return
	}
	e.log.Info("Pi joined", "id", ans.ID, "remote", r.RemoteAddr, "labels", ans.Labels)
	writeJSON(w, ans)
}

// APIRoutes are the operator's requests on the hub's HTTP API (behind its
// bearer token): POST /api/pis (add-pi), GET /api/pis/pending, DELETE
// /api/pis/pending/{token_id} (pis revoke), DELETE /api/pis/{id}
// (remove-pi).
func (e *Enroller) APIRoutes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST /api/pis": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req AddRequest
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
				writeErr(w, http.StatusBadRequest, "the request is not JSON")
				return
			}
			ans, err := e.Add(req)
			if err != nil {
				writeErr(w, http.StatusBadRequest, err.Error())
				return
			}
			writeJSON(w, ans)
		}),
		"GET /api/pis/pending": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, e.Pending())
		}),
		"DELETE /api/pis/pending/{token_id}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ans, err := e.Revoke(r.PathValue("token_id"))
			if err != nil {
				status := http.StatusInternalServerError
				if errors.Is(err, ErrNoToken) {
					status = http.StatusNotFound
				}
				writeErr(w, status, err.Error())
				return
			}
			writeJSON(w, ans)
		}),
		"DELETE /api/pis/{id}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ans, err := e.Remove(r.Context(), r.PathValue("id"))
			if err != nil {
				status := http.StatusBadRequest
				if errors.Is(err, ErrNoPi) {
					status = http.StatusNotFound
				}
				writeErr(w, status, err.Error())
				return
			}
			writeJSON(w, ans)
		}),
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(enrol.ErrorAnswer{Error: msg})
}
