// Package report decides when the agent publishes its status: report by
// exception, plus a heartbeat, never faster than a configured rate.
//
// It is pure logic: every decision takes the current time as an argument,
// so tests drive it with a fake clock and the daemon with time.Now.
//
//   - Decider compares the last published Status with a fresh one and says
//     publish now (something changed beyond a threshold, or the heartbeat is
//     due), or wait until a given time (a change came during the quiet
//     period after the last publish: it is held and goes out when the period
//     ends, together with anything else that changed meanwhile).
//   - Debouncer turns a burst of address events (DHCP renumbering: delete,
//     add, route, within a few ms) into one snapshot, a short quiet time
//     after the last event, but never later than a cap after the first, so
//     a flapping link still gets reported.
package report
