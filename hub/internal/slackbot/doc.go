// Package slackbot connects the hub to Slack over Socket Mode.
//
// It is an adapter only: every command goes to the shared command engine
// (hub/internal/chat) through the Asker interface, exactly as the HTTP API
// and `pifleet ask` do, and the engine's chat.Reply is rendered as Block Kit.
// Socket Mode needs no public URL, so a hub behind NAT can serve Slack.
//
// What the adapter adds is Slack's etiquette:
//   - every Socket Mode envelope is acknowledged at once (Slack's limit is
//     3 s), then the work is done; Slack's retries are answered once (a
//     bounded LRU of event ids);
//   - several hubs may serve one Slack app, each with its own Socket Mode
//     connection (Slack allows up to 10 per app). Slack gives each
//     envelope to one open connection, so each hub answers what it gets;
//     a retry (no ack seen within 3 s) may reach another hub, so with
//     Config.Claim (the hubs of a cluster share a create-only key per
//     event in JetStream) a mention, DM, slash command (its trigger id)
//     or button click is served by exactly one hub. A failed claim is
//     served anyway: twice is better than never. When a hub dies its
//     connection closes and Slack sends everything to the others; alerts
//     come from the one hub holding the alerts lease (Config.AlertLeader);
//   - answers go into a thread of the asking message; a slash command's
//     answer is a new channel message (see onSlash);
//   - Block Kit limits are respected (≤ 50 blocks, section text < 3000
//     chars); longer answers and chat.Reply.Files go as files in the thread
//     (the external upload flow);
//   - posting is paced per channel (~1 message/s) and honours
//     slack.RateLimitedError.RetryAfter;
//   - an answer slower than ~1 s gets a placeholder that shows the
//     command's progress (each Pi running, done and how long it took,
//     failed: chat.Status), edited no more often than every 2 s; the
//     answer replaces it as soon as it is ready;
//   - proactive alerts go to an opt-in channel, one message per alert that
//     the alert policy (hub/internal/alerts: repeats muted, flapping
//     devices summarised, bursts of many Pis and the hub's start summed up
//     with exact counts) gives; a summary's full list of Pis follows as a
//     file in the message's thread. A Pi's alerts go into one thread per
//     incident, bad news also shown in the channel (threads.go);
//   - a cloud command's result that arrives after the answer (or after a
//     hub restart) is posted in the thread the question was asked in
//     (Bot.PostLate: queued and bounded, never blocking the caller; only
//     while the bot runs);
//   - the engine's chat.Actions are buttons (a Pi's Where and Health in
//     `fleet` and on its alerts, the command a "did you mean" suggests):
//     pressing one asks its command as if the person who pressed it had
//     typed it — the same authorization, audit and dedup — and the answer
//     follows in the message's thread. The engine's marks (chat.Spans)
//     become mrkdwn: ids bold, addresses as code, times as date tokens
//     that Slack shows in the reader's zone and that never go stale;
//   - only configured channels (and the alert channel) and users (or user
//     groups) are served; every command is written to a JSON-lines audit
//     log.
//
// Tokens come from files or the environment, never from flags, and are
// never logged. Without tokens the hub runs as before: see ConfigFromEnv,
// Config.Flags and Serve. The slackbottest package is a fake Slack
// workspace (real HTTP and WebSocket on loopback) for tests.
package slackbot
