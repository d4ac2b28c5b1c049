package slackbot

import (
	"context"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"github.com/pifleet/pifleet/hub/internal/alerts"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// Alerts as Slack messages. Which fleet changes become alerts is decided
// by hub/internal/alerts (the policy every front end shares); the adapter
// renders each alerts.Alert as Block Kit, posts it to Config.AlertChannel
// (paced like every post) and attaches a summary's full list in the
// message's thread.

// AlertSource delivers fleet events for proactive alerts; *fleet.Fleet
// implements it. See alerts.Source.
type AlertSource = alerts.Source

// Rejoiner is optionally implemented by an AlertSource that knows which
// Pis a restarted hub is waiting for; *fleet.Fleet implements it. See
// alerts.Rejoiner.
type Rejoiner = alerts.Rejoiner

// Alert is one fleet event (alerts.Event, the fleet's own type).
type Alert = alerts.Event

// Alert kinds the fleet sends.
const (
	AlertOffline   = alerts.Offline
	AlertOnline    = alerts.Online
	AlertProblem   = alerts.Problem
	AlertRecovered = alerts.Recovered
	AlertAddress   = alerts.Address
)

// newPolicy makes the alert policy from the Alert* settings (their
// defaults are the policy's own).
func newPolicy(c Config) *alerts.Policy {
	return alerts.New(alerts.Config{
		FlapWindow: c.FlapWindow, FlapChanges: c.FlapChanges, Repeat: c.AlertRepeat,
		QuietStart: c.AlertQuietStart, RestartWait: c.AlertRestartWait,
		Burst: c.AlertBurst, BurstWindow: c.AlertBurstWindow,
		Now: c.clock, Tick: c.alertTick,
	})
}

// postAlert posts one alert, then its file in the thread; it is the
// policy's emit.
func (b *Bot) postAlert(ctx context.Context, a alerts.Alert) {
	if b.cfg.AlertLeader != nil && !b.cfg.AlertLeader() {
		b.stats.alertsStandby.Add(1) // another hub posts it
		return
	}
	m := renderAlert(a)
	thread, opts, posted := b.placeAlert(ctx, a) // the Pi's thread, if it has one (threads.go)
	ts, err := b.post(ctx, b.cfg.AlertChannel, thread, m, opts...)
	if err != nil {
		if ctx.Err() == nil {
			b.stats.alertsDropped.Add(1)
		}
		b.log.Warn("slack: alert not posted", "device", a.Device, "kind", a.Kind, "err", err)
		return
	}
	b.stats.alertsPosted.Add(1)
	posted(ts)
	if err := b.uploads(ctx, b.cfg.AlertChannel, threadOf(thread, ts), m.Files); err != nil {
		b.log.Warn("slack: the alert's list of Pis was not attached", "kind", a.Kind, "err", err)
	}
}

var alertLook = map[string]struct{ emoji, verb string }{
	alerts.Offline:   {":red_circle:", "went offline"},
	alerts.Online:    {":large_green_circle:", "is back online"},
	alerts.Problem:   {":warning:", "has a health problem"},
	alerts.Recovered: {":white_check_mark:", "recovered"},
	alerts.Address:   {":arrows_counterclockwise:", "changed address"},
	alerts.Flapping:  {":repeat:", "is flapping"},
	alerts.Settled:   {":ballot_box_with_check:", "settled"},
	alerts.Startup:   {":information_source:", "Hub started"},
}

var summaryEmoji = map[string]string{
	alerts.BurstLost:      ":red_circle:",
	alerts.BurstBack:      ":large_green_circle:",
	alerts.BurstBlip:      ":left_right_arrow:",
	alerts.BurstRelapse:   ":left_right_arrow:",
	alerts.BurstProblem:   ":warning:",
	alerts.BurstRecovered: ":white_check_mark:",
	alerts.BurstAddress:   ":arrows_counterclockwise:",
	alerts.BurstOther:     ":warning:",
	alerts.Restart:        ":information_source:",
}

// renderAlert is one alert as a message: a line about the device, or a
// summary of many Pis.
func renderAlert(a alerts.Alert) message {
	if a.Summary != nil {
		return renderSummary(a)
	}
	look, ok := alertLook[a.Kind]
	if !ok {
		look = alertLook[alerts.Problem]
		look.verb = esc(a.Kind)
	}
	detail := alertDetail(a)
	if a.Kind == alerts.Offline {
		look.verb, detail = offlineVerb(a.Detail), ""
	}
	line := fmt.Sprintf("%s *%s* %s", look.emoji, esc(a.Device), look.verb)
	text := fmt.Sprintf("%s %s", a.Device, look.verb)
	if a.Device == "" {
		line, text = fmt.Sprintf("%s *%s*", look.emoji, look.verb), look.verb
	}
	if detail != "" {
		if a.Kind == alerts.Startup {
			line += ": " + wholeIDs(esc(detail)) // lists of ids
		} else {
			line += ": " + esc(detail)
		}
		text += ": " + detail
	}
	when := a.Time
	if when.IsZero() {
		when = time.Now()
	}
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn(cut(line, maxSectionText)), nil, nil)}
	if a.Device != "" {
		// The same buttons as the Pi's line in `fleet`.
		blocks = append(blocks, actionBlock(chat.DeviceActions(a.Device)))
	}
	return message{
		Text:   esc(cut(text, maxFallbackText)),
		Blocks: append(blocks, contextBlock(timeToken(when, true)+" · pifleet alert")),
	}
}

// maxSummaryLine bounds one line of a summary (a list of 20 ids with
// their problems), so a summary stays a few blocks well under Slack's
// limits (50 blocks, 12,000 characters).
const maxSummaryLine = 2000

// renderSummary: the headline (with the time in the reader's zone), the
// lines, and the file named in the context line, to be posted in the
// thread.
func renderSummary(a alerts.Alert) message {
	s := a.Summary
	line := summaryEmoji[a.Kind] + " *" + esc(s.Head) + "*"
	text := s.Head
	if s.Timed {
		hm := a.Time.UTC().Format("15:04") + " UTC"
		line += " at " + dateToken(a.Time, "{time}", hm)
		text += " at " + hm
	}
	for _, l := range s.Lines {
		line += "\n" + wholeIDs(esc(cut(l, maxSummaryLine)))
		text += "\n" + l
	}
	var blocks []slack.Block
	for _, chunk := range splitLines(line, maxSectionText) {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(chunk), nil, nil))
	}
	ctx := timeToken(a.Time, true) + " · pifleet alert"
	m := message{Text: esc(cut(text, maxFallbackText))}
	if s.File != nil {
		ctx += " · every Pi in `" + s.File.Name + "` below"
		m.Files = []chat.File{{Name: s.File.Name, Content: s.File.Content}}
	}
	m.Blocks = append(blocks, contextBlock(ctx))
	return m
}

// offlineVerb says how a Pi went offline in words: its will (the broker
// lost it) or its own goodbye (a clean shutdown).
func offlineVerb(state string) string {
	switch state {
	case string(wire.StateLost):
		return "lost its connection"
	case string(wire.StateOffline):
		return "shut down cleanly"
	}
	return "went offline"
}

// alertDetail is an alert's detail for a person: problem codes in words;
// no lifecycle words that repeat the verb ("is back online: online"),
// and no session epochs.
func alertDetail(a alerts.Alert) string {
	switch a.Kind {
	case alerts.Online:
		return ""
	case alerts.Problem, alerts.Recovered:
		return fleet.ProblemsInWords(a.Detail)
	}
	return a.Detail
}
