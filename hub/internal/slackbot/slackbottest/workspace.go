// Package slackbottest is a fake Slack workspace for tests of the Slack
// adapter (and of a hub that runs it): slack-go's slacktest server, real
// HTTP and WebSocket on loopback, plus what slacktest lacks — Socket Mode
// envelopes on /ws (hello, events_api, slash_commands, interactive) with
// acks read back, chat.update, the external file upload flow
// (files.getUploadURLExternal, the upload URL, files.completeUploadExternal),
// usergroups.users.list and response_url. Every call is recorded in order,
// so tests can assert what happened first.
//
// Like Slack, the workspace takes several Socket Mode connections of one
// app at once (up to MaxConnections: several hubs may each hold one) and
// hands each envelope to one of the open connections (round robin). An
// envelope not acknowledged within the ack timeout (Slack's 3 s; see
// SetAckTimeout) is sent again as a new envelope with retry_attempt + 1
// and retry_reason "timeout", to the next open connection, up to
// MaxRetries times. A closed connection receives nothing more. (Slack
// retries only events_api envelopes; the workspace retries every kind, so
// that a bot's guard against running a slash command or a button twice is
// tested too.)
package slackbottest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack/slacktest"
)

// Tokens the workspace accepts; anything else gets invalid_auth.
const (
	AppToken = "xapp-1-A0TEST-1-fakeapptoken"
	BotToken = "xoxb-1-fakebottoken"
	BotUser  = "UBOT"
	TeamID   = "T0TEST"
)

// Record kinds.
const (
	KindAck       = "ack"       // the bot acknowledged an envelope
	KindLostAck   = "lost_ack"  // an ack the workspace dropped (LoseAcks)
	KindPost      = "post"      // chat.postMessage
	KindEphemeral = "ephemeral" // chat.postEphemeral: seen by User alone
	KindUpdate    = "update"    // chat.update
	KindUpload    = "upload"    // a file's bytes at the upload URL
	KindComplete  = "complete"  // files.completeUploadExternal
	KindResponse  = "response"  // a post to a response_url
)

// Record is one thing the bot did, in the order the workspace saw it.
type Record struct {
	Seq      int
	At       time.Time // when the workspace saw it
	Kind     string
	Envelope string // ack
	Conn     int    // ack: the Socket Mode connection it came on (1, 2, …)
	Channel  string
	User     string // ephemeral: the only one who sees it
	TS       string // post: the new message's ts; update: the edited one
	ThreadTS string
	Text     string
	Blocks   json.RawMessage
	FileID   string
	FileName string
	Content  string // upload
	// Broadcast: a post in a thread also shown in the channel
	// (reply_broadcast).
	Broadcast bool
}

// Workspace is a running fake workspace.
type Workspace struct {
	t   testing.TB
	srv *slacktest.Server

	mu           sync.Mutex
	seq          int
	records      []Record
	nextTS       int
	nextFile     int
	files        map[string]string // file id → name
	groups       map[string][]string
	rateLimit    int
	retryAfter   int
	notInChannel map[string]bool
	connected    chan struct{} // closed at the first connection
	connections  int           // connections ever opened; the last one's id
	open         []*socket     // open connections, oldest first
	rr           int           // round robin over open
	nextEnv      int
	pending      map[string]*pending // envelopes sent and not acked yet
	deliveries   []Delivery
	ackTimeout   time.Duration
	maxRetries   int
	loseAcks     int
	stop         chan struct{}
}

// Slack's Socket Mode limits.
const (
	// MaxConnections is how many Socket Mode connections one app may hold
	// open at once; apps.connections.open refuses more.
	MaxConnections = 10
	// AckTimeout is how long Slack waits for an envelope's ack before it
	// sends it again.
	AckTimeout = 3 * time.Second
	// MaxRetries is how often Slack sends an unacknowledged event again.
	MaxRetries = 3
)

// socket is one open Socket Mode connection.
type socket struct {
	id  int
	ws  *websocket.Conn
	wmu sync.Mutex // serialises writes
}

