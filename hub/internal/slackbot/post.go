package slackbot

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/pifleet/pifleet/hub/internal/chat"
)

var timeNow = time.Now

// deliverTimeout bounds posting one answer, its edits and files.
const deliverTimeout = time.Minute

// answer runs one command and delivers its reply to a.
//
// A quick answer is posted as it is. A slow one (longer than
// Config.PlaceholderAfter) gets a placeholder first, which shows the
// command's progress, if it reports any, and is then edited into the
// answer; progress edits are no more frequent than Config.UpdateInterval,
// and the answer replaces the placeholder as soon as it is ready.
func (b *Bot) answer(parent context.Context, a ask, command, heading string, run func(context.Context, func(string)) chat.Reply) (chat.Reply, error) {
	ctx, cancel := context.WithTimeout(parent, b.cfg.AskTimeout)
	defer cancel()
	live := &liveMessage{b: b, a: a, command: command, interval: b.cfg.UpdateInterval}
	done := make(chan chat.Reply, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				b.stats.failed.Add(1)
				b.log.Error("slack: the engine panicked", "command", command, "panic", r, "stack", string(debug.Stack()))
				done <- chat.Reply{Text: "Sorry, " + command + " failed inside the hub. That is a bug; the hub's log has the details.", Problem: true}
			}
		}()
		done <- run(ctx, live.progress)
	}()

	timer := time.NewTimer(b.cfg.PlaceholderAfter)
	defer timer.Stop()
	var reply chat.Reply
	select {
	case reply = <-done:
	case <-ctx.Done():
		return b.gaveUp(ctx, a, live, command)
	case <-timer.C:
		live.start(ctx)
		select {
		case reply = <-done:
		case <-ctx.Done():
			return b.gaveUp(ctx, a, live, command)
		}
	}
	live.stop()
	// Delivery gets its own deadline: an answer that came just in time
	// must not miss it, and Slack's rate limits may make us wait.
	ctx, cancelDelivery := context.WithTimeout(parent, deliverTimeout)
	defer cancelDelivery()
	m := render(reply, command)
	if heading != "" {
		m = m.withHeading(heading)
	}
	if ts := live.ts(); ts != "" { // at once: pacing is for progress edits
		if err := b.update(ctx, a.channel, ts, m); err != nil {
			return reply, err
		}
		return reply, b.uploads(ctx, a.channel, threadOf(a.thread, ts), m.Files)
	}
	_, err := b.deliver(ctx, a, m, false)
	return reply, err
}

// gaveUp tells the asker that the command took too long, or that the hub
// is stopping, in place of the answer.
func (b *Bot) gaveUp(ctx context.Context, a ask, live *liveMessage, command string) (chat.Reply, error) {
	live.stop()
	why := fmt.Sprintf(":hourglass: `%s` took longer than %s, so I stopped waiting. Try again later, or ask something smaller.", esc(command), b.cfg.AskTimeout)
	if b.runCtx != nil && b.runCtx.Err() != nil {
		why = ":wave: The hub is shutting down, so I could not finish `" + esc(command) + "`. Please ask again in a minute."
	}
	err := fmt.Errorf("command %q: %w", command, ctx.Err())
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if ts := live.ts(); ts != "" {
		_ = b.update(nctx, a.channel, ts, renderNote(why))
	} else {
		_, _ = b.deliver(nctx, a, renderNote(why), false)
	}
	return chat.Reply{}, err
}

// deliver posts m for a: in a's thread, or as a new message. A slash
// command's answer falls back to its response_url when the bot is not in
// the channel (private to the asker, and without files). Refusals of slash
// commands always go that way. It returns the posted message's ts.
func (b *Bot) deliver(ctx context.Context, a ask, m message, refusal bool) (string, error) {
	if a.via == viaSlash && refusal && a.responseURL != "" {
		return "", b.respond(ctx, a.responseURL, m) // ephemeral by default
	}
	if refusal && a.user != "" {
		// Only the asker sees a refusal: it is about them, not the fleet.
		return "", b.ephemeral(ctx, a.channel, a.user, a.thread, m)
	}
	ts, err := b.post(ctx, a.channel, a.thread, m)
	if err != nil && a.via == viaSlash && a.responseURL != "" && notInChannel(err) {
		if len(m.Files) > 0 {
			m = m.withContext("Invite me to this channel to get the full answer as a file.")
		}
		return "", b.respond(ctx, a.responseURL, m)
	}
	if err != nil {
		return "", err
	}
	return ts, b.uploads(ctx, a.channel, threadOf(a.thread, ts), m.Files)
}

