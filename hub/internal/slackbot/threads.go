package slackbot

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/pifleet/pifleet/hub/internal/alerts"
	"github.com/pifleet/pifleet/internal/loglimit"
)

// Alert threads: the first alert about a Pi starts a thread in the alert
// channel, and the Pi's next alerts go into it while the incident lasts,
// so that the channel shows one line per incident rather than a wall.
// Bad news in a thread (the Pi offline again, a health problem, flapping)
// is also shown in the channel (reply_broadcast); good news (back online,
// recovered, settled, a new address) stays in the thread. Summaries of
// many Pis and the hub's start stay top-level.
//
// An incident ends, and the Pi's next alert starts a new thread, when
// the thread is ThreadMaxAge old (its start scrolled away), or when the
// Pi's last alert was good news and ThreadQuietAfter has passed since.
//
// Several hubs may post alerts in turn (the alerts lease), and a hub
// restarts: the Pi → thread map is kept in Config.Threads (the hubs'
// JetStream bucket, hub/internal/jobs). The bot also keeps its own copy,
// used when the store fails (an alert is never held up by it).

// Thread rules.
const (
	ThreadMaxAge     = 24 * time.Hour
	ThreadQuietAfter = time.Hour
)

// ThreadStore keeps each Pi's alert thread where every hub (and a
// restarted one) finds it; *jobs.Store implements it. Records are opaque
// to the store; Thread returns nil, nil when there is none.
type ThreadStore interface {
	AlertThread(ctx context.Context, device string) ([]byte, error)
	SetAlertThread(ctx context.Context, device string, rec []byte) error
}

// alertThread is a Pi's alert thread.
type alertThread struct {
	Channel  string    `json:"channel"`
	TS       string    `json:"ts"`        // the thread's first message
	Started  time.Time `json:"started"`   // its first alert
	Last     time.Time `json:"last"`      // the latest alert in it
	LastKind string    `json:"last_kind"` // and its kind
}

var goodNews = map[string]bool{alerts.Online: true, alerts.Recovered: true, alerts.Settled: true, alerts.Address: true}

var broadcastNews = map[string]bool{alerts.Offline: true, alerts.Problem: true, alerts.Flapping: true}

// continues reports whether an alert in channel at time at belongs in th.
func (th alertThread) continues(channel string, at time.Time) bool {
	switch {
	case th.TS == "" || th.Channel != channel:
		return false
	case at.Sub(th.Started) >= ThreadMaxAge:
		return false
	case goodNews[th.LastKind] && at.Sub(th.Last) >= ThreadQuietAfter:
		return false
	}
	return true
}

// threaded reports whether a goes into its Pi's thread: alerts about one
// Pi do, summaries and the hub's start do not.
func threaded(a alerts.Alert) bool { return a.Summary == nil && a.Device != "" }

// threadTimeout bounds one read or write of the thread store.
const threadTimeout = 5 * time.Second

// threads is the bot's side of the Pi → thread map.
type threads struct {
	store ThreadStore // nil: memory only
	warn  loglimit.Limit
	mu    sync.Mutex
	mem   map[string]alertThread
}

// get returns dev's thread from the store, or from memory when the store
// fails (logged by the caller) or is not set.
func (t *threads) get(ctx context.Context, dev string) (alertThread, error) {
	t.mu.Lock()
	th := t.mem[dev]
	t.mu.Unlock()
	if t.store == nil {
		return th, nil
	}
	ctx, cancel := context.WithTimeout(ctx, threadTimeout)
	defer cancel()
	b, err := t.store.AlertThread(ctx, dev)
	if err != nil {
		return th, err
	}
	var stored alertThread
	if b != nil {
		if err := json.Unmarshal(b, &stored); err != nil {
			return th, err
		}
	}
	return stored, nil
}

// put remembers dev's thread in memory and in the store.
func (t *threads) put(ctx context.Context, dev string, th alertThread) error {
	t.mu.Lock()
	if t.mem == nil {
		t.mem = map[string]alertThread{}
	}
	t.mem[dev] = th
	if len(t.mem) > 10000 { // a bound; the store has the rest
		for d, old := range t.mem {
			if th.Last.Sub(old.Last) > ThreadMaxAge {
				delete(t.mem, d)
			}
		}
	}
	t.mu.Unlock()
	if t.store == nil {
		return nil
	}
	b, _ := json.Marshal(th)
	ctx, cancel := context.WithTimeout(ctx, threadTimeout)
	defer cancel()
	return t.store.SetAlertThread(ctx, dev, b)
}

// placeAlert decides where a goes: into its Pi's thread (bad news also
// broadcast to the channel) or top-level. posted takes the posted
// message's ts and remembers the thread. A store that fails is logged
// and the bot's own copy used: the alert goes out regardless.
func (b *Bot) placeAlert(ctx context.Context, a alerts.Alert) (thread string, opts []slack.MsgOption, posted func(ts string)) {
	if !threaded(a) {
		return "", nil, func(string) {}
	}
	at := a.Time
	if at.IsZero() {
		at = timeNow()
	}
	th, err := b.threads.get(ctx, a.Device)
	if err != nil {
		b.threadTrouble("read", a.Device, err)
	}
	if th.continues(b.cfg.AlertChannel, at) {
		thread = th.TS
		if broadcastNews[a.Kind] {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	} else {
		th = alertThread{Channel: b.cfg.AlertChannel, Started: at}
	}
	return thread, opts, func(ts string) {
		if th.TS == "" {
			th.TS = ts
		}
		th.Last, th.LastKind = at, a.Kind
		if err := b.threads.put(ctx, a.Device, th); err != nil {
			b.threadTrouble("write", a.Device, err)
		}
	}
}

// threadTrouble logs a failed read or write of the thread store,
// rate-limited.
func (b *Bot) threadTrouble(op, dev string, err error) {
	if ok, muted := b.threads.warn.Allow(timeNow()); ok {
		b.log.Warn("slack: alert thread store: could not "+op+" the Pi's thread; using this hub's own memory (after a restart or a change of hub, its next alert may start a new thread)",
			"device", dev, "err", err, "muted_before", muted)
	}
}