// pending is an envelope waiting for its ack.
type pending struct {
	env      map[string]any
	attempt  int
	deadline time.Time
	lose     bool // drop its ack (LoseAcks)
}

// Delivery is one envelope written to one connection.
type Delivery struct {
	At       time.Time
	Envelope string
	Type     string // events_api, slash_commands, interactive, …
	Conn     int    // the connection (1, 2, … in the order they opened)
	Attempt  int    // retry_attempt: 0 the first time
}

// New starts a workspace; it stops when the test ends.
func New(t testing.TB) *Workspace {
	t.Helper()
	w := &Workspace{t: t, files: map[string]string{}, groups: map[string][]string{}, notInChannel: map[string]bool{},
		connected: make(chan struct{}), pending: map[string]*pending{}, ackTimeout: AckTimeout, maxRetries: MaxRetries,
		stop: make(chan struct{})}
	w.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/ws", w.socket)
		c.Handle("/apps.connections.open", w.connectionsOpen)
		c.Handle("/auth.test", w.form(w.authTest))
		c.Handle("/chat.postMessage", w.form(w.postMessage))
		c.Handle("/chat.update", w.form(w.update))
		c.Handle("/chat.postEphemeral", w.form(w.postEphemeral))
		c.Handle("/files.getUploadURLExternal", w.form(w.uploadURL))
		c.Handle("/upload/", w.upload)
		c.Handle("/files.completeUploadExternal", w.form(w.complete))
		c.Handle("/usergroups.users.list", w.form(w.groupMembers))
		c.Handle("/response/", w.response)
	})
	w.srv.Start()
	resent := make(chan struct{})
	go func() { defer close(resent); w.resend() }()
	t.Cleanup(func() {
		close(w.stop)
		<-resent
		w.mu.Lock()
		open := w.open
		w.mu.Unlock()
		for _, c := range open {
			_ = c.ws.Close()
		}
		w.srv.Stop()
	})
	return w
}

// SetAckTimeout sets how long the workspace waits for an envelope's ack
// before it sends the envelope again (default AckTimeout, Slack's 3 s),
// and how often at most (default MaxRetries). It affects envelopes sent
// afterwards.
func (w *Workspace) SetAckTimeout(d time.Duration, retries int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ackTimeout, w.maxRetries = d, retries
}

// LoseAcks makes the workspace drop the ack of each of the next n
// envelopes it sends (recorded as KindLostAck), as if it never arrived:
// they are sent again after the ack timeout.
func (w *Workspace) LoseAcks(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.loseAcks = n
}

// Connections is how many Socket Mode connections are open now.
func (w *Workspace) Connections() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.open)
}

// WaitConnections waits until exactly n Socket Mode connections are open.
func (w *Workspace) WaitConnections(n int, within time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := w.Connections()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d Socket Mode connections open after %v, want %d", got, within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Deliveries returns every envelope written so far, in order, with the
// connection it went to.
func (w *Workspace) Deliveries() []Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Delivery(nil), w.deliveries...)
}

// Pending is how many envelopes wait for their ack (a retry included).
func (w *Workspace) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// APIURL is the base URL to give the adapter (Config.APIURL).
func (w *Workspace) APIURL() string { return w.srv.GetAPIURL() }

// SetUserGroup makes members the members of user group id.
func (w *Workspace) SetUserGroup(id string, members ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.groups[id] = members
}

// RateLimit makes the next n chat.postMessage calls fail with HTTP 429
// and Retry-After: retryAfter seconds.
func (w *Workspace) RateLimit(n, retryAfter int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rateLimit, w.retryAfter = n, retryAfter
}

// NotInChannel makes posts to channel fail with not_in_channel.
func (w *Workspace) NotInChannel(channel string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notInChannel[channel] = true
}

// Records returns everything recorded so far, in order.
func (w *Workspace) Records() []Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Record(nil), w.records...)
}

