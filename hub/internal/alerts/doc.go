// Package alerts decides which fleet changes are worth telling people
// about: the alert policy that every front end shares. Fleet events go in
// (a Source such as *fleet.Fleet, and a clock); neutral Alert values come
// out, with plain-text fields and the numbers behind them, for a front end
// to render (hub/internal/slackbot posts them to Slack).
//
// At 10,000 Pis a switch or a broker node going away is thousands of events
// within seconds: they come out as one summary, never thousands of alerts,
// and the counts in it are exact.
//
// Intake. The Source's callback (Policy.Add) takes a mutex and updates the
// pending window; nothing is queued and nothing is dropped, however large
// the flood. The window keeps, per kind of event and Pi, one entry (its
// first and latest event), and the events themselves in order only while a
// kind stays calm (at most maxHeldEvents): its memory grows with the
// number of Pis, never with the number of events.
//
// Bursts. A window opens with the first event and is looked at after
// Config.BurstWindow (5 s). Going offline and coming back count as one
// kind; problem, recovered and address are the others.
//   - A kind with at most Config.Burst (5) Pis in the window is calm: its
//     events go through the per-device rules below, in order (only up to
//     BurstWindow later).
//   - A kind with more Pis is a burst: the window stays open until no event
//     came for BurstWindow (a storm that never pauses is cut every
//     burstSpan windows, 60 s), then each burst is one alert: "312 Pis lost
//     at 14:02" (Pis whose latest event is offline and that were not known
//     offline), "298 Pis back online at 14:05", and those that went and
//     came back within the window; a few ids inline, every id in a File.
//     The per-device state is updated as if each event had been alerted,
//     so a repeat is still muted afterwards.
//
// Per-device rules (calm events):
//   - offline/online: a repeat of the device's last alerted state is muted
//     (the fleet already keeps quiet about a device's first "online"). A
//     device that changes state more than Config.FlapChanges times within
//     Config.FlapWindow gets one Flapping alert and is muted until it has
//     been steady for FlapWindow, when one Settled alert gives its state.
//   - problem/recovered/address: the same device, kind and detail within
//     Config.Repeat is muted.
//
// Start. For Config.QuietStart after Begin nothing is alerted: the hub is
// relearning the fleet from the broker's retained messages, and every
// offline device and every problem would otherwise be announced at each
// restart. Then:
//   - when the fleet holds no Pi that the retained messages claimed online
//     (a fresh hub, an empty broker), one Startup alert lists the devices
//     that are offline or have problems;
//   - otherwise this was a restart with Pis out there: the quiet goes on
//     until every claimed Pi spoke live again or Config.RestartWait (90 s)
//     after the start, and one Restart alert says "9,874 Pis reconnected
//     after the hub restart; 126 still away" (counts from the Rejoiner),
//     with a few of the away ones (all in a File) and what else was learnt.
//     The Pis still away are reported lost there and only there: their
//     loss, when the fleet's silence sweep declares it later, is muted.
//
// Use. Run is the whole policy live: it begins the quiet start, subscribes
// to the Source and hands each alert to emit as it falls due. Begin, Add
// and Sweep are the same policy without its loop, for callers with their
// own clock (time comes in; the fleet only through the Rejoiner), so the
// rules are table-tested.
package alerts
