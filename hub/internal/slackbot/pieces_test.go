package slackbot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
)

type nopAsker struct{}

func (nopAsker) Ask(context.Context, chat.Request) chat.Reply       { return chat.Reply{} }
func (nopAsker) Confirm(context.Context, string, string) chat.Reply { return chat.Reply{} }

func TestSeenSetIsBounded(t *testing.T) {
	s := newSeenSet(3)
	for _, tc := range []struct {
		id   string
		want bool
	}{{"a", true}, {"b", true}, {"a", false}, {"c", true}, {"d", true}, {"b", true}, {"a", true}, {"b", false}, {"", true}, {"", true}} {
		if got := s.firstTime(tc.id); got != tc.want {
			t.Errorf("firstTime(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
	if s.len() != 3 {
		t.Errorf("remembers %d ids, want at most 3", s.len())
	}
}

func TestPacerSpacesPostsPerChannel(t *testing.T) {
	p := newPacer(50 * time.Millisecond)
	ctx := context.Background()
	// The slots booked, concurrently, from one instant: per channel each
	// is exactly one interval after the one before (wake-up times would
	// add the scheduler's jitter, so the booking is what is checked).
	now := time.Now()
	var mu sync.Mutex
	slots := map[string][]time.Time{}
	var wg sync.WaitGroup
	for i := range 6 {
		ch := fmt.Sprintf("C%d", i%2)
		wg.Go(func() {
			at := p.reserve(ch, now)
			mu.Lock()
			slots[ch] = append(slots[ch], at)
			mu.Unlock()
		})
	}
	wg.Wait()
	for ch, ts := range slots {
		slices.SortFunc(ts, time.Time.Compare)
		for i, at := range ts {
			if want := now.Add(time.Duration(i) * 50 * time.Millisecond); !at.Equal(want) {
				t.Errorf("%s: slot %d at now+%v, want now+%v", ch, i, at.Sub(now), want.Sub(now))
			}
		}
	}
	// wait sleeps until the booked slot: a fresh channel goes at once.
	if err := p.wait(ctx, "C9"); err != nil {
		t.Errorf("wait on a fresh channel = %v", err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	p.hold("C0", time.Hour)
	cancel()
	if err := p.wait(ctx2, "C0"); !errors.Is(err, context.Canceled) {
		t.Errorf("wait on a held channel with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestAuthorizerGroupsAreCachedAndFailClosed(t *testing.T) {
	calls := 0
	fail := false
	a := newAuthorizer(Config{UserGroups: []string{"S1"}}, func(_ context.Context, g string) ([]string, error) {
		calls++
		if fail {
			return nil, errors.New("boom")
		}
		return []string{"U5"}, nil
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	ctx := context.Background()
	for _, u := range []string{"U5", "U5", "U6"} {
		a.refusal(ctx, u, "C1")
	}
	if calls != 1 {
		t.Errorf("usergroups.users.list called %d times, want 1 (cached)", calls)
	}
	now = now.Add(10 * time.Minute)
	fail = true
	r, err := a.refusal(ctx, "U5", "C1")
	if err == nil || !strings.Contains(r, "could not check") {
		t.Errorf("lookup failure: refusal %q, err %v; want a refusal (fail closed) and the error", r, err)
	}
	if r, _ := a.refusal(ctx, "", "C1"); r == "" {
		t.Error("an empty user id was allowed")
	}
	everyone := newAuthorizer(Config{Users: []string{"*"}}, nil)
	if r, _ := everyone.refusal(ctx, "U1", "C1"); r != "" {
		t.Errorf("* refused U1: %q", r)
	}
}

// The hub's engine and fleet plug in as they are.
var (
	_ Asker       = (*chat.Engine)(nil)
	_ AlertSource = (*fleet.Fleet)(nil)
	_ Rejoiner    = (*fleet.Fleet)(nil)
)

func TestTrustedResponseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"https://hooks.slack.com/commands/T1/1/abc", true},
		{"https://hooks.slack-gov.com/commands/T1/1/abc", true},
		{"http://hooks.slack.com/commands/T1/1/abc", false},
		{"https://hooks.slack.com.evil.example/x", false},
		{"https://evilslack.com/x", false},
		{"http://127.0.0.1:4567/response/1", true}, // the configured API host
		{"http://127.0.0.1:9999/response/1", false},
		{"::", false},
	} {
		if got := trustedResponseURL("http://127.0.0.1:4567/", tc.url); got != tc.want {
			t.Errorf("trustedResponseURL(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

type panicky struct{ nopAsker }

func (panicky) Ask(context.Context, chat.Request) chat.Reply { panic("engine bug") }