// Find returns the records of the given kind that match (nil matches all).
func (w *Workspace) Find(kind string, match func(Record) bool) []Record {
	var out []Record
	for _, r := range w.Records() {
		if r.Kind == kind && (match == nil || match(r)) {
			out = append(out, r)
		}
	}
	return out
}

func (w *Workspace) record(r Record) Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	r.Seq, r.At = w.seq, time.Now()
	w.records = append(w.records, r)
	return r
}

// WaitConnected waits until a bot opened its first Socket Mode connection.
func (w *Workspace) WaitConnected(within time.Duration) {
	w.t.Helper()
	select {
	case <-w.connected:
	case <-time.After(within):
		w.t.Fatalf("the bot did not open a Socket Mode connection within %v", within)
	}
}

// Send writes one Socket Mode envelope to one of the open connections
// (round robin; it waits up to 10 s for one) and returns its envelope id
// (set if empty). Unless acknowledged in time, it is sent again (see
// SetAckTimeout).
func (w *Workspace) Send(env map[string]any) string {
	w.t.Helper()
	w.WaitConnected(10 * time.Second)
	w.mu.Lock()
	if env["envelope_id"] == nil {
		w.nextEnv++
		env["envelope_id"] = fmt.Sprintf("env-%d", w.nextEnv)
	}
	id := env["envelope_id"].(string)
	attempt, _ := env["retry_attempt"].(int)
	w.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for !w.deliver(env, attempt, true) {
		if time.Now().After(deadline) {
			w.t.Fatalf("send envelope %s: no Socket Mode connection open for 10s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return id
}

// deliver writes env to the next open connection that takes it and marks
// it pending; false when no connection is open. Only a new envelope (not
// the workspace's own retry) may have its ack lost (LoseAcks).
func (w *Workspace) deliver(env map[string]any, attempt int, fresh bool) bool {
	id := env["envelope_id"].(string)
	b, err := json.Marshal(env)
	if err != nil {
		w.t.Errorf("fake slack: envelope %s: %v", id, err)
		return true
	}
	for {
		w.mu.Lock()
		if len(w.open) == 0 {
			w.mu.Unlock()
			return false
		}
		c := w.open[w.rr%len(w.open)]
		w.rr++
		// Pending before the write: the ack can come back at once.
		p := &pending{env: env, attempt: attempt, deadline: time.Now().Add(w.ackTimeout)}
		if fresh && w.loseAcks > 0 {
			w.loseAcks--
			p.lose = true
		}
		w.pending[id] = p
		w.mu.Unlock()
		at := time.Now()
		c.wmu.Lock()
		err := c.ws.WriteMessage(websocket.TextMessage, b)
		c.wmu.Unlock()
		if err == nil {
			typ, _ := env["type"].(string)
			w.mu.Lock()
			w.deliveries = append(w.deliveries, Delivery{At: at, Envelope: id, Type: typ, Conn: c.id, Attempt: attempt})
			w.mu.Unlock()
			return true
		}
		// That connection is gone: forget it and try the next.
		w.mu.Lock()
		if p.lose {
			w.loseAcks++
		}
		delete(w.pending, id)
		w.mu.Unlock()
		w.closed(c)
	}
}

// resend sends unacknowledged envelopes again, as Slack does: a new
// envelope id, retry_attempt + 1, retry_reason "timeout", to the next open
// connection.
func (w *Workspace) resend() {
	for {
		w.mu.Lock()
		tick := max(w.ackTimeout/10, 10*time.Millisecond)
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-time.After(tick):
		}
		now := time.Now()
		var due []map[string]any
		var attempts []int
		w.mu.Lock()
		for id, p := range w.pending {
			if now.Before(p.deadline) {
				continue
			}
			delete(w.pending, id)
			if p.attempt >= w.maxRetries {
				continue // Slack gives up
			}
			next := make(map[string]any, len(p.env))
			for k, v := range p.env {
				next[k] = v
			}
			base, _, _ := strings.Cut(id, "~")
			next["envelope_id"] = fmt.Sprintf("%s~retry%d", base, p.attempt+1)
			next["retry_attempt"] = p.attempt + 1
			next["retry_reason"] = "timeout"
			due = append(due, next)
			attempts = append(attempts, p.attempt+1)
		}
		w.mu.Unlock()
		for i, env := range due {
			if !w.deliver(env, attempts[i], false) {
				// No connection: try again at the next tick.
				w.mu.Lock()
				w.pending[env["envelope_id"].(string)] = &pending{env: env, attempt: attempts[i], deadline: now}
				w.mu.Unlock()
			}
		}
	}
}

// closed forgets connection c: it receives nothing more.
func (w *Workspace) closed(c *socket) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, o := range w.open {
		if o == c {
			w.open = append(w.open[:i:i], w.open[i+1:]...)
			return
		}
	}
}

// Event sends an events_api envelope carrying event. retry > 0 marks a
// retry of the same event id, as Slack sends when it saw no ack.
func (w *Workspace) Event(eventID string, retry int, event map[string]any) string {
	env := map[string]any{
		"type":                     "events_api",
		"accepts_response_payload": false,
		"retry_attempt":            retry,
		"payload": map[string]any{
			"token": "verification-token", "team_id": TeamID, "api_app_id": "A0TEST",
			"type": "event_callback", "event_id": eventID, "event_time": time.Now().Unix(),
			"event": event,
		},
	}
	if retry > 0 {
		env["retry_reason"] = "timeout"
	}
	return w.Send(env)
}

// Mention sends an app_mention of the bot by user in channel, as a new
// message with timestamp ts, and returns the envelope id.
func (w *Workspace) Mention(eventID, user, channel, ts, text string) string {
	return w.Event(eventID, 0, MentionEvent(user, channel, ts, text))
}

// MentionEvent is the inner app_mention event.
func MentionEvent(user, channel, ts, text string) map[string]any {
	return map[string]any{"type": "app_mention", "user": user, "channel": channel, "ts": ts, "event_ts": ts,
		"text": "<@" + BotUser + "> " + text}
}

// DirectMessage sends a message.im event.
func (w *Workspace) DirectMessage(eventID, user, channel, ts, text string) string {
	return w.Event(eventID, 0, map[string]any{"type": "message", "channel_type": "im", "user": user,
		"channel": channel, "ts": ts, "event_ts": ts, "text": text})
}

// Slash sends `/pi text` typed by user in channel; its response_url points
// at this workspace.
func (w *Workspace) Slash(user, channel, text string) string {
	w.mu.Lock()
	w.nextEnv++
	n := w.nextEnv
	w.mu.Unlock()
	return w.Send(map[string]any{
		"type": "slash_commands", "envelope_id": fmt.Sprintf("env-%d", n), "accepts_response_payload": true,
		"payload": map[string]any{
			"token": "verification-token", "team_id": TeamID, "channel_id": channel, "channel_name": "fleet",
			"user_id": user, "user_name": "someone", "command": "/pi", "text": text,
			"response_url": w.APIURL() + "response/" + strconv.Itoa(n), "trigger_id": fmt.Sprintf("trigger-%d", n),
			"api_app_id": "A0TEST",
		},
	})
}

// Click presses the button actionID (with value) on the message msg,
// as user.
func (w *Workspace) Click(user string, msg Record, actionID, value string) string {
	thread := msg.ThreadTS
	return w.Send(map[string]any{
		"type": "interactive", "accepts_response_payload": false,
		"payload": map[string]any{
			"type": "block_actions", "api_app_id": "A0TEST", "trigger_id": "trigger-click",
			"team":      map[string]any{"id": TeamID},
			"user":      map[string]any{"id": user},
			"channel":   map[string]any{"id": msg.Channel},
			"container": map[string]any{"type": "message", "message_ts": msg.TS, "channel_id": msg.Channel, "thread_ts": thread},
			"message":   map[string]any{"type": "message", "ts": msg.TS, "thread_ts": thread, "text": msg.Text, "blocks": msg.Blocks},
			"actions": []map[string]any{{"type": "button", "action_id": actionID, "block_id": "pifleet_confirm_actions",
				"value": value, "action_ts": strconv.FormatInt(time.Now().UnixNano(), 10)}},
			"response_url": w.APIURL() + "response/click",
		},
	})
}

// Acked reports whether the bot acknowledged envelope.
func (w *Workspace) Acked(envelope string) (Record, bool) {
	for _, r := range w.Find(KindAck, func(r Record) bool { return r.Envelope == envelope }) {
		return r, true
	}
	return Record{}, false
}

func (w *Workspace) socket(rw http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(rw, r, nil)
	if err != nil {
		w.t.Errorf("fake slack: websocket upgrade: %v", err)
		return
	}
	defer conn.Close()
	w.mu.Lock()
	w.connections++
	c := &socket{id: w.connections, ws: conn}
	num := len(w.open) + 1
	w.mu.Unlock()
	c.wmu.Lock()
	err = conn.WriteJSON(map[string]any{"type": "hello", "num_connections": num,
		"debug_info": map[string]any{"host": "fake-slack"}, "connection_info": map[string]any{"app_id": "A0TEST"}})
	c.wmu.Unlock()
	if err != nil {
		return
	}
	w.mu.Lock()
	w.open = append(w.open, c)
	if c.id == 1 {
		close(w.connected)
	}
	w.mu.Unlock()
	defer w.closed(c)
	// Slack pings every few seconds; the client reconnects when it hears none.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)) != nil {
					return
				}
			}
		}
	}()
	for {
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := conn.ReadJSON(&ack); err != nil {
			return
		}
		w.mu.Lock()
		p := w.pending[ack.EnvelopeID]
		lost := p != nil && p.lose
		if lost {
			p.lose = false // only the first: a late second ack counts
		} else {
			delete(w.pending, ack.EnvelopeID)
		}
		w.mu.Unlock()
		kind := KindAck
		if lost {
			kind = KindLostAck
		}
		w.record(Record{Kind: kind, Envelope: ack.EnvelopeID, Conn: c.id, Blocks: ack.Payload})
	}
}

