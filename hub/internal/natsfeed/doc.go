// Package natsfeed reads the Pis' retained MQTT state and status from
// nats-server's JetStream, the way the hub used to get them from MQTT: a
// stream of (topic, payload, retained) for fleet.ApplyMessage.
//
// Why not MQTT: nats-server replays retained messages to a SUBSCRIBE from a
// per-node, in-memory map that the node fills asynchronously after its
// first MQTT client connects, so the first subscriber on a node may get
// any part of them, and what it misses is never sent later. The records
// themselves are authoritative in the stream $MQTT_rmsgs: one message per
// topic (subject $MQTT.rmsgs.<topic as subject>, MaxMsgsPer 1), the MQTT
// topic in header Nmqtt-RTopic, an empty body for a deleted one. Every
// retained update, wills included, is written there.
//
// Design:
//   - One ordered consumer (ephemeral, R1, no acks) on $MQTT_rmsgs with
//     DeliverLastPerSubject, filtered to the device state and status
//     subjects: the stream leader delivers the last record of every Pi,
//     then every later one, in stream order, on whichever node the hub is
//     connected to; no per-node map is involved.
//   - Records up to the consumer's first "nothing pending" point are the
//     snapshot and are passed with retained=true (a replayed claim, as
//     from a broker's replay); later ones with retained=false (live).
//     OnSnapshot runs before each snapshot (the hub's Fleet.Resync).
//   - After any break (the NATS connection reconnected, or the ordered
//     consumer re-created itself after a stream leader change or lost
//     heartbeats) the feed starts over with a new snapshot instead of
//     resuming: a delete whose empty record the server already removed
//     would otherwise be missed, and records from the gap would pass as
//     live. Topics that held a value before the break and are absent from
//     the new snapshot are passed as empty payloads (forgotten).
//   - Live is last-value per topic: the stream keeps one record per topic,
//     so a record superseded before the consumer sent it is skipped (a
//     burst of 100 states on one topic arrived as 58..90 in tests), in
//     order and always ending with the newest. Distinct topics all arrive.
//   - A lost consumer node is noticed by two missed 2-s heartbeats (~4 s).
//   - Errors (no stream yet, no JetStream, timeouts) are logged sparingly
//     and retried with a short backoff until the context ends.
//
// Non-retained MQTT traffic (command results) is not read here.
package natsfeed
