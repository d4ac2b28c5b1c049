package daemon

import (
	"context"

	"github.com/pifleet/pifleet/agent/internal/cmdexec"
	"github.com/pifleet/pifleet/internal/wire"
)

// AddrSource tells the agent the device's interfaces and addresses and when
// they change. agent/internal/netwatch implements it (netlink, with a
// polling fallback).
type AddrSource interface {
	// Snapshot returns the current interfaces and addresses.
	Snapshot() ([]wire.Interface, []wire.Address, error)
	// Watch blocks until ctx ends, calling notify (possibly in bursts) when
	// something may have changed. The caller debounces and re-snapshots.
	Watch(ctx context.Context, notify func()) error
}

// HealthSource collects the health block. agent/internal/health implements
// it as a registry of independent probes. Collect never fails as a whole:
// a failed or absent probe is recorded in Health.Probes.
type HealthSource interface {
	Collect(ctx context.Context) wire.Health
}

// CommandHandler runs commands that arrive on the device's command topic.
// payload is the raw MQTT payload (untrusted: the handler decodes, verifies
// the signature, checks expiry, replay and policy). The handler publishes
// every result record through out and must not block the MQTT client's
// callback for long: it should start its own goroutine.
type CommandHandler interface {
	HandleCommand(ctx context.Context, payload []byte, out cmdexec.ResultSink)
}

var _ CommandHandler = (*cmdexec.Handler)(nil)