func reply(rw http.ResponseWriter, v any) {
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(v)
}

func fail(rw http.ResponseWriter, code string) { reply(rw, map[string]any{"ok": false, "error": code}) }

// connectionsOpen checks the app-level token (sent as a bearer token).
func (w *Workspace) connectionsOpen(rw http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+AppToken {
		fail(rw, "invalid_auth")
		return
	}
	if w.Connections() >= MaxConnections {
		fail(rw, "too_many_websockets")
		return
	}
	reply(rw, map[string]any{"ok": true, "url": strings.Replace(w.APIURL(), "http://", "ws://", 1) + "ws"})
}

// form parses a Web API call and checks the bot token.
func (w *Workspace) form(h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		tok := r.Form.Get("token")
		if tok == "" {
			tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if tok != BotToken {
			fail(rw, "invalid_auth")
			return
		}
		h(rw, r)
	}
}

func (w *Workspace) authTest(rw http.ResponseWriter, _ *http.Request) {
	reply(rw, map[string]any{"ok": true, "url": "https://fake.slack.test/", "team": "Fake", "user": "pifleet", "team_id": TeamID, "user_id": BotUser, "bot_id": "B0TEST"})
}

func (w *Workspace) newTS() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextTS++
	return fmt.Sprintf("1700000000.%06d", w.nextTS)
}

