package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLog is the handler behind mochi's logger. mochi logs what is
// routine for a hub as warnings and errors, some of them unreadable:
//
//   - each client connection that ends with an error, as a WARN with an
//     empty message: on every Ctrl-C of the hub ("use of closed network
//     connection"), every port probe ("read connection: EOF"), every
//     refused login (which the auth hook logs already, rate limited);
//   - "error processing packet" with the whole packet (pk={Connect:…},
//     a kilobyte per line), when a client's packet cannot be answered,
//     mostly because its connection is closing;
//   - "failed to get data" key=SYS from a storage hook asked for what a
//     fresh store does not hold yet.
//
// Routine ends of connections become DEBUG lines, the others get a
// message, and a packet is shown by its type and topic.
type mochiLog struct{ h slog.Handler }

func newMochiLogger(l *slog.Logger) *slog.Logger { return slog.New(mochiLog{l.Handler()}) }

func (m mochiLog) Enabled(ctx context.Context, l slog.Level) bool { return m.h.Enabled(ctx, l) }

func (m mochiLog) WithAttrs(as []slog.Attr) slog.Handler { return mochiLog{m.h.WithAttrs(as)} }

func (m mochiLog) WithGroup(name string) slog.Handler { return mochiLog{m.h.WithGroup(name)} }

func (m mochiLog) Handle(ctx context.Context, r slog.Record) error {
	var err error
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			err, _ = a.Value.Any().(error)
		}
		return true
	})
	level, msg := r.Level, r.Message
	keepPacket := true
	switch {
	case msg == "" && r.Level == slog.LevelWarn: // a listener: a connection ended with err
		msg = "client connection ended with an error"
		if connectionEnded(err) || refusedLogin(err) {
			level, msg = slog.LevelDebug, "client connection ended"
		}
	case msg == "error processing packet":
		keepPacket = false
		if connectionEnded(err) {
			level = slog.LevelDebug
		}
	case msg == "failed to get data" && err != nil && err.Error() == "key not found":
		level = slog.LevelDebug
	}
	if level == r.Level && msg == r.Message && keepPacket {
		return m.h.Handle(ctx, r)
	}
	if !m.h.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if pk, ok := a.Value.Any().(packets.Packet); ok && a.Key == "pk" {
			out.AddAttrs(slog.String("packet", packetName(pk)))
			if pk.TopicName != "" {
				out.AddAttrs(slog.String("topic", pk.TopicName))
			}
			return true
		}
		out.AddAttrs(a)
		return true
	})
	return m.h.Handle(ctx, out)
}

// connectionEnded says whether err is a connection closing, from either
// end: nothing to warn about.
func connectionEnded(err error) bool {
	var code packets.Code
	if errors.As(err, &code) {
		switch code.Code {
		case packets.ErrServerShuttingDown.Code, packets.ErrSessionTakenOver.Code, packets.CodeDisconnect.Code:
			return true
		}
	}
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, mqtt.ErrConnectionClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// refusedLogin: the auth hook has logged who and why already.
func refusedLogin(err error) bool {
	var code packets.Code
	if !errors.As(err, &code) {
		return false
	}
	return code.Code == packets.ErrBadUsernameOrPassword.Code || code.Code == packets.ErrNotAuthorized.Code
}

func packetName(pk packets.Packet) string {
	if n, ok := packets.PacketNames[pk.FixedHeader.Type]; ok {
		return n
	}
	return "unknown"
}
