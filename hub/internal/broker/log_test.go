package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pifleet/pifleet/internal/testenv"
)

// The lines mochi writes on a normal start and stop, as a hub at the
// info level shows them (issue 15): none, or short and with a message.
func TestMochiLogQuietAndShort(t *testing.T) {
	var out testenv.SyncBuffer
	l := newMochiLogger(slog.New(slog.NewTextHandler(&out, nil)).With("component", "broker")).With("listener", "tcp")
	closed := fmt.Errorf("read tcp 127.0.0.1:1883->127.0.0.1:5: %w", net.ErrClosed)
	l.Warn("", "error", closed)                                                       // Ctrl-C
	l.Warn("", "error", fmt.Errorf("read connection: %w", errors.New("EOF wrapped"))) // not routine: kept
	l.Warn("", "error", packets.ErrBadUsernameOrPassword)                             // the auth hook said it
	l.Error("failed to get data", "error", errors.New("key not found"), "key", "SYS") // a fresh store
	big := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "pifleet/v1/devices/pi1/state",
		Payload: make([]byte, 2000), Connect: packets.ConnectParams{ClientIdentifier: "pi1"}}
	l.Warn("error processing packet", "error", closed, "client", "pi1", "pk", big)
	l.Warn("error processing packet", "error", packets.ErrPacketTooLarge, "client", "pi2", "pk", big)

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (an unusual end of a connection, a packet that failed):\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], `msg="client connection ended with an error"`) {
		t.Errorf("connection error without a message: %s", lines[0])
	}
	if !strings.Contains(lines[1], "packet=Publish topic=pifleet/v1/devices/pi1/state") || strings.Contains(lines[1], "Connect") ||
		!strings.Contains(lines[1], "client=pi2") {
		t.Errorf("packet error: %s", lines[1])
	}
	for _, line := range lines {
		if len(line) > 300 || strings.Contains(line, `msg=""`) {
			t.Errorf("line of %d characters, or without a message: %s", len(line), line)
		}
	}
}

// A broker that a client connects to and that closes with the client
// still connected warns about nothing (the hub shows
// the embedded broker's warnings only: mochi's info lines are its own
// starts and stops).
func TestBrokerStartStopQuiet(t *testing.T) {
	var out testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := Start(Options{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// (A port probe, which mochi also warned about, is in the e2e test
	// TestCtrlCIsCleanAndQuiet: here, mochi v2.7.9's Close races with the
	// finished goroutine of a probe under -race.)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("pi1").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	c.Publish("pifleet/v1/devices/pi1/state", 1, true, "x").WaitTimeout(5 * time.Second)
	time.Sleep(100 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	c.Disconnect(0)
	time.Sleep(100 * time.Millisecond)
	if s := out.String(); s != "" {
		t.Errorf("broker logged on a normal start and stop:\n%s", s)
	}
}