func (w *Workspace) postMessage(rw http.ResponseWriter, r *http.Request) {
	ch := r.Form.Get("channel")
	w.mu.Lock()
	limited, after, notIn := w.rateLimit > 0, w.retryAfter, w.notInChannel[ch]
	if limited {
		w.rateLimit--
	}
	w.mu.Unlock()
	if limited {
		rw.Header().Set("Retry-After", strconv.Itoa(after))
		rw.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if notIn {
		fail(rw, "not_in_channel")
		return
	}
	ts := w.newTS()
	w.record(Record{Kind: KindPost, Channel: ch, TS: ts, ThreadTS: r.Form.Get("thread_ts"), Broadcast: r.Form.Get("reply_broadcast") == "true",
		Text: r.Form.Get("text"), Blocks: raw(r.Form.Get("blocks"))})
	reply(rw, map[string]any{"ok": true, "channel": ch, "ts": ts})
}

func (w *Workspace) postEphemeral(rw http.ResponseWriter, r *http.Request) {
	ch, user := r.Form.Get("channel"), r.Form.Get("user")
	if ch == "" || user == "" {
		fail(rw, "invalid_arguments")
		return
	}
	ts := w.newTS()
	w.record(Record{Kind: KindEphemeral, Channel: ch, User: user, TS: ts, ThreadTS: r.Form.Get("thread_ts"), Text: r.Form.Get("text"), Blocks: raw(r.Form.Get("blocks"))})
	reply(rw, map[string]any{"ok": true, "message_ts": ts})
}

func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func (w *Workspace) update(rw http.ResponseWriter, r *http.Request) {
	ch, ts := r.Form.Get("channel"), r.Form.Get("ts")
	w.record(Record{Kind: KindUpdate, Channel: ch, TS: ts, Text: r.Form.Get("text"), Blocks: raw(r.Form.Get("blocks"))})
	reply(rw, map[string]any{"ok": true, "channel": ch, "ts": ts, "text": r.Form.Get("text")})
}

func (w *Workspace) uploadURL(rw http.ResponseWriter, r *http.Request) {
	name := r.Form.Get("filename")
	if name == "" || r.Form.Get("length") == "" {
		fail(rw, "invalid_arguments")
		return
	}
	w.mu.Lock()
	w.nextFile++
	id := fmt.Sprintf("F%04d", w.nextFile)
	w.files[id] = name
	w.mu.Unlock()
	reply(rw, map[string]any{"ok": true, "upload_url": w.APIURL() + "upload/" + id, "file_id": id})
}

func (w *Workspace) upload(rw http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/upload/")
	f, hdr, err := r.FormFile("file")
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.record(Record{Kind: KindUpload, FileID: id, FileName: hdr.Filename, Content: string(b)})
	_, _ = fmt.Fprintf(rw, "OK - %d", len(b))
}

func (w *Workspace) complete(rw http.ResponseWriter, r *http.Request) {
	var files []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(r.Form.Get("files")), &files); err != nil || len(files) == 0 {
		fail(rw, "invalid_arguments")
		return
	}
	ch := r.Form.Get("channel_id")
	w.mu.Lock()
	name, ok := w.files[files[0].ID]
	notIn := w.notInChannel[ch]
	w.mu.Unlock()
	if !ok {
		fail(rw, "file_not_found")
		return
	}
	if notIn {
		fail(rw, "not_in_channel")
		return
	}
	w.record(Record{Kind: KindComplete, Channel: ch, ThreadTS: r.Form.Get("thread_ts"), FileID: files[0].ID, FileName: name})
	reply(rw, map[string]any{"ok": true, "files": []map[string]any{{"id": files[0].ID, "title": files[0].Title}}})
}

func (w *Workspace) groupMembers(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	members, ok := w.groups[r.Form.Get("usergroup")]
	w.mu.Unlock()
	if !ok {
		fail(rw, "no_such_subteam")
		return
	}
	reply(rw, map[string]any{"ok": true, "users": members})
}

func (w *Workspace) response(rw http.ResponseWriter, r *http.Request) {
	var m struct {
		Text         string          `json:"text"`
		Blocks       json.RawMessage `json:"blocks"`
		ResponseType string          `json:"response_type"`
	}
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.record(Record{Kind: KindResponse, Channel: r.URL.Path, Text: m.Text, Blocks: m.Blocks, ThreadTS: m.ResponseType})
	_, _ = io.WriteString(rw, "ok")
}
