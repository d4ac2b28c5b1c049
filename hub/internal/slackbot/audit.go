package slackbot

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Outcomes written to the audit log.
const (
	OutcomeAnswered  = "answered"  // the engine answered
	OutcomeProblem   = "problem"   // the engine answered with a problem (unknown command or id)
	OutcomeRefused   = "refused"   // the person or channel is not allowed
	OutcomeFailed    = "failed"    // the answer could not be delivered
	OutcomeConfirmed = "confirmed" // a confirm button was pressed
	OutcomeCancelled = "cancelled" // a cancel button was pressed
)

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Time    time.Time `json:"time"`
	User    string    `json:"user"`
	Channel string    `json:"channel"`
	Via     string    `json:"via"` // mention, dm, slash, button
	Command string    `json:"command"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
}

// auditLog writes AuditEntry values as JSON lines, one write per line so
// concurrent handlers never interleave.
type auditLog struct {
	mu    sync.Mutex
	w     io.Writer
	close func() error
	log   *slog.Logger
}

const maxAuditCommand = 500

func openAudit(cfg Config, log *slog.Logger) (*auditLog, error) {
	a := &auditLog{w: cfg.AuditLog, close: func() error { return nil }, log: log}
	if a.w == nil && cfg.AuditLogPath != "" {
		f, err := os.OpenFile(cfg.AuditLogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open slack audit log: %w", err)
		}
		a.w, a.close = f, f.Close
	}
	return a, nil
}

func (a *auditLog) write(e AuditEntry) {
	if len(e.Command) > maxAuditCommand {
		e.Command = e.Command[:maxAuditCommand] + "…"
	}
	if a.w == nil {
		a.log.Info("slack command", "user", e.User, "channel", e.Channel, "via", e.Via, "command", e.Command, "outcome", e.Outcome, "detail", e.Detail)
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		a.log.Error("encode audit entry", "err", err)
		return
	}
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.w.Write(b); err != nil {
		a.log.Error("write audit log", "err", err)
	}
}
