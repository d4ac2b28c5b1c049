package natsengine

import (
	"fmt"
	"log/slog"
)

// slogger feeds nats-server's log lines to a *slog.Logger.
type slogger struct{ l *slog.Logger }

func (s slogger) Noticef(f string, v ...any) { s.l.Info(fmt.Sprintf(f, v...)) }
func (s slogger) Warnf(f string, v ...any)   { s.l.Warn(fmt.Sprintf(f, v...)) }
func (s slogger) Errorf(f string, v ...any)  { s.l.Error(fmt.Sprintf(f, v...)) }
func (s slogger) Debugf(f string, v ...any)  { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s slogger) Tracef(f string, v ...any)  { s.l.Debug(fmt.Sprintf(f, v...)) }

// Fatalf logs at error level: the server's own fatal path exits the
// process, which an embedded server must not do.
func (s slogger) Fatalf(f string, v ...any) { s.l.Error(fmt.Sprintf(f, v...), "fatal", true) }
