package slackbot

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// authorizer decides who may ask, and where. Users are the security
// boundary (a person, a user group, or everyone with "*"); channels keep
// the bot quiet where it is not wanted. Direct messages are allowed for
// allowed people whatever the channel list says.
type authorizer struct {
	channels   map[string]bool
	admin      string // Config.Admin
	users      map[string]bool
	anyUser    bool
	groups     []string
	members    func(ctx context.Context, group string) ([]string, error)
	membersTTL time.Duration
	now        func() time.Time

	mu    sync.Mutex
	cache map[string]groupMembers
}

type groupMembers struct {
	users map[string]bool
	at    time.Time
}

func newAuthorizer(cfg Config, members func(ctx context.Context, group string) ([]string, error)) *authorizer {
	a := &authorizer{
		channels:   set(cfg.Channels),
		admin:      cfg.Admin,
		users:      set(cfg.Users),
		groups:     slices.Clone(cfg.UserGroups),
		members:    members,
		membersTTL: 5 * time.Minute,
		now:        time.Now,
		cache:      map[string]groupMembers{},
	}
	a.anyUser = a.users["*"]
	// The alert channel is where the bot speaks anyway, and its alerts'
	// buttons (Where, Health) ask there: it is one of the channels.
	if len(a.channels) > 0 && cfg.AlertChannel != "" {
		a.channels[cfg.AlertChannel] = true
	}
	return a
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// refusal is a polite answer for a person who may not ask; empty when
// allowed. err is set when a lookup failed (the person is refused: fail
// closed).
func (a *authorizer) refusal(ctx context.Context, user, channel string) (string, error) {
	if ok, err := a.userAllowed(ctx, user); !ok {
		if err != nil {
			return "Sorry, I could not check your user groups just now, so I can't answer. Please try again in a minute.", err
		}
		admin := a.admin
		if admin == "" {
			admin = "whoever runs pifleet here"
		}
		return fmt.Sprintf("Sorry, you are not on pifleet's list of people allowed to ask. Ask %s to add you (your user id is `%s`).", admin, user), nil
	}
	if len(a.channels) > 0 && !a.channels[channel] && !isDM(channel) {
		return fmt.Sprintf("Sorry, I only answer in %s, or in a direct message.", channelList(a.channels)), nil
	}
	return "", nil
}

func isDM(channel string) bool { return strings.HasPrefix(channel, "D") }

func channelList(m map[string]bool) string {
	var cs []string
	for c := range m {
		cs = append(cs, "<#"+c+">")
	}
	slices.Sort(cs)
	return strings.Join(cs, ", ")
}

func (a *authorizer) userAllowed(ctx context.Context, user string) (bool, error) {
	if user == "" {
		return false, nil
	}
	if a.anyUser || a.users[user] {
		return true, nil
	}
	var firstErr error
	for _, g := range a.groups {
		in, err := a.inGroup(ctx, g, user)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if in {
			return true, nil
		}
	}
	return false, firstErr
}

func (a *authorizer) inGroup(ctx context.Context, group, user string) (bool, error) {
	a.mu.Lock()
	c, ok := a.cache[group]
	a.mu.Unlock()
	if ok && a.now().Sub(c.at) < a.membersTTL {
		return c.users[user], nil
	}
	if a.members == nil {
		return false, fmt.Errorf("user group %s: no way to list members", group)
	}
	ids, err := a.members(ctx, group)
	if err != nil {
		return false, fmt.Errorf("list members of user group %s: %w", group, err)
	}
	c = groupMembers{users: set(ids), at: a.now()}
	a.mu.Lock()
	a.cache[group] = c
	a.mu.Unlock()
	return c.users[user], nil
}