// trustedResponseURL accepts Slack's hooks (https on slack.com or
// slack-gov.com) and, for tests and proxies, the configured API host.
func trustedResponseURL(apiURL, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, d := range []string{"slack.com", "slack-gov.com"} {
		if u.Scheme == "https" && (host == d || strings.HasSuffix(host, "."+d)) {
			return true
		}
	}
	api, err := url.Parse(apiURL)
	return err == nil && api.Host != "" && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}

func notInChannel(err error) bool {
	var se slack.SlackErrorResponse
	return errors.As(err, &se) && (se.Err == "not_in_channel" || se.Err == "channel_not_found")
}

func (b *Bot) respond(ctx context.Context, url string, m message) error {
	if !trustedResponseURL(b.cfg.APIURL, url) {
		return fmt.Errorf("answer through response_url: refusing %q: not a Slack URL", url)
	}
	err := slack.PostWebhookContext(ctx, url, &slack.WebhookMessage{Text: m.Text, Blocks: &slack.Blocks{BlockSet: m.Blocks}, ResponseType: slack.ResponseTypeEphemeral})
	if err != nil {
		return fmt.Errorf("answer through response_url: %w", err)
	}
	return nil
}

// post sends one message, paced per channel; extra options follow m's.
func (b *Bot) post(ctx context.Context, channel, thread string, m message, extra ...slack.MsgOption) (string, error) {
	opts := m.options()
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	opts = append(opts, extra...)
	var ts string
	err := b.call(ctx, channel, true, func() error {
		var err error
		_, ts, err = b.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("chat.postMessage to %s: %w", channel, err)
	}
	return ts, nil
}

// ephemeral posts m so that only user sees it (in thread, when set).
func (b *Bot) ephemeral(ctx context.Context, channel, user, thread string, m message) error {
	opts := m.options()
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	err := b.call(ctx, channel, true, func() error {
		_, err := b.api.PostEphemeralContext(ctx, channel, user, opts...)
		return err
	})
	if err != nil {
		return fmt.Errorf("chat.postEphemeral to %s in %s: %w", user, channel, err)
	}
	return nil
}

// update edits a posted message. Edits are not paced per channel (Slack
// limits chat.update per workspace, not per channel); liveMessage spaces
// the edits of one message.
func (b *Bot) update(ctx context.Context, channel, ts string, m message) error {
	err := b.call(ctx, channel, false, func() error {
		_, _, _, err := b.api.UpdateMessageContext(ctx, channel, ts, m.options()...)
		return err
	})
	if err != nil {
		return fmt.Errorf("chat.update in %s: %w", channel, err)
	}
	return nil
}

// uploads sends files into a thread through the external upload flow
// (files.getUploadURLExternal, the upload URL, files.completeUploadExternal).
func (b *Bot) uploads(ctx context.Context, channel, thread string, files []chat.File) error {
	for _, f := range files {
		content := f.Content
		if content == "" {
			content = "(empty)\n"
		}
		name := f.Name
		if name == "" {
			name = "pifleet.txt"
		}
		err := b.call(ctx, channel, true, func() error {
			_, err := b.api.UploadFileContext(ctx, slack.UploadFileParameters{
				Filename: name, Title: name, FileSize: len(content), Content: content,
				Channel: channel, ThreadTimestamp: thread,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("upload %s to %s: %w", name, channel, err)
		}
	}
	return nil
}

// call runs one Slack request, honouring Slack's rate limits: paced calls
// wait for the channel's turn, and a 429 waits RetryAfter and tries again.
func (b *Bot) call(ctx context.Context, channel string, paced bool, f func() error) error {
	const attempts = 4
	for i := 0; ; i++ {
		if paced {
			if err := b.pace.wait(ctx, channel); err != nil {
				return err
			}
		}
		err := f()
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || i == attempts-1 {
			return err
		}
		b.stats.rateLimited.Add(1)
		wait := max(rl.RetryAfter, 100*time.Millisecond)
		b.log.Warn("slack: rate limited", "channel", channel, "retry_after", wait)
		b.pace.hold(channel, wait)
		if !paced {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pacer spaces posts to each channel by at least interval (Slack allows
// about one message per second per channel). Each caller reserves the next
// free slot, so concurrent answers queue in order instead of bursting.
type pacer struct {
	interval time.Duration
	mu       sync.Mutex
	next     map[string]time.Time
}

func newPacer(interval time.Duration) *pacer {
	return &pacer{interval: interval, next: map[string]time.Time{}}
}

func (p *pacer) wait(ctx context.Context, channel string) error {
	now := timeNow()
	return sleep(ctx, p.reserve(channel, now).Sub(now))
}

// reserve books the channel's next free slot, at least interval after the
// one booked before it, and returns its time.
func (p *pacer) reserve(channel string, now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.next[channel]
	if at.Before(now) {
		at = now
	}
	p.next[channel] = at.Add(p.interval)
	if len(p.next) > 1000 {
		for c, t := range p.next {
			if t.Before(now) {
				delete(p.next, c)
			}
		}
	}
	return at
}

// hold keeps the channel quiet for d (Slack said: retry after d).
func (p *pacer) hold(channel string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := timeNow().Add(d); t.After(p.next[channel]) {
		p.next[channel] = t
	}
}

// liveMessage is the placeholder of a slow answer, edited with progress.
// Progress edits are spaced by interval; the final answer is not: it
// replaces the placeholder at once, after the edit in flight, if any.
type liveMessage struct {
	b        *Bot
	a        ask
	command  string
	interval time.Duration

	mu       sync.Mutex
	msgTS    string
	status   string // the latest progress
	shown    string // the progress on Slack now
	lastEdit time.Time
	timer    *time.Timer   // a paced edit is scheduled
	editing  chan struct{} // closed when the edit in flight is done; nil: none
	stopped  bool
	ctx      context.Context
}

// start posts the placeholder with the latest status.
func (l *liveMessage) start(ctx context.Context) {
	l.mu.Lock()
	status := l.status
	l.ctx = ctx
	l.mu.Unlock()
	ts, err := l.b.post(ctx, l.a.channel, l.a.thread, renderWorking(l.command, status))
	if err != nil {
		l.b.log.Warn("slack: placeholder not posted", "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgTS, l.shown = ts, status
	l.scheduleLocked() // progress that came while posting
}

func (l *liveMessage) ts() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgTS
}

// progress records a status line; it is shown at the next allowed edit.
// It never waits: the dispatcher reports under its own lock.
func (l *liveMessage) progress(status string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.status = status
	l.scheduleLocked()
}

// statusLine adapts progress to the engine's structured status: Slack
// shows it as one line (chat.Status.Line).
func statusLine(progress func(string)) func(chat.Status) {
	return func(s chat.Status) { progress(s.Line()) }
}

// scheduleLocked plans an edit when the placeholder is out of date and
// none is planned or in flight (that one plans the next when it ends).
func (l *liveMessage) scheduleLocked() {
	if l.stopped || l.msgTS == "" || l.timer != nil || l.editing != nil || l.status == l.shown {
		return
	}
	wait := l.lastEdit.Add(l.interval).Sub(timeNow())
	l.timer = time.AfterFunc(max(wait, 0), l.flush)
}

// flush edits the placeholder with the latest status, outside the lock:
// progress and stop never wait for Slack's answer (stop waits for this
// edit only to keep the answer after it).
func (l *liveMessage) flush() {
	l.mu.Lock()
	l.timer = nil
	if l.stopped {
		l.mu.Unlock()
		return
	}
	editing := make(chan struct{})
	l.editing, l.lastEdit = editing, timeNow()
	ctx, ts, status := l.ctx, l.msgTS, l.status
	l.mu.Unlock()
	if err := l.b.update(ctx, l.a.channel, ts, renderWorking(l.command, status)); err != nil {
		l.b.log.Debug("slack: progress edit failed", "err", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.editing, l.shown = nil, status
	close(editing)
	l.scheduleLocked()
}

// stop ends progress edits: a planned one is dropped, one in flight is
// waited for (so that it cannot overwrite the answer). The final edit is
// the caller's, at once.
func (l *liveMessage) stop() {
	l.mu.Lock()
	l.stopped = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	editing := l.editing
	l.mu.Unlock()
	if editing != nil {
		<-editing
	}
}
