package slackbot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/pifleet/pifleet/hub/internal/chat"
)

// Ways a command reaches the bot (the audit log's "via").
const (
	viaMention = "mention"
	viaDM      = "dm"
	viaSlash   = "slash"
	viaButton  = "button"
)

func (b *Bot) register(h *socketmode.SocketmodeHandler) {
	h.HandleEvents(slackevents.AppMention, b.tracked(b.onMention))
	h.HandleEvents(slackevents.Message, b.tracked(b.onMessage))
	h.HandleSlashCommand(b.cfg.SlashCommand, b.tracked(b.onSlash))
	h.HandleInteractionBlockAction(ActionConfirm, b.tracked(b.onButton))
	h.HandleInteractionBlockAction(ActionCancel, b.tracked(b.onButton))
	h.HandleInteractionBlockAction(ActionRun, b.tracked(b.onRun))
	h.Handle(socketmode.EventTypeConnected, func(*socketmode.Event, *socketmode.Client) { b.log.Info("slack: connected") })
	h.Handle(socketmode.EventTypeConnectionError, func(e *socketmode.Event, _ *socketmode.Client) {
		if ce, ok := e.Data.(*slack.ConnectionErrorEvent); ok {
			b.log.Warn("slack: connection failed, retrying", "attempt", ce.Attempt, "backoff", ce.Backoff, "err", ce.ErrorObj)
		}
	})
	h.Handle(socketmode.EventTypeInvalidAuth, func(*socketmode.Event, *socketmode.Client) {
		b.log.Error("slack: the app-level token was rejected")
	})
	h.Handle(socketmode.EventTypeErrorBadMessage, b.onBadMessage)
	h.HandleDefault(b.onOther)
}

// tracked acknowledges the envelope at once, and starts the work once the
// ack is on the wire (see ackWatch), so that no answer can overtake its
// ack. It counts the handler as in flight so that Run waits for it.
func (b *Bot) tracked(f func(ctx context.Context, e *socketmode.Event)) socketmode.SocketmodeHandlerFunc {
	return func(e *socketmode.Event, c *socketmode.Client) {
		if !b.begin() {
			b.ack(c, e, false)
			return
		}
		defer b.inflight.Done()
		defer b.survive(e)
		if env, written := b.ack(c, e, true); written != nil {
			b.acks.wait(b.runCtx, env, written)
		}
		f(b.runCtx, e)
	}
}

// survive keeps a bug in one handler from taking the hub down: the
// handler's goroutine belongs to socketmode, and a panic there would end
// the process.
func (b *Bot) survive(e *socketmode.Event) {
	if r := recover(); r != nil {
		b.stats.failed.Add(1)
		b.log.Error("slack: handler panicked; the envelope is dropped", "type", e.Type, "panic", r, "stack", string(debug.Stack()))
	}
}

// ack queues the envelope's ack; with watch, the channel closes when it
// was written.
func (b *Bot) ack(c *socketmode.Client, e *socketmode.Event, watch bool) (string, <-chan struct{}) {
	if e.Request == nil || e.Request.EnvelopeID == "" {
		return "", nil
	}
	env := e.Request.EnvelopeID
	var written <-chan struct{}
	if watch {
		written = b.acks.expect(env)
	}
	if err := c.Ack(*e.Request); err != nil {
		b.acks.forget(env)
		b.log.Error("slack: ack failed", "envelope", env, "err", err)
		return "", nil
	}
	b.stats.envelopes.Add(1)
	return env, written
}

// onOther acknowledges envelopes nobody handles (other events, other
// buttons) so that Slack does not retry them.
func (b *Bot) onOther(e *socketmode.Event, c *socketmode.Client) {
	b.ack(c, e, false)
	b.log.Debug("slack: ignored", "type", e.Type)
}

// onBadMessage acknowledges an envelope that slack-go could not parse, so
// that Slack does not send it again and again.
func (b *Bot) onBadMessage(e *socketmode.Event, c *socketmode.Client) {
	b.stats.bad.Add(1)
	bad, ok := e.Data.(*socketmode.ErrorBadMessage)
	if !ok {
		return
	}
	var env struct {
		EnvelopeID string `json:"envelope_id"`
	}
	if json.Unmarshal(bad.Message, &env) == nil && env.EnvelopeID != "" {
		b.ack(c, &socketmode.Event{Request: &socketmode.Request{EnvelopeID: env.EnvelopeID}}, false)
	}
	b.log.Warn("slack: unreadable envelope", "err", bad.Cause)
}

