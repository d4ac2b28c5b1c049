package natsengine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pifleet/pifleet/internal/wire"
)

// The MQTT streams nats-server keeps retained messages in, one subject
// per topic ($MQTT.rmsgs.<subject>).
const (
	retainedStream = "$MQTT_rmsgs"
	retainedFilter = "$MQTT.rmsgs." + root + ".>"
	warmupTopic    = "pifleet-engine/warmup"
)

// warmUp makes the server ready for the hub's first subscription.
//
// nats-server is not MQTT-ready when its listeners are: the first MQTT
// CONNECT creates the account's MQTT streams and a consumer that feeds
// the server's in-memory view of retained messages from $MQTT_rmsgs. A
// SUBSCRIBE replays only what that view holds at that moment, and nothing
// missing is sent later. So the engine connects once itself, then
// subscribes to pifleet/v1/# until the replay holds as many topics as the
// stream has subjects under pifleet.v1 (a marker published after each
// SUBACK tells when a replay is complete). If that does not happen within
// timeout, Start still succeeds (MQTT works) and logs a warning: the hub's
// first replay may then be partial, which a heartbeat heals.
//
// A cluster node first waits, bound only by ctx, until JetStream has a
// meta leader it is current with (a majority of the nodes is up): before
// that an MQTT CONNECT fails after the JetStream API's 5 s timeout.
func (e *Engine) warmUp(ctx context.Context, timeout time.Duration, srvTLS *tls.Config) error {
	start := time.Now()
	parent := ctx
	if e.srv.JetStreamIsClustered() {
		if err := e.waitMetaLeader(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	opts := paho.NewClientOptions().AddBroker(e.mqttURL).SetClientID(e.warmupClientID()).
		SetUsername(engineUser).SetPassword(e.secret).SetCleanSession(true).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(timeout)
	if srvTLS != nil {
		opts.SetTLSConfig(pinnedClientTLS(srvTLS))
	}
	var c paho.Client
	for {
		c = paho.NewClient(opts)
		err := wait(ctx, c.Connect())
		if err == nil {
			break
		}
		c.Disconnect(0)
		if ctx.Err() != nil {
			return fmt.Errorf("nats engine: MQTT warm-up connect: %w", err)
		}
		// A JetStream leader election (a node joined or left) makes a
		// CONNECT fail; the next one works.
		e.log.Info("MQTT warm-up connect failed; trying again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	defer c.Disconnect(0)
	connected := time.Since(start)

	nc, err := e.ConnectNATS()
	if err != nil {
		return fmt.Errorf("nats engine: NATS warm-up connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("nats engine: %w", err)
	}
	for round := 1; ; round++ {
		// In a forming cluster the stream may not be there yet (the
		// first CONNECT creates it; "stream not found" until its
		// leader is elected): try again, like an incomplete replay.
		var got int
		want, err := retainedSubjects(ctx, js)
		if err == nil {
			got, err = replayed(ctx, c, round)
		}
		if err == nil && got >= want {
			e.log.Info("MQTT ready", "connect", connected.Round(time.Millisecond),
				"total", time.Since(start).Round(time.Millisecond), "retained", got, "rounds", round)
			return nil
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return fmt.Errorf("nats engine: start cancelled: %w", parent.Err())
			}
			e.log.Warn("MQTT ready, but the retained-message view is not complete: the first subscriber may miss some retained states",
				"replayed", got, "stored", want, "err", err, "waited", time.Since(start).Round(time.Millisecond))
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// warmupClientID is the warm-up's MQTT client id, one per server: MQTT
// sessions are cluster-wide, so one id on every node would make the
// nodes close each other's warm-up connection.
func (e *Engine) warmupClientID() string {
	return "pifleet-engine-warmup-" + strings.NewReplacer(".", "~", " ", "_").Replace(e.srv.Name())
}

// waitMetaLeader waits until this cluster node follows a JetStream meta
// leader, logging every 10 s while it waits for the other nodes.
func (e *Engine) waitMetaLeader(ctx context.Context) error {
	start, logged := time.Now(), time.Now()
	for !e.srv.JetStreamIsCurrent() {
		if time.Since(logged) >= 10*time.Second {
			logged = time.Now()
			e.log.Warn("waiting for the other cluster nodes: JetStream needs a majority of them up to elect a leader",
				"waited", time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nats engine: no JetStream leader in the cluster (is a majority of the nodes up, and are the routes right?): %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	e.log.Info("cluster formed: JetStream has a leader", "waited", time.Since(start).Round(time.Millisecond))
	return nil
}

// retainedSubjects counts the retained topics under pifleet/v1 in the
// stream (at most one message per subject).
func retainedSubjects(ctx context.Context, js jetstream.JetStream) (int, error) {
	s, err := js.Stream(ctx, retainedStream)
	if err != nil {
		return 0, fmt.Errorf("nats engine: retained stream: %w", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(retainedFilter))
	if err != nil {
		return 0, fmt.Errorf("nats engine: retained stream info: %w", err)
	}
	return len(info.State.Subjects), nil
}

// replayed subscribes to every pifleet topic and counts the retained
// topics the server replays.
func replayed(ctx context.Context, c paho.Client, round int) (int, error) {
	var mu sync.Mutex
	topics := map[string]bool{}
	marker := strconv.Itoa(round)
	done := make(chan struct{})
	var once sync.Once
	h := func(_ paho.Client, m paho.Message) {
		switch {
		case m.Topic() == warmupTopic && string(m.Payload()) == marker:
			once.Do(func() { close(done) })
		case m.Retained() && strings.HasPrefix(m.Topic(), wire.Root+"/"):
			mu.Lock()
			topics[m.Topic()] = true
			mu.Unlock()
		}
	}
	filters := map[string]byte{wire.Root + "/#": 0, warmupTopic: 0}
	if err := wait(ctx, c.SubscribeMultiple(filters, h)); err != nil {
		return 0, fmt.Errorf("warm-up subscribe: %w", err)
	}
	defer func() { c.Unsubscribe(wire.Root+"/#", warmupTopic).WaitTimeout(time.Second) }()
	// Replayed messages are queued before the SUBACK; the marker comes
	// after them on the same connection, and paho hands messages over in
	// order.
	if err := wait(ctx, c.Publish(warmupTopic, 0, false, marker)); err != nil {
		return 0, fmt.Errorf("warm-up marker: %w", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return 0, errors.New("the warm-up marker did not come back")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	return len(topics), nil
}

// wait waits for tok until ctx ends.
func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return errors.Join(ctx.Err(), errors.New("no answer from the MQTT listener"))
	}
}
