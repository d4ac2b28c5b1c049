// Package natstest runs a real, in-process nats-server with JetStream for
// the hub's tests. It is apart from testenv so that the agent's tests
// (also built for ARMv7) do not link nats-server.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server starts a nats-server with JetStream on a free loopback port, its
// store in a test temp dir, until the test ends. It returns the server
// (ClientURL for clients).
func Server(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready within 10 s")
	}
	t.Cleanup(s.Shutdown)
	return s
}