// firstTime reports whether the event behind e is new. Slack retries an
// event it thinks was not acknowledged (same event_id), maybe on another
// hub's connection, and a mention in a DM can arrive both as app_mention
// and as message.im (same message ts). The bot's own memory answers first;
// a key new to it is then claimed across the hubs (Config.Claim).
func (b *Bot) firstTime(ctx context.Context, keys ...string) bool {
	first := true
	var fresh []string
	for _, k := range keys {
		if !b.seen.firstTime(k) {
			first = false
		} else if k != "" {
			fresh = append(fresh, k)
		}
	}
	if first && b.cfg.Claim != nil {
		first = b.claim(ctx, fresh)
	}
	if !first {
		b.stats.duplicates.Add(1)
	}
	return first
}

// claimTimeout bounds one shared claim: past it, the bot answers anyway.
const claimTimeout = 5 * time.Second

// claim claims every key across the hubs: false when another hub had
// one of them. A failed claim counts as won (fail open).
func (b *Bot) claim(ctx context.Context, keys []string) bool {
	first := true
	for _, k := range keys {
		cctx, cancel := context.WithTimeout(ctx, claimTimeout)
		won, err := b.cfg.Claim(cctx, k)
		cancel()
		switch {
		case err != nil:
			b.stats.claimFailed.Add(1)
			if ok, muted := b.claimLog.Allow(time.Now()); ok {
				b.log.Warn("slack: could not claim the event across the hubs; answering anyway (another hub may answer too)",
					"key", k, "err", err, "muted_before", muted)
			}
		case !won:
			first = false
		}
	}
	return first
}

func eventID(e *socketmode.Event) string {
	ev, _ := e.Data.(slackevents.EventsAPIEvent)
	if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok && cb.EventID != "" {
		return "event:" + cb.EventID
	}
	return ""
}

func (b *Bot) onMention(ctx context.Context, e *socketmode.Event) {
	ev, _ := e.Data.(slackevents.EventsAPIEvent)
	m, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent)
	if !ok || m.BotID != "" {
		return
	}
	if !b.firstTime(ctx, eventID(e), "msg:"+m.Channel+":"+m.TimeStamp) {
		return
	}
	thread := threadOf(m.ThreadTimeStamp, m.TimeStamp)
	if isDM(m.Channel) {
		thread = m.ThreadTimeStamp // as onMessage: a DM is answered in the DM
	}
	b.serve(ctx, ask{via: viaMention, user: m.User, channel: m.Channel, text: m.Text, thread: thread})
}

// onMessage answers direct messages: there, every message is a command and
// no mention is needed. Messages elsewhere reach the bot only as mentions.
func (b *Bot) onMessage(ctx context.Context, e *socketmode.Event) {
	ev, _ := e.Data.(slackevents.EventsAPIEvent)
	m, ok := ev.InnerEvent.Data.(*slackevents.MessageEvent)
	// Edits, joins and, above all, the bot's own replies are not commands.
	if !ok || m.ChannelType != "im" || m.SubType != "" || m.BotID != "" || m.User == "" || m.User == b.botUser.Load().(string) {
		return
	}
	if !b.firstTime(ctx, eventID(e), "msg:"+m.Channel+":"+m.TimeStamp) {
		return
	}
	// A DM is a conversation: the answer follows in the DM itself, in a
	// thread only when the question was asked in one.
	b.serve(ctx, ask{via: viaDM, user: m.User, channel: m.Channel, text: m.Text, thread: m.ThreadTimeStamp})
}

func threadOf(threadTS, ts string) string {
	if threadTS != "" {
		return threadTS
	}
	return ts
}

// onSlash answers `/pi <command>`. A slash command has no message to thread
// under, so the answer is a new message in the channel (visible to all, like
// a mention's answer), headed by who asked; files follow in its thread.
// Where the bot is not a member it cannot post, and the answer goes back
// through the command's response_url, visible only to the person who asked.
func (b *Bot) onSlash(ctx context.Context, e *socketmode.Event) {
	cmd, ok := e.Data.(slack.SlashCommand)
	if !ok {
		return
	}
	if cmd.TriggerID != "" && !b.firstTime(ctx, "slash:"+cmd.TriggerID) {
		return
	}
	b.serve(ctx, ask{via: viaSlash, user: cmd.UserID, channel: cmd.ChannelID, text: cmd.Text, responseURL: cmd.ResponseURL, slash: cmd.Command})
}

