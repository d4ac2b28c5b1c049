// Package link is the agent's MQTT session: one paho client per connection,
// a session epoch that grows on every connect, a retained "online" birth and
// a retained "lost" will carrying the same epoch, a clean "offline" on
// shutdown, reconnects forever with backoff and jitter, retained status
// publishing and command intake.
//
// Each connection gets a fresh client because the will (which carries the
// epoch) is fixed at CONNECT time; paho's own auto-reconnect would reuse a
// stale will.
package link
