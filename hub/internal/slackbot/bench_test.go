package slackbot

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
)

// BenchmarkMentionToAnswer measures a mention's round trip through the
// adapter over loopback: envelope in, ack, engine (fake, instant), Block Kit
// answer posted.
func BenchmarkMentionToAnswer(b *testing.B) {
	ws := sbt.New(b)
	cfg := testConfig(ws)
	cfg.PostInterval = time.Nanosecond
	cfg.DedupSize = b.N + 10
	bot, err := New(cfg, &sbt.Engine{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	defer cancel()
	go bot.Run(ctx)
	ws.WaitConnected(wait)
	b.ResetTimer()
	for i := range b.N {
		ts := fmt.Sprintf("1800000000.%06d", i)
		ws.Mention("EvB"+ts, "U1", "C1", ts, "fleet")
		for len(ws.Find(sbt.KindPost, nil)) <= i {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

func BenchmarkRenderFleet40(b *testing.B) {
	r := chat.Reply{Title: "Fleet: 40 devices, 40 online, 0 with problems"}
	for i := range 40 {
		line := fmt.Sprintf("🟢 pi-%02d · online · 192.0.2.%d · 48.3 °C · seen just now", i, i)
		r.Text += line + "\n"
		r.Sections = append(r.Sections, chat.Section{Text: line})
	}
	b.ReportAllocs()
	for b.Loop() {
		render(r, "fleet")
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