// ask is one command on its way through the bot.
type ask struct {
	via, user, channel, text string
	thread                   string // reply in this thread; "" posts a new message
	responseURL              string // slash commands: fallback when the bot may not post
	slash                    string // the slash command's name
}

func (b *Bot) serve(ctx context.Context, a ask) {
	b.stats.commands.Add(1)
	command := cleanText(a.text, b.botUser.Load().(string))
	if command == "" {
		command = "help"
	}
	entry := AuditEntry{Time: timeNow(), User: a.user, Channel: a.channel, Via: a.via, Command: command}
	refusal, err := b.auth.refusal(ctx, a.user, a.channel)
	if err != nil {
		b.log.Error("slack: authorization lookup failed", "user", a.user, "err", err)
	}
	if refusal != "" {
		b.stats.refused.Add(1)
		entry.Outcome = OutcomeRefused
		if _, err := b.deliver(ctx, a, renderNote(refusal), true); err != nil {
			entry.Detail = err.Error()
		}
		b.audit.write(entry)
		return
	}
	req := chat.Request{Text: command, User: a.user, Channel: a.channel, Source: "slack", Thread: a.thread}
	heading := ""
	switch a.via {
	case viaSlash:
		heading = "<@" + a.user + "> asked `" + esc(a.slash+" "+command) + "`"
	case viaButton:
		heading = "<@" + a.user + "> asked `" + esc(command) + "` with a button"
	}
	reply, err := b.answer(ctx, a, command, heading, func(ctx context.Context, progress func(string)) chat.Reply {
		if pa, ok := b.asker.(ProgressAsker); ok {
			return pa.AskProgress(ctx, req, statusLine(progress))
		}
		return b.asker.Ask(ctx, req)
	})
	entry.Outcome = OutcomeAnswered
	if reply.Problem {
		entry.Outcome = OutcomeProblem
	}
	if err != nil {
		b.stats.failed.Add(1)
		entry.Outcome, entry.Detail = OutcomeFailed, err.Error()
		b.log.Error("slack: answer not delivered", "user", a.user, "channel", a.channel, "command", command, "err", err)
	}
	b.audit.write(entry)
}

// onRun handles a button that runs a command (chat.Action: a Pi's Where
// and Health, a "did you mean"): the command is served exactly as if the
// person who pressed it had typed it (the same authorization, audit and
// answer), in the thread of the message with the button. The message
// keeps its buttons: anyone may press them again later.
func (b *Bot) onRun(ctx context.Context, e *socketmode.Event) {
	cb, ok := e.Data.(slack.InteractionCallback)
	if !ok {
		return
	}
	channel := cb.Container.ChannelID
	if channel == "" {
		channel = cb.Channel.ID
	}
	thread := threadOf(cb.Container.ThreadTs, threadOf(cb.Message.ThreadTimestamp, cb.Container.MessageTs))
	for _, act := range cb.ActionCallback.BlockActions {
		if act.ActionID != ActionRun || act.Value == "" {
			continue
		}
		if !b.firstTime(ctx, "button:"+cb.User.ID+":"+act.ActionTs+":"+act.ActionID) {
			continue
		}
		b.serve(ctx, ask{via: viaButton, user: cb.User.ID, channel: channel, text: act.Value, thread: thread})
	}
}

// onButton handles the confirm and cancel buttons of a pending action.
func (b *Bot) onButton(ctx context.Context, e *socketmode.Event) {
	cb, ok := e.Data.(slack.InteractionCallback)
	if !ok {
		return
	}
	for _, act := range cb.ActionCallback.BlockActions {
		if act.ActionID != ActionConfirm && act.ActionID != ActionCancel {
			continue
		}
		if !b.firstTime(ctx, "button:"+cb.User.ID+":"+act.ActionTs+":"+act.ActionID) {
			continue
		}
		b.button(ctx, cb, act)
	}
}

