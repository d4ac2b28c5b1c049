package slackbot

import (
	"context"
	"regexp"

	"github.com/pifleet/pifleet/hub/internal/chat"
)

// Late is an answer that comes after the bot has answered: a cloud
// command's result that arrived after the dispatcher stopped waiting, or
// after a hub restart. It goes where the question was asked.
type Late struct {
	Channel string // where the question was asked (chat.Request.Channel)
	// Thread is the thread the answer went to (chat.Request.Thread); empty
	// (a slash command) posts a new message in Channel.
	Thread  string
	User    string     // who asked; the message mentions them
	Command string     // what they asked, e.g. "aws pi-07 s3 ls"
	Reply   chat.Reply // the result, rendered by its engine (dispatch.RenderLate)
}

// viaLate marks a late answer on its way out (never a command).
const viaLate = "late"

// lateQueue bounds the late answers waiting to be posted.
const lateQueue = 64

// Late answer states.
const (
	lateBefore = iota // Run has not started: PostLate refuses
	lateOpen          // Run is running: PostLate queues
	lateClosed        // Run returned: PostLate refuses
)

// PostLate queues l for posting in its channel and thread, through the same
// paced, rate-limit-honouring poster as every answer (long output as a file
// in the thread). It never blocks: it returns false, logs and counts
// (Stats.LateDropped) when l is not queued because the bot is not running
// (before Run, or after Run returned), the queue is full, or l has no
// channel. Answers still queued when Run returns are dropped and counted.
func (b *Bot) PostLate(l Late) bool {
	why := ""
	b.mu.Lock()
	switch {
	case l.Channel == "":
		why = "it has no channel"
	case b.lateState == lateBefore:
		why = "the Slack bot has not started"
	case b.lateState == lateClosed:
		why = "the Slack bot has stopped"
	default:
		select {
		case b.late <- l:
		default:
			why = "too many late answers are waiting"
		}
	}
	b.mu.Unlock()
	if why != "" {
		b.dropLate(l, why)
		return false
	}
	return true
}

func (b *Bot) dropLate(l Late, why string) {
	b.stats.lateDropped.Add(1)
	b.log.Warn("slack: late answer not posted: "+why, "channel", l.Channel, "thread", l.Thread, "user", l.User)
}

// openLate lets PostLate queue; Serve calls it before starting Run, so that
// a late answer handed over right after Serve returned is not refused.
func (b *Bot) openLate() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lateState == lateBefore {
		b.lateState = lateOpen
	}
}

// closeLate refuses further late answers and drops those still queued.
// Run calls it last, when nothing posts any more.
func (b *Bot) closeLate() {
	b.mu.Lock()
	b.lateState = lateClosed
	b.mu.Unlock()
	for {
		select {
		case l := <-b.late:
			b.dropLate(l, "the Slack bot stopped before posting it")
		default:
			return
		}
	}
}

// postLates posts queued late answers, one at a time, until ctx ends.
func (b *Bot) postLates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-b.late:
			b.postLate(ctx, l)
		}
	}
}

func (b *Bot) postLate(ctx context.Context, l Late) {
	ctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	a := ask{via: viaLate, user: l.User, channel: l.Channel, thread: l.Thread}
	if _, err := b.deliver(ctx, a, renderLate(l), false); err != nil {
		b.stats.lateFailed.Add(1)
		b.log.Warn("slack: late answer not posted", "channel", l.Channel, "thread", l.Thread, "user", l.User, "err", err)
		return
	}
	b.stats.latePosted.Add(1)
}

// renderLate is the late answer as posted: the engine's reply, and who
// asked what, with a mention so they hear of it (in one context line with
// the reply's own).
func renderLate(l Late) message {
	r := l.Reply
	note := r.Context
	r.Context = ""
	m := render(r, l.Command)
	asked := "Asked"
	switch {
	case userID.MatchString(l.User):
		asked = "<@" + l.User + "> asked"
		m.Text = "<@" + l.User + "> " + m.Text
	case l.User != "":
		asked = esc(l.User) + " asked"
	}
	if l.Command != "" {
		asked += " `" + esc(cut(l.Command, 200)) + "`"
	}
	if note != "" {
		asked += " · " + esc(note)
	}
	return m.withContext(asked)
}

var userID = regexp.MustCompile(`^[UW][A-Z0-9]+$`)
