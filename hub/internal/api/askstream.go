package api

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/pifleet/pifleet/hub/internal/chat"
)

// NDJSON is the media type of a streamed answer to POST /api/ask: a
// client that accepts it gets the command's progress while it runs.
const NDJSON = "application/x-ndjson"

// AskEvent is one line of a streamed answer: zero or more progress lines
// (chat.Status.Line: "pi1 ✅ 2.7 s · pi2 ⏳ running"), then the reply.
type AskEvent struct {
	Progress string      `json:"progress,omitempty"`
	Reply    *chat.Reply `json:"reply,omitempty"`
}

// ProgressAsker is an Engine whose commands report progress
// (*chat.Engine).
type ProgressAsker interface {
	AskProgress(ctx context.Context, r chat.Request, progress func(chat.Status)) chat.Reply
}

// wantsStream reports whether the request accepts a streamed answer.
func wantsStream(r *http.Request) bool {
	for _, a := range strings.Split(r.Header.Get("Accept"), ",") {
		if t, _, err := mime.ParseMediaType(strings.TrimSpace(a)); err == nil && t == NDJSON {
			return true
		}
	}
	return false
}

// askStream answers req as NDJSON: the latest progress whenever it
// changes (progress that comes faster than the client reads is merged),
// then the reply. false: the engine or the connection cannot stream.
func (s *Server) askStream(w http.ResponseWriter, r *http.Request, req chat.Request) bool {
	pa, ok := s.Engine.(ProgressAsker)
	fl, canFlush := w.(http.Flusher)
	if !ok || !canFlush {
		return false
	}
	latest := make(chan string, 1)
	done := make(chan chat.Reply, 1)
	go func() {
		done <- pa.AskProgress(r.Context(), req, func(st chat.Status) {
			line := st.Line()
			for { // never blocks: the newest line replaces one not sent yet
				select {
				case latest <- line:
					return
				default:
				}
				select {
				case <-latest:
				default:
				}
			}
		})
	}()
	w.Header().Set("Content-Type", NDJSON)
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for {
		select {
		case line := <-latest:
			if enc.Encode(AskEvent{Progress: line}) == nil {
				fl.Flush()
			}
		case reply := <-done:
			plain := reply.Plain() // as the unstreamed answer: no marks
			_ = enc.Encode(AskEvent{Reply: &plain})
			return true
		}
	}
}