func (b *Bot) button(ctx context.Context, cb slack.InteractionCallback, act *slack.BlockAction) {
	b.stats.commands.Add(1)
	channel := cb.Container.ChannelID
	if channel == "" {
		channel = cb.Channel.ID
	}
	msgTS := cb.Container.MessageTs
	a := ask{via: viaButton, user: cb.User.ID, channel: channel, thread: threadOf(cb.Container.ThreadTs, threadOf(cb.Message.ThreadTimestamp, msgTS))}
	entry := AuditEntry{Time: timeNow(), User: a.user, Channel: channel, Via: viaButton, Command: act.ActionID + " " + tokenRef(act.Value)}
	refusal, err := b.auth.refusal(ctx, a.user, channel)
	if err != nil {
		b.log.Error("slack: authorization lookup failed", "user", a.user, "err", err)
	}
	if refusal != "" {
		b.stats.refused.Add(1)
		entry.Outcome = OutcomeRefused
		_, _ = b.deliver(ctx, a, renderNote(refusal), true)
		b.audit.write(entry)
		return
	}
	// Take the buttons off the message first, so nobody presses twice.
	verdict := "Confirmed"
	entry.Outcome = OutcomeConfirmed
	if act.ActionID == ActionCancel {
		verdict, entry.Outcome = "Cancelled", OutcomeCancelled
	}
	if msgTS != "" {
		done := decided(cb.Message, verdict+" by <@"+a.user+">")
		if err := b.update(ctx, channel, msgTS, done); err != nil {
			b.log.Warn("slack: could not remove the buttons", "err", err)
		}
	}
	if act.ActionID == ActionCancel {
		b.audit.write(entry)
		return
	}
	reply, err := b.answer(ctx, a, "confirmed action", "", func(ctx context.Context, progress func(string)) chat.Reply {
		ctx = chat.WithProgress(ctx, statusLine(progress)) // a confirmed command reports as an asked one
		return b.asker.Confirm(chat.WithThread(ctx, a.thread), a.user, act.Value)
	})
	if reply.Problem {
		entry.Detail = "problem"
	}
	if err != nil {
		b.stats.failed.Add(1)
		entry.Outcome, entry.Detail = OutcomeFailed, err.Error()
	}
	b.audit.write(entry)
}

// decided is the confirm message with its buttons replaced by who decided.
func decided(m slack.Message, note string) message {
	var blocks []slack.Block
	for _, bl := range m.Blocks.BlockSet {
		if bl.ID() == "pifleet_confirm_actions" {
			continue
		}
		blocks = append(blocks, bl)
	}
	blocks = append(blocks, contextBlock(note))
	return message{Text: m.Text, Blocks: blocks}
}

// tokenRef names a confirm token in the audit log without writing the
// token itself.
func tokenRef(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "token#" + hex.EncodeToString(sum[:4])
}

var (
	userMention = regexp.MustCompile(`^\s*(<@[UW][A-Z0-9]+(\|[^>]*)?>\s*)+`)
	anyMention  = regexp.MustCompile(`<@[UW][A-Z0-9]+(\|[^>]*)?>`)
	slackLink   = regexp.MustCompile(`<([^<>|]*)(\|([^<>]*))?>`)
	unescaper   = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
	// quotes straightens smart quotes, and turns the non-breaking hyphens
	// of id lists (wholeIDs) back into hyphens.
	quotes = strings.NewReplacer("“", `"`, "”", `"`, "‘", "'", "’", "'", "\u2011", "-")
)

// cleanText turns what Slack sent into the command the person typed: the
// leading mention (and any mention of the bot) removed, links and
// channel references back to their text, entities unescaped, smart
// quotes straightened, non-breaking hyphens made hyphens, whitespace
// collapsed.
func cleanText(text, botUser string) string {
	text = userMention.ReplaceAllString(text, "")
	if botUser != "" {
		text = anyMention.ReplaceAllStringFunc(text, func(m string) string {
			if strings.HasPrefix(m, "<@"+botUser+">") || strings.HasPrefix(m, "<@"+botUser+"|") {
				return ""
			}
			return m
		})
	}
	text = slackLink.ReplaceAllStringFunc(text, func(s string) string {
		m := slackLink.FindStringSubmatch(s)
		target, label := m[1], m[3]
		switch {
		case strings.HasPrefix(target, "#"): // <#C123|general>
			if label != "" {
				return "#" + label
			}
			return target
		case strings.HasPrefix(target, "!"): // <!here>
			return ""
		case label != "":
			return label
		}
		return strings.TrimPrefix(target, "mailto:")
	})
	text = unescaper.Replace(text)
	text = quotes.Replace(text)
	return strings.Join(strings.Fields(text), " ")
}
