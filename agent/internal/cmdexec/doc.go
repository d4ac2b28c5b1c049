// Package cmdexec is the agent's daemon.CommandHandler: it turns a raw
// command payload into a container run and its result records.
//
// Every command is decoded, checked against the hub public keys the Pi is
// configured with (ed25519), checked for time (expired, or not yet valid
// beyond the clock-skew tolerance: a Pi without RTC that has not synced
// its clock says so), checked for replay, checked against the policy again
// (the hub checked it too), and only then run by the runner. Output goes
// back as Chunks with gap-free sequence numbers, then one Final (retained
// by the sink until the hub clears it).
//
// Exactly once: the ids of accepted commands are kept in a small bbolt
// file in the agent's data dir, written only when a command arrives (one
// transaction that also prunes ids whose command expired more than Keep
// ago). A redelivered or replayed command whose id is known is never run
// again and never gets a second Final, which would replace the retained
// Final of its first run; this also holds across an agent restart. An id
// is recorded before the run, so a crash mid-run never reruns it (at most
// once, and exactly once when the agent stays up).
//
// A corrupt store (bbolt refuses it, or reading it back at start faults
// or panics: garbage, a truncated file, a bad page) does not keep the
// agent from starting: OpenStore moves it aside to commands.db.corrupt
// and starts a fresh one, and the agent logs a warning. The ids it held
// are lost, so the fresh store keeps a fence: commands created before
// the agent replaced the store (or before the old store's last write
// plus the clock-skew tolerance, if that is later) are refused with a
// rejection that is not retained (it must not replace the retained
// final of a run) and says why; commands created after it run. A
// command that may have run is never run again; the price is that a
// command sent just before the agent came back must be sent again. A
// kill -9 mid-write is not corruption: bbolt commits with fsync and a
// meta page switch, so the store opens as it was before the write.
//
// A command that passes every check is acknowledged before it runs with a
// wire.Notice{Reason: accepted} (QoS 1, not retained): commands reach the
// Pi at QoS 0 and the hub sends one again until it hears of its id.
//
// Such a duplicate is reported to the hub as a wire.Notice{Reason:
// duplicate}, published not retained on the same result topic (it leaves
// the retained Final alone, and the hub never takes it for a result) —
// but only if it verifies (a trusted hub signature, this device): a
// known id with a bad signature is only logged and counted, so nobody
// without a hub key can make the Pi publish a notice. Notices are rate-limited per
// id (Options.NoticeEvery, one a minute; at most Options.NoticeIDs ids
// remembered, beyond which further notices are suppressed), so a replay
// flood cannot make the Pi flood the broker. Stats.Replayed counts every
// duplicate delivery, Stats.Notices and Stats.NoticesLimited the notices.
//
// Rejections of commands that decode and whose id is new (bad signature,
// expired, not for this device, policy) are reported as Final{Outcome:
// rejected, Error: reason}. Those of commands that do not verify (bad
// signature, another device) are published once and not retained (their
// warning and the publishes themselves rate-limited): a hub that is
// waiting still hears why, but an unverified sender cannot leave retained
// records on the broker through the Pi. Payloads that do not decode are
// only logged and counted.
//
// Bounds under a flood (HandleCommand, IntakeOptions): anyone who can
// publish on the command topic can send as fast as the broker forwards,
// so what a payload costs before it verifies is bounded. The MQTT
// client's callback only checks the size (wire.MaxPayload) and that it
// looks like a JSON object, then queues it without blocking in a fixed
// queue (256 payloads, 1 MiB) or drops it, counted in Stats.Dropped. Two
// verifiers decode and verify queued payloads (about 60 µs each on an
// x86 core). Only a command that verifies gets a goroutine of its own
// (at most 8 at once); the rejections of those that do not are published
// at most 20 a minute (Stats.RejectionsLimited counts the rest), and
// every log line a flood can reach is rate-limited. A signed command
// dropped in a full queue is lost like a lost message: the hub sends it
// again until the Pi acknowledges it.
package cmdexec
