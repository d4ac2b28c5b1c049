// Package dispatch is the hub side of cloud commands: it checks a chat
// request against the policy, signs a command per target Pi with the
// hub's ed25519 key, publishes it on each Pi's command topic, and
// collects the results that come back on wire.ResultFilter(hub).
//
// Pis read commands at QoS 0, so delivery is the dispatcher's job: it
// sends the same signed command again (Options.Resend: 1 s, 2 s, 4 s, then
// every 8 s) until any record for its id comes back — the Pi's
// acknowledgement (wire.NoticeAccepted), a duplicate notice, a chunk or
// the final — or the command's TTL has passed. Copies are harmless: the
// Pi runs an id once.
//
// Targets are one id, a comma list, a label or "all" (resolved by the
// fleet view). An offline Pi is refused by default rather than queued: a
// queued command would only run if the Pi came back before its expiry
// (TTL, 60 s by default), which is rarely what a person waiting in a chat
// thread expects; Options.AllowOffline sends anyway, and the agent never
// runs a command after its expiry either way.
//
// Mutating verbs need a role (policy Users → Roles) and a confirmation:
// Handle answers with a chat.Confirm token and Confirm(ctx, user, token)
// dispatches it. Tokens are single-use, bound to the person who asked, and
// expire after ConfirmTTL.
//
// Results: chunks are reassembled by sequence number; the Final (retained
// by the broker) ends a Pi's part, and the dispatcher clears it with an
// empty retained message once stored. A hub that restarts mid-command
// gets the retained Final again when it resubscribes; commands in flight
// are remembered in a small state file (Options.StateFile) so such a late
// result still reaches OnLateResult with the original request. The file
// is replaced atomically and durably (temp file, fsync, rename, fsync of
// the dir): a crash or power cut leaves the old state or the new one. A
// file that does not parse is moved aside (.corrupt) with a warning and
// the hub starts without it; a failed save (a full disk) is a warning and
// leaves the last state whole. Losing the file costs only who asked: the
// hub never sends a command again from it, and the Pis' id stores keep a
// command from running twice.
//
// A wire.Notice (reason duplicate: the Pi got a command id it had already
// handled, and did not run it again) is only logged and counted in Stats:
// at debug level for a command in flight (a re-sent copy crossed the
// acknowledgement; the wait goes on for the real Final), as a warning for
// one that is not (someone
// replayed an old command). It never ends a Pi's part and clears nothing.
package dispatch
