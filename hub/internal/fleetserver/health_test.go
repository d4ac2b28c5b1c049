package fleetserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// getHealthz returns GET /healthz's status code and body.
func getHealthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthzTellsTheTruth: /healthz is 503 while the hub has never
// reached its broker, and 200 once it has, with the broker, the last
// message's age and the fleet's size in words.
func TestHealthzTellsTheTruth(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close() // nothing listens there

	run := func(t *testing.T, cfg Config) (*Hub, string) {
		t.Helper()
		cfg.HTTPListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		h, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		testenv.WaitTCP(t, cfg.HTTPListen, 10*time.Second, nil)
		return h, cfg.HTTPListen
	}

	t.Run("broker never reached", func(t *testing.T) {
		_, addr := run(t, Config{BrokerURL: "mqtt://" + dead})
		code, body := getHealthz(t, addr)
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ok\n") || !strings.Contains(body, "not reached yet") {
			t.Errorf("GET /healthz = %d %q, want 503 naming the unreached broker", code, body)
		}
	})

	t.Run("embedded broker", func(t *testing.T) {
		h, addr := run(t, Config{MQTTListen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))})
		testenv.Eventually(t, 10*time.Second, func() string {
			if code, body := getHealthz(t, addr); code != http.StatusOK {
				return fmt.Sprintf("GET /healthz = %d %q, want 200 once connected", code, body)
			}
			return ""
		})
		_, body := getHealthz(t, addr)
		for _, want := range []string{"ok\n", "broker: connected to mqtt://", "last message from a Pi: none yet", "devices: 0, 0 online"} {
			if !strings.Contains(body, want) {
				t.Errorf("GET /healthz body %q lacks %q", body, want)
			}
		}
		h.apply(wire.StateTopic("pi1"), mustJSON(t, wire.State{V: 1, State: wire.StateOnline, Epoch: 100}), false)
		if _, body := getHealthz(t, addr); !strings.Contains(body, "last message from a Pi: 0s ago") || !strings.Contains(body, "devices: 1, 1 online") {
			t.Errorf("after a message: body %q", body)
		}
	})
}
